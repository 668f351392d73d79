package notify_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/notify"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/shared/wire"
)

// TestWebhookCarriesTheSignedAlertJSON: a transition reaches a webhook as its alert JSON,
// byte for byte the live event's data, signed (the receiver checks the signature).
func TestWebhookCarriesTheSignedAlertJSON(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t)
	d, _ := start(t, e.s, e.options(t, r.channel("ops")))
	e.ingest(t, "A", transition(1, "opened", "critical", e.clock.Now()))

	msgs := r.waitMessages(t, 1)
	evs, err := e.s.Events(t.Context(), store.EventQuery{Limit: 100})
	require.NoError(t, err)
	var data []byte
	for _, ev := range evs {
		if ev.Type == store.EventAlert {
			data, err = json.Marshal(ev.Data) // compacted
			require.NoError(t, err)
		}
	}
	require.NotNil(t, data)
	assert.JSONEq(t, string(data), string(msgs[0].body))
	assert.Equal(t, string(data), string(msgs[0].body), "the body is the alert event's data")
	assert.Len(t, msgs[0].delivery, 32, "X-PH-Delivery names the message")
	assert.Equal(t, "A station 1 opened", key(msgs[0].alerts[0]))

	require.Eventually(t, func() bool {
		st := d.Stats().Channels[0]
		return st.Delivered == 1 && st.DeliveredTransitions == 1 && st.Pending == 0
	}, waitFor, testInterval, "stats count the delivery")
	assert.Empty(t, d.Failing())
}

// TestFilters: each channel gets the transitions its stations, severities and
// transitions let through; a channel without filters gets critical and warning openings
// and resolutions of every station.
func TestFilters(t *testing.T) {
	e := newEnv(t)
	at := e.clock.Now()
	e.ingest(t, "A",
		transition(1, "opened", "critical", at),
		transition(2, "acknowledged", "warning", at),
		transition(3, "escalated", "warning", at))
	e.ingest(t, "B",
		transition(1, "opened", "info", at),
		transition(2, "resolved", "critical", at))
	e.ingest(t, "C", transition(1, "opened", "warning", at))

	critA, all, defaults := newReceiver(t), newReceiver(t), newReceiver(t)
	onlyCritA := critA.channel("crit-a")
	onlyCritA.Stations, onlyCritA.Severities, onlyCritA.On = []string{"A"}, []string{"critical"}, []string{"opened"}
	plain := defaults.channel("defaults")
	plain.Severities, plain.On = nil, nil
	d, _ := start(t, e.s, e.options(t, onlyCritA, all.channel("all"), plain))

	// Every stream's first message carries all its station's transitions: they were
	// queued before the dispatcher started.
	all.waitMessages(t, 3)
	defaults.waitMessages(t, 3)
	critA.waitMessages(t, 1)
	require.Eventually(t, func() bool {
		for _, c := range d.Stats().Channels {
			if c.Pending != 0 {
				return false
			}
		}
		return true
	}, waitFor, testInterval)
	assert.ElementsMatch(t, []string{"A station 1 opened"}, critA.transitions())
	assert.ElementsMatch(t, []string{"A station 1 opened", "A station 2 acknowledged", "A station 3 escalated",
		"B station 1 opened", "B station 2 resolved", "C station 1 opened"}, all.transitions())
	assert.ElementsMatch(t, []string{"A station 1 opened", "B station 2 resolved", "C station 1 opened"}, defaults.transitions())
}

// TestStormIsGrouped: the first transition of a quiet station goes at once; a storm that
// follows goes as one message when the minute is up, listing every transition; another
// station is not held back by it.
func TestStormIsGrouped(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t)
	d, _ := start(t, e.s, e.options(t, r.channel("ops")))
	at := e.clock.Now()
	e.ingest(t, "A", transition(1, "opened", "warning", at))
	first := r.waitMessages(t, 1)
	require.Len(t, first[0].alerts, 1)
	assert.NotContains(t, string(first[0].body), `"group"`, "a single transition is the alert JSON alone")

	for i := range 5 {
		id := uint64(2 + 2*i)
		e.ingest(t, "A", transition(id, "opened", "warning", at), transition(id+1, "opened", "critical", at))
	}
	e.ingest(t, "B", transition(1, "opened", "critical", at))
	msgs := r.waitMessages(t, 2)
	assert.Equal(t, []string{"B station 1 opened"}, []string{key(msgs[1].alerts[0])}, "a quiet station goes at once")
	require.Eventually(t, func() bool { return d.Stats().Channels[0].Pending == 10 }, waitFor, testInterval,
		"the storm is routed and waits")
	assert.Never(t, func() bool { return len(r.messages()) > 2 }, 20*testInterval, testInterval,
		"nothing more of A within the minute")

	e.clock.Advance(time.Minute)
	msgs = r.waitMessages(t, 3)
	storm := msgs[2]
	require.Len(t, storm.alerts, 10, "one message lists the storm")
	for i, a := range storm.alerts {
		assert.Equal(t, fmt.Sprintf("A station %d opened", 2+i), key(a), "oldest first")
	}
	var top map[string]any
	require.NoError(t, json.Unmarshal(storm.body, &top))
	assert.Equal(t, "A station 11 opened", key(top), "the body is the newest transition's alert, with the group")
	assert.Equal(t, "critical", top["severity"])
	assert.Never(t, func() bool { return len(r.messages()) > 3 }, 10*testInterval, testInterval)
}

// TestOutageRetriesThenDeliversOnce: a receiver that fails gets the same message again
// after each wait until it takes it, once; its failures show in the statistics and, after
// FailingAfter attempts, as a notify_failing alert that other channels hear of and that
// resolves with the delivery.
func TestOutageRetriesThenDeliversOnce(t *testing.T) {
	e := newEnv(t)
	hook, watch := newReceiver(t), newReceiver(t)
	hook.fail.Store(3)
	opts := e.options(t, hook.channel("hook"), watch.channel("watch"))
	opts.FailingAfter = 2
	d, _ := start(t, e.s, opts)
	e.ingest(t, "A", transition(1, "opened", "critical", e.clock.Now()))

	watch.waitMessages(t, 1)
	attempts := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool { return len(hook.attemptIDs()) >= n }, waitFor, testInterval,
			"waiting for attempt %d", n)
	}
	attempts(1)
	require.Eventually(t, func() bool {
		c := d.Stats().Channels[0]
		return c.Failed == 1 && c.Pending == 1 && c.ConsecutiveFailures == 1
	}, waitFor, testInterval)
	hookStats := d.Stats().Channels[0]
	assert.Contains(t, hookStats.LastError, "503")
	assert.Contains(t, hookStats.LastError, "receiver down for maintenance")
	assert.NotContains(t, hookStats.LastError, "token", "errors do not repeat the URL's secrets")
	assert.False(t, hookStats.Failing)
	assert.Never(t, func() bool { return len(hook.attemptIDs()) > 1 }, 10*testInterval, testInterval,
		"no retry before the wait is over")

	e.clock.Advance(time.Minute) // the retry ceiling
	attempts(2)
	// The second failure opens notify_failing on A; watch hears of it, hook does not.
	msgs := watch.waitMessages(t, 2)
	failing := msgs[1].alerts[0]
	assert.Equal(t, store.RuleNotifyFailing, failing["rule"])
	assert.Equal(t, "notify_failing/hook", failing["key"])
	assert.Equal(t, "cloud", failing["origin"])
	assert.Equal(t, "opened", failing["transition"])
	assert.Contains(t, failing["message"], "503")
	require.Eventually(t, func() bool { return slices.Equal(d.Failing(), []string{"hook"}) }, waitFor, testInterval)

	e.clock.Advance(time.Minute)
	attempts(3)
	// The receiver has seen the third attempt; the clock moves on once the dispatcher has
	// recorded its failure, or the retry would be due a minute later than the test waits.
	require.Eventually(t, func() bool { return d.Stats().Channels[0].Failed == 3 }, waitFor, testInterval)
	e.clock.Advance(time.Minute)
	attempts(4)
	got := hook.waitMessages(t, 1)
	assert.Equal(t, []string{"A station 1 opened"}, hook.transitions(), "delivered once, and not its own alert")
	ids := hook.attemptIDs()
	assert.Equal(t, []string{ids[0], ids[0], ids[0], ids[0]}, ids, "every attempt is the same message")
	assert.Equal(t, ids[0], got[0].delivery)

	e.clock.Advance(time.Minute) // watch's window after the opening
	msgs = watch.waitMessages(t, 3)
	assert.Equal(t, "resolved", msgs[2].alerts[0]["transition"])
	assert.Equal(t, "notify_failing/hook", msgs[2].alerts[0]["key"])
	require.Eventually(t, func() bool { return len(d.Failing()) == 0 && d.Stats().Channels[0].Pending == 0 },
		waitFor, testInterval)
	st := d.Stats().Channels[0]
	assert.Equal(t, uint64(3), st.Failed)
	assert.Equal(t, uint64(1), st.Delivered)
	assert.Contains(t, st.LastError, "503", "the last error stays visible after the recovery")
	assert.NoError(t, testutil.CollectAndCompare(d.Collector(), strings.NewReader(`
# HELP ph_notify_attempts_failed_total Failed attempts to deliver a notification message, by this replica.
# TYPE ph_notify_attempts_failed_total counter
ph_notify_attempts_failed_total{channel="hook"} 3
ph_notify_attempts_failed_total{channel="watch"} 0
# HELP ph_notify_failing 1 while the channel keeps failing (notify_failing).
# TYPE ph_notify_failing gauge
ph_notify_failing{channel="hook"} 0
ph_notify_failing{channel="watch"} 0
# HELP ph_notify_messages_delivered_total Notification messages delivered by this replica.
# TYPE ph_notify_messages_delivered_total counter
ph_notify_messages_delivered_total{channel="hook",kind="webhook"} 1
ph_notify_messages_delivered_total{channel="watch",kind="webhook"} 3
`), "ph_notify_attempts_failed_total", "ph_notify_failing", "ph_notify_messages_delivered_total"))
	e.clock.Advance(time.Hour)
	assert.Never(t, func() bool { return len(hook.attemptIDs()) > 4 || len(watch.messages()) > 3 },
		20*testInterval, testInterval, "nothing is sent twice")
}

// TestRestartKeepsRetrying: a dispatcher stopped after a failed attempt leaves the retry
// in the database; a new one (a restarted cloud, a fresh pool) waits for the stored time
// and then delivers the same message, once.
func TestRestartKeepsRetrying(t *testing.T) {
	e := newEnv(t)
	hook := newReceiver(t)
	hook.fail.Store(-1)
	first, err := store.Open(t.Context(), e.url, store.Options{})
	require.NoError(t, err)
	d, stop := start(t, first, e.options(t, hook.channel("hook")))
	e.ingest(t, "A", transition(1, "opened", "critical", e.clock.Now()))
	// Stopped once the dispatcher has the receiver's answer: an attempt still waiting for
	// it is cut short and not recorded, and would go again at once.
	require.Eventually(t, func() bool { return d.Stats().Channels[0].Failed == 1 }, waitFor, testInterval)
	require.Len(t, hook.attemptIDs(), 1)
	stop()
	first.Close()
	hook.fail.Store(0)

	second := storetest.OpenURL(t, e.url, store.Options{})
	start(t, second, e.options(t, hook.channel("hook")))
	assert.Never(t, func() bool { return len(hook.attemptIDs()) > 1 }, 20*testInterval, testInterval,
		"the stored retry time holds after the restart")
	e.clock.Advance(time.Minute)
	got := hook.waitMessages(t, 1)
	assert.Equal(t, hook.attemptIDs()[0], got[0].delivery, "the same message")
	assert.Equal(t, []string{"A station 1 opened"}, hook.transitions())
	e.clock.Advance(time.Hour)
	assert.Never(t, func() bool { return len(hook.attemptIDs()) > 2 }, 20*testInterval, testInterval)
}

// TestTwoReplicasDeliverEachTransitionOnce: two dispatchers on one database (each with
// its own pool and several workers) while stations report a stream of transitions:
// every transition reaches every channel exactly once.
func TestTwoReplicasDeliverEachTransitionOnce(t *testing.T) {
	e := newEnv(t)
	h1, h2 := newReceiver(t), newReceiver(t)
	channels := func() []notify.Channel {
		c1, c2 := h1.channel("one"), h2.channel("two")
		c1.Group, c2.Group = 5*time.Millisecond, 5*time.Millisecond
		return []notify.Channel{c1, c2}
	}
	var ds []*notify.Dispatcher
	for range 2 {
		opts := e.options(t, channels()...)
		opts.Now, opts.Workers = time.Now, 3
		d, _ := start(t, storetest.OpenURL(t, e.url, store.Options{}), opts)
		ds = append(ds, d)
	}

	const perStation = 40
	stations := []string{"A", "B", "C"}
	var want []string
	var wg sync.WaitGroup
	var ingestMu sync.Mutex // one env.seq
	for _, st := range stations {
		for i := range perStation {
			want = append(want, fmt.Sprintf("%s station %d opened", st, i+1))
		}
		wg.Go(func() {
			for i := 0; i < perStation; {
				n := 1 + i%3
				var batch []wire.AlertEvent
				for j := 0; j < n && i < perStation; j++ {
					i++
					batch = append(batch, transition(uint64(i), "opened", "warning", time.Now()))
				}
				ingestMu.Lock()
				e.ingest(t, st, batch...)
				ingestMu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, h := range []*receiver{h1, h2} {
		require.Eventually(t, func() bool { return len(h.transitions()) >= len(want) }, waitFor, testInterval)
	}
	for _, d := range ds {
		require.Eventually(t, func() bool {
			st := d.Stats()
			return st.Channels[0].Pending == 0 && st.Channels[1].Pending == 0
		}, waitFor, testInterval)
	}
	for _, h := range []*receiver{h1, h2} {
		assert.ElementsMatch(t, want, h.transitions(), "each transition exactly once")
		seen := map[string]bool{}
		for _, m := range h.messages() {
			assert.False(t, seen[m.delivery], "message %s delivered twice", m.delivery)
			seen[m.delivery] = true
		}
		assert.Len(t, h.attemptIDs(), len(h.messages()), "no attempt failed, none repeated")
	}
	var perReplica []uint64
	for _, d := range ds {
		perReplica = append(perReplica, d.Stats().Channels[0].DeliveredTransitions+d.Stats().Channels[1].DeliveredTransitions)
	}
	assert.Equal(t, uint64(2*len(want)), perReplica[0]+perReplica[1], "the replicas' counts add up")
	t.Logf("transitions delivered per replica: %v; messages: %d and %d", perReplica, len(h1.messages()), len(h2.messages()))
}

// TestDuplicateTransitionIsNotifiedOnce: a batch received again, and the same
// transition sent again with another seq, make no second notification.
func TestDuplicateTransitionIsNotifiedOnce(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t)
	start(t, e.s, e.options(t, r.channel("ops")))
	at := e.clock.Now()
	b := storetest.Batch("A", nil)
	b.Alerts = []wire.AlertEvent{transition(1, "opened", "critical", at), transition(2, "opened", "warning", at)}
	b.Alerts[0].Seq, b.Alerts[1].Seq = 1, 2
	_, err := e.s.Ingest(t.Context(), "A", b)
	require.NoError(t, err)
	r.waitMessages(t, 1)

	_, err = e.s.Ingest(t.Context(), "A", b) // the agent did not get the ack
	require.NoError(t, err)
	again := storetest.Batch("A", nil)
	again.Alerts = []wire.AlertEvent{transition(1, "opened", "critical", at), transition(3, "opened", "warning", at)}
	again.Alerts[0].Seq, again.Alerts[1].Seq = 7, 8 // a rewritten copy, and one new transition
	res, err := e.s.Ingest(t.Context(), "A", again)
	require.NoError(t, err)
	assert.Equal(t, int64(1), res.NewAlerts)

	e.clock.Advance(time.Minute)
	r.waitMessages(t, 2)
	assert.Equal(t, []string{"A station 1 opened", "A station 2 opened", "A station 3 opened"}, r.transitions())
	e.clock.Advance(time.Hour)
	assert.Never(t, func() bool { return len(r.messages()) > 2 }, 20*testInterval, testInterval)
}

// TestCloudAlertReachesChannels: the station_offline alert the health check opens goes
// out like a station's own.
func TestCloudAlertReachesChannels(t *testing.T) {
	var offset atomic.Int64
	s, _ := storetest.Open(t, store.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	storetest.AddStation(t, s, "A")
	_, err := s.Ingest(t.Context(), "A", storetest.Batch("A", storetest.Readings(1, 1, time.Now(), time.Second)))
	require.NoError(t, err)
	r := newReceiver(t)
	start(t, s, notify.Options{Channels: []notify.Channel{r.channel("ops")}, Interval: testInterval, Log: testLogger(t)})
	offset.Store(int64(time.Hour))
	_, err = s.CheckStationHealth(t.Context(), store.HealthPolicy{OfflineAfter: time.Minute})
	require.NoError(t, err)
	msgs := r.waitMessages(t, 1)
	a := msgs[0].alerts[0]
	assert.Equal(t, []any{"A", "cloud", store.RuleStationOffline, "opened"}, []any{a["station"], a["origin"], a["rule"], a["transition"]})
	assert.True(t, strings.HasPrefix(a["message"].(string), "no data from the station"), a["message"])
}

package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/shared/wire"
)

// outboxRow is a notify_outbox row as the tests read it.
type outboxRow struct {
	station, origin, transition, rule, severity string
	alert                                       int64
	data                                        json.RawMessage
}

func outbox(t *testing.T, url string) []outboxRow {
	t.Helper()
	rows, err := connect(t, url).Query(t.Context(), `SELECT station_id, origin, transition, rule, severity, alert_id, data::text
		FROM notify_outbox ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		var data string
		require.NoError(t, rows.Scan(&r.station, &r.origin, &r.transition, &r.rule, &r.severity, &r.alert, &data))
		r.data = json.RawMessage(data)
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// alertEventData returns the data of the alert events, in id order.
func alertEventData(t *testing.T, s *store.Store) []string {
	t.Helper()
	evs, err := s.Events(t.Context(), store.EventQuery{Limit: 1000})
	require.NoError(t, err)
	var out []string
	for _, e := range evs {
		if e.Type == store.EventAlert {
			out = append(out, compact(t, e.Data))
		}
	}
	return out
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b []byte
	b, err := json.Marshal(raw) // compacts
	require.NoError(t, err)
	return string(b)
}

// TestIngestQueuesNewTransitionsOnce: each new alert transition of a batch is queued for
// notification with the data of its live event; a batch sent again, and the same
// transition sent with another seq, queue nothing.
func TestIngestQueuesNewTransitionsOnce(t *testing.T) {
	s, url := storetest.Open(t, store.Options{})
	storetest.AddStation(t, s, "A")
	at := time.Now().Add(-time.Minute).UTC()
	b := storetest.Batch("A", storetest.Readings(1, 2, at, time.Second))
	crit := storetest.Alert(2, 8, "opened", "active", at)
	crit.Severity = "critical"
	b.Alerts = []wire.AlertEvent{storetest.Alert(1, 7, "opened", "active", at), crit}
	_, err := s.Ingest(t.Context(), "A", b)
	require.NoError(t, err)

	rows := outbox(t, url)
	require.Len(t, rows, 2)
	assert.Equal(t, outboxRow{station: "A", origin: store.OriginStation, transition: "opened", rule: "threshold",
		severity: "warning", alert: 7, data: rows[0].data}, rows[0])
	assert.Equal(t, "critical", rows[1].severity)
	assert.Equal(t, int64(8), rows[1].alert)
	assert.Equal(t, alertEventData(t, s), []string{compact(t, rows[0].data), compact(t, rows[1].data)},
		"the outbox holds what the live events say")

	_, err = s.Ingest(t.Context(), "A", b)
	require.NoError(t, err)
	again := storetest.Batch("A", nil)
	again.Alerts = []wire.AlertEvent{storetest.Alert(9, 7, "opened", "active", at)} // same transition, new seq
	res, err := s.Ingest(t.Context(), "A", again)
	require.NoError(t, err)
	assert.Zero(t, res.NewAlerts)
	assert.Len(t, outbox(t, url), 2, "a transition received again is not queued again")

	next := storetest.Batch("A", nil)
	next.Alerts = []wire.AlertEvent{storetest.Alert(10, 7, "resolved", "resolved", at.Add(time.Second))}
	_, err = s.Ingest(t.Context(), "A", next)
	require.NoError(t, err)
	rows = outbox(t, url)
	require.Len(t, rows, 3)
	assert.Equal(t, "resolved", rows[2].transition)
}

// TestCloudAlertsAreQueued: the station_offline alert the health check opens, and its
// resolution by the station's next batch, are queued like a station's transitions.
func TestCloudAlertsAreQueued(t *testing.T) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	s, url := storetest.Open(t, store.Options{Now: clock})
	storetest.AddStation(t, s, "A")
	at := time.Now().Add(-time.Minute).UTC()
	_, err := s.Ingest(t.Context(), "A", storetest.Batch("A", storetest.Readings(1, 1, at, time.Second)))
	require.NoError(t, err)
	offset.Store(int64(time.Hour))
	changes, err := s.CheckStationHealth(t.Context(), store.HealthPolicy{OfflineAfter: 10 * time.Minute})
	require.NoError(t, err)
	require.Len(t, changes, 1)
	_, err = s.Ingest(t.Context(), "A", storetest.Batch("A", storetest.Readings(2, 1, at, time.Second)))
	require.NoError(t, err)

	rows := outbox(t, url)
	require.Len(t, rows, 2)
	for i, tr := range []string{"opened", "resolved"} {
		assert.Equal(t, "A", rows[i].station)
		assert.Equal(t, store.OriginCloud, rows[i].origin)
		assert.Equal(t, store.RuleStationOffline, rows[i].rule)
		assert.Equal(t, tr, rows[i].transition)
		assert.Equal(t, int64(changes[0].AlertID), rows[i].alert)
	}
	assert.Equal(t, alertEventData(t, s), []string{compact(t, rows[0].data), compact(t, rows[1].data)})
}

// queue stores n opened transitions of station (alert ids from first) and returns their
// time.
func queue(t *testing.T, s *store.Store, station string, seq, first uint64, n int) time.Time {
	t.Helper()
	at := time.Now().UTC().Truncate(time.Millisecond)
	b := storetest.Batch(station, nil)
	for i := range n {
		b.Alerts = append(b.Alerts, storetest.Alert(seq+uint64(i), first+uint64(i), "opened", "active", at))
	}
	_, err := s.Ingest(t.Context(), station, b)
	require.NoError(t, err)
	return at
}

func routeAll(t *testing.T, s *store.Store, now time.Time, channels ...string) int {
	t.Helper()
	n, err := s.RouteNotifications(t.Context(), 100, now, func(store.Notification) []string { return channels })
	require.NoError(t, err)
	return n
}

// TestDeliverRetryAndFailingAlert walks one stream through a failed attempt (which opens
// the notify_failing alert when asked), a claim before the retry is due (nothing), the
// retry (the very same message) and its success (delivered, alert resolved).
func TestDeliverRetryAndFailingAlert(t *testing.T) {
	s, url := storetest.Open(t, store.Options{})
	storetest.AddStation(t, s, "A")
	now := time.Now().UTC().Truncate(time.Microsecond)
	queue(t, s, "A", 1, 1, 3)
	assert.Equal(t, 3, routeAll(t, s, now, "hook"))
	assert.Zero(t, routeAll(t, s, now, "hook"), "routed once")

	claim := store.NotifyClaim{Channels: []string{"hook"}, Now: now, Max: 2}
	var first store.NotifyMessage
	found, err := s.DeliverNotification(t.Context(), claim, func(_ context.Context, m store.NotifyMessage) store.NotifyResult {
		first = m
		return store.NotifyResult{At: now, Err: errors.New("503 from the receiver"), NextAt: now.Add(time.Minute), Failing: true}
	})
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, int64(1), first.Number)
	assert.Zero(t, first.Failures)
	require.Len(t, first.Notifications, 2, "at most Max transitions")
	assert.Equal(t, []uint64{1, 2}, []uint64{first.Notifications[0].AlertID, first.Notifications[1].AlertID})
	assert.NotEmpty(t, first.Notifications[0].Data)

	failing, err := s.Alerts(t.Context(), store.AlertQuery{Station: "A", Active: new(true), Limit: 100})
	require.NoError(t, err)
	var opened *store.Alert
	for i, a := range failing {
		if a.Rule == store.RuleNotifyFailing {
			opened = &failing[i]
		}
	}
	require.NotNil(t, opened, "the failing stream opened its alert")
	assert.Equal(t, store.NotifyFailingKey("hook"), opened.Key)
	assert.Equal(t, store.OriginCloud, opened.Origin)
	assert.Contains(t, opened.Message, "503 from the receiver")

	st, err := s.NotificationStats(t.Context(), []string{"hook"})
	require.NoError(t, err)
	hook := st.Channels["hook"]
	assert.Equal(t, int64(3), hook.Pending)
	assert.Equal(t, 1, hook.Failures)
	assert.Equal(t, 1, hook.OpenAlerts)
	assert.Equal(t, "503 from the receiver", hook.LastError)
	assert.False(t, hook.OldestPending.IsZero())
	assert.Equal(t, int64(1), st.Unrouted, "the notify_failing alert waits for routing")

	found, err = s.DeliverNotification(t.Context(), claim, func(context.Context, store.NotifyMessage) store.NotifyResult {
		t.Error("a stream is not sent before its retry is due")
		return store.NotifyResult{}
	})
	require.NoError(t, err)
	assert.False(t, found)

	claim.Now = now.Add(time.Minute)
	var retry store.NotifyMessage
	found, err = s.DeliverNotification(t.Context(), claim, func(_ context.Context, m store.NotifyMessage) store.NotifyResult {
		retry = m
		return store.NotifyResult{At: claim.Now, NextAt: claim.Now.Add(time.Minute)}
	})
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, first.Number, retry.Number, "a retry is the same message")
	assert.Equal(t, 1, retry.Failures)
	assert.Equal(t, first.Notifications, retry.Notifications)

	assert.Equal(t, int64(2), count(t, url, `SELECT count(*) FROM notify_deliveries WHERE state = 'delivered'`))
	resolved, err := s.Alerts(t.Context(), store.AlertQuery{Station: "A", Active: new(false), Limit: 100})
	require.NoError(t, err)
	require.Len(t, resolved, 1)
	assert.Equal(t, store.RuleNotifyFailing, resolved[0].Rule)
	rows := outbox(t, url)
	assert.Equal(t, "resolved", rows[len(rows)-1].transition, "the resolution is queued too")

	// The third transition waits for the grouping window after the delivery.
	claim.Now = now.Add(90 * time.Second)
	found, err = s.DeliverNotification(t.Context(), claim, func(context.Context, store.NotifyMessage) store.NotifyResult {
		t.Error("the stream's window is still open")
		return store.NotifyResult{}
	})
	require.NoError(t, err)
	assert.False(t, found)
	claim.Now = now.Add(2 * time.Minute)
	found, err = s.DeliverNotification(t.Context(), claim, func(_ context.Context, m store.NotifyMessage) store.NotifyResult {
		assert.Equal(t, int64(2), m.Number)
		assert.Zero(t, m.Failures)
		require.Len(t, m.Notifications, 1)
		assert.Equal(t, uint64(3), m.Notifications[0].AlertID)
		return store.NotifyResult{At: claim.Now, NextAt: claim.Now.Add(time.Minute)}
	})
	require.NoError(t, err)
	assert.True(t, found)
	st, err = s.NotificationStats(t.Context(), []string{"hook"})
	require.NoError(t, err)
	assert.Zero(t, st.Channels["hook"].Pending)
	assert.Zero(t, st.Channels["hook"].Failures)
	assert.Equal(t, "503 from the receiver", st.Channels["hook"].LastError, "the last error stays visible")
}

// oneRouted queues one transition of station A, routes it to channel hook and returns
// the claim that finds it.
func oneRouted(t *testing.T, s *store.Store) store.NotifyClaim {
	t.Helper()
	storetest.AddStation(t, s, "A")
	now := time.Now()
	queue(t, s, "A", 1, 1, 1)
	routeAll(t, s, now, "hook")
	return store.NotifyClaim{Channels: []string{"hook"}, Now: now, Max: 10}
}

// TestDeliverHoldsTheStream: while one dispatcher sends a stream, another finds nothing
// to take; a shutdown during the send records nothing.
func TestDeliverHoldsTheStream(t *testing.T) {
	s, url := storetest.Open(t, store.Options{})
	other := storetest.OpenURL(t, url, store.Options{})
	claim := oneRouted(t, s)
	now := claim.Now

	ctx, cancel := context.WithCancel(t.Context())
	sending := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s.DeliverNotification(ctx, claim, func(ctx context.Context, m store.NotifyMessage) store.NotifyResult {
			close(sending)
			<-ctx.Done()
			return store.NotifyResult{At: time.Now(), Err: ctx.Err(), NextAt: time.Now().Add(time.Hour)}
		})
		done <- err
	}()
	<-sending
	found, err := other.DeliverNotification(t.Context(), claim, func(context.Context, store.NotifyMessage) store.NotifyResult {
		t.Error("a stream being sent is not taken twice")
		return store.NotifyResult{}
	})
	require.NoError(t, err)
	assert.False(t, found)
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	assert.Zero(t, count(t, url, `SELECT count(*) FROM notify_streams WHERE failures > 0 OR messages > 0`),
		"an attempt cut short by a shutdown is not recorded")

	found, err = other.DeliverNotification(t.Context(), claim, func(_ context.Context, m store.NotifyMessage) store.NotifyResult {
		assert.Equal(t, int64(1), m.Number)
		return store.NotifyResult{At: now, NextAt: now.Add(time.Minute)}
	})
	require.NoError(t, err)
	assert.True(t, found)
}

// TestDeliverRecordsAnAnsweredFailureAtShutdown: a receiver's refusal that comes back as
// the shutdown begins is an attempt like any other: recorded, so that the retry waits.
func TestDeliverRecordsAnAnsweredFailureAtShutdown(t *testing.T) {
	s, url := storetest.Open(t, store.Options{})
	claim := oneRouted(t, s)
	now := claim.Now
	ctx, cancel := context.WithCancel(t.Context())
	found, err := s.DeliverNotification(ctx, claim, func(context.Context, store.NotifyMessage) store.NotifyResult {
		cancel() // the shutdown begins while the answer is on its way
		return store.NotifyResult{At: now, Err: errors.New("503 from the receiver"), NextAt: now.Add(time.Minute)}
	})
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, int64(1), count(t, url, `SELECT count(*) FROM notify_streams WHERE failures = 1 AND next_at > now()`))
}

// TestPruneNotifications: undelivered transitions past the maximum age are given up (and
// a stream left with nothing to send resolves its notify_failing alert), transitions
// never routed too, and old ones that wait for nothing are deleted.
func TestPruneNotifications(t *testing.T) {
	s, url := storetest.Open(t, store.Options{})
	storetest.AddStation(t, s, "A")
	now := time.Now()
	queue(t, s, "A", 1, 1, 2)
	routeAll(t, s, now, "hook", "mail")
	claim := store.NotifyClaim{Channels: []string{"hook"}, Now: now, Max: 10}
	_, err := s.DeliverNotification(t.Context(), claim, func(context.Context, store.NotifyMessage) store.NotifyResult {
		return store.NotifyResult{At: now, Err: errors.New("refused"), NextAt: now.Add(time.Hour), Failing: true}
	})
	require.NoError(t, err)
	claim.Channels = []string{"mail"}
	_, err = s.DeliverNotification(t.Context(), claim, func(context.Context, store.NotifyMessage) store.NotifyResult {
		return store.NotifyResult{At: now, NextAt: now.Add(time.Minute)}
	})
	require.NoError(t, err)
	queue(t, s, "A", 3, 3, 1) // never routed

	p, err := s.PruneNotifications(t.Context(), now.Add(-time.Hour), now.Add(-time.Hour), now)
	require.NoError(t, err)
	assert.Equal(t, store.NotifyPruned{}, p, "nothing is old yet")

	later := now.Add(2 * time.Hour)
	p, err = s.PruneNotifications(t.Context(), later, now.Add(-time.Hour), later)
	require.NoError(t, err)
	assert.Equal(t, int64(2+2), p.Expired, "two deliveries to hook, and two transitions never routed (the third and the alert)")
	assert.Equal(t, 1, p.Resolved)
	assert.Zero(t, p.Deleted)
	assert.Zero(t, count(t, url, `SELECT count(*) FROM alerts WHERE rule = $1 AND state <> 'resolved'`, store.RuleNotifyFailing))

	p, err = s.PruneNotifications(t.Context(), now.Add(-time.Hour), later.Add(time.Minute), later)
	require.NoError(t, err)
	assert.Zero(t, p.Expired)
	assert.Equal(t, int64(4), p.Deleted, "the three station transitions and the alert's opening wait for nothing")
	assert.Equal(t, int64(1), count(t, url, `SELECT count(*) FROM notify_outbox WHERE routed_at IS NULL`),
		"the alert's resolution, queued by the last prune, waits for routing")
	assert.Zero(t, count(t, url, `SELECT count(*) FROM notify_deliveries`))
}

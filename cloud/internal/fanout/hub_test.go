package fanout_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/purehealth/purehealth/cloud/internal/fanout"
	"github.com/purehealth/purehealth/cloud/internal/store"
)

// assertEvents checks that the messages are exactly the stored events, in order.
func assertEvents(t *testing.T, want []store.Event, got []msg, who string) {
	t.Helper()
	require.Equal(t, eventIDs(want), msgIDs(got), "%s: the events, in id order, once each", who)
	for i, e := range want {
		m := got[i]
		assert.Equal(t, e.Type, m.Type, who)
		assert.Equal(t, e.Station, m.Station, who)
		assert.True(t, e.Time.Equal(m.Time), "%s: time %s, want %s", who, m.Time, e.Time)
		assert.JSONEq(t, string(e.Data), string(m.Data), who)
	}
}

func TestRoutingByStation(t *testing.T) {
	e := newEnv(t, fanout.Options{}, "A", "B", "C")
	subscribed := func(stations ...string) *client {
		c := e.dial(t, "/ws", nil)
		ack, before := c.subscribe(stations, nil)
		require.Empty(t, before)
		require.NotEmpty(t, ack.status(t).Subscribed)
		return c
	}
	a, b, star := subscribed("A"), subscribed("B"), subscribed("*")
	both := subscribed("A", "*") // a station and everything: each event once
	one := e.dial(t, "/ws/station/A", nil)
	ack, _ := one.untilAck()
	assert.Equal(t, []string{"A"}, ack.status(t).Subscribed)

	e.ingest(t, "A", 3)
	e.ingest(t, "B", 2)
	e.ingest(t, "C", 1)
	all := e.events(t, 0)
	require.Len(t, all, 6)

	assertEvents(t, e.events(t, 0, "A"), a.collect(3), "A")
	assertEvents(t, e.events(t, 0, "B"), b.collect(2), "B")
	assertEvents(t, all, star.collect(6), "*")
	assertEvents(t, all, both.collect(6), "A and *")
	assertEvents(t, e.events(t, 0, "A"), one.collect(3), "/ws/station/A")

	// Nothing else was queued for A's clients: the next message is the next A event.
	e.ingest(t, "B", 1)
	e.ingest(t, "A", 1)
	next := e.events(t, all[5].ID, "A")
	assertEvents(t, next, a.collect(1), "A, later")
	assertEvents(t, next, one.collect(1), "/ws/station/A, later")
}

func TestSubscriptionChanges(t *testing.T) {
	e := newEnv(t, fanout.Options{}, "A", "B", "C")
	c := e.dial(t, "/ws", nil)
	ack, _ := c.subscribe([]string{"A"}, nil)
	assert.Equal(t, []string{"A"}, ack.status(t).Subscribed)
	mark := ack.ID

	e.ingest(t, "A", 1)
	assertEvents(t, e.events(t, mark, "A"), c.collect(1), "A")

	ack, _ = c.subscribe([]string{"B"}, nil)
	assert.Equal(t, []string{"A", "B"}, ack.status(t).Subscribed, "subscriptions add up")
	mark = ack.ID
	e.ingest(t, "B", 1)
	assertEvents(t, e.events(t, mark, "B"), c.collect(1), "B")

	ack = c.unsubscribe("A")
	assert.Equal(t, []string{"B"}, ack.status(t).Subscribed)
	mark = ack.ID
	e.ingest(t, "A", 2)
	e.ingest(t, "B", 1)
	assertEvents(t, e.events(t, mark, "B"), c.collect(1), "A's events no longer come")

	ack, _ = c.subscribe([]string{"*"}, nil)
	assert.Equal(t, []string{"*", "B"}, ack.status(t).Subscribed)
	mark = ack.ID
	e.ingest(t, "C", 1)
	assertEvents(t, e.events(t, mark), c.collect(1), "everything")
	ack = c.unsubscribe("*")
	assert.Equal(t, []string{"B"}, ack.status(t).Subscribed, "dropping * keeps the named stations")
	mark = ack.ID
	e.ingest(t, "C", 1)
	e.ingest(t, "B", 1)
	assertEvents(t, e.events(t, mark, "B"), c.collect(1), "back to B only")

	t.Run("refused messages leave the connection usable", func(t *testing.T) {
		for _, bad := range []any{
			map[string]any{"type": "subscribe", "stations": []string{"B"}, "since": "1"},
			map[string]any{"type": "subscribe", "stations": []string{"not a station"}},
			map[string]any{"type": "dance"},
		} {
			c.send(bad)
			ack, _ := c.untilAck()
			assert.NotEmpty(t, ack.status(t).Error, "%v", bad)
		}
		ack := c.unsubscribe("B")
		assert.Empty(t, ack.status(t).Subscribed)
	})
}

// Subscribing names only stations of the service: made-up ids held memory per
// connection (about 440 KB for 1,000), without a token. The number named is capped too.
func TestSubscribeRefusesUnknownStations(t *testing.T) {
	e := newEnv(t, fanout.Options{MaxStations: 3}, "A", "B", "C", "D")
	c := e.dial(t, "/ws", nil)
	ack, _ := c.subscribe([]string{"A", "MADE-UP-1", "MADE-UP-2"}, nil)
	assert.Equal(t, "stations: no station MADE-UP-1, MADE-UP-2", ack.status(t).Error)
	assert.Empty(t, ack.status(t).Subscribed, "nothing of a refused request is applied")

	ack, _ = c.subscribe([]string{"A", "B"}, nil)
	assert.Equal(t, []string{"A", "B"}, ack.status(t).Subscribed)
	ack, _ = c.subscribe([]string{"C", "D"}, nil)
	assert.Equal(t, "stations: at most 3 per connection", ack.status(t).Error)
	ack, _ = c.subscribe([]string{"C"}, nil)
	assert.Equal(t, []string{"A", "B", "C"}, ack.status(t).Subscribed)
	assert.Positive(t, e.hub.Stats().Rejected["unknown_station"], "counted: %v", e.hub.Stats().Rejected)
}

func TestStationEndpointChecksTheStation(t *testing.T) {
	e := newEnv(t, fanout.Options{}, "A")
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/ws/station/NOPE", http.StatusNotFound},
		{"/ws/station/a%20b", http.StatusBadRequest},
		{"/ws/station/A?since=yesterday", http.StatusBadRequest},
	} {
		_, resp, err := e.tryDial(t, tt.path, nil)
		require.Error(t, err, tt.path)
		assert.Equal(t, tt.want, statusOf(resp), tt.path)
	}
}

// Tokens are checked before the hub (cloud/internal/access, tested with the server).
func TestOrigins(t *testing.T) {
	e := newEnv(t, fanout.Options{AllowedOrigins: []string{"dash.example.org"}}, "A")
	header := func(kv ...string) *websocket.DialOptions {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return &websocket.DialOptions{HTTPHeader: h}
	}
	tests := []struct {
		name string
		path string
		opts *websocket.DialOptions
		want int // 0: accepted
	}{
		{"no origin (not a browser)", "/ws", nil, 0},
		{"allowed origin", "/ws", header("Origin", "https://dash.example.org"), 0},
		{"same origin", "/ws", header("Origin", e.srv.URL), 0},
		{"other origin", "/ws", header("Origin", "https://evil.example.com"), http.StatusForbidden},
		{"look-alike origin", "/ws", header("Origin", "https://dash.example.org.evil.com"), http.StatusForbidden},
		{"station path, other origin", "/ws/station/A", header("Origin", "https://evil.example.com"), http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, resp, err := e.tryDial(t, tt.path, tt.opts)
			if tt.want != 0 {
				require.Error(t, err)
				assert.Equal(t, tt.want, statusOf(resp))
				return
			}
			require.NoError(t, err)
			ack, _ := c.subscribe([]string{"A"}, nil)
			assert.Equal(t, []string{"A"}, ack.status(t).Subscribed)
		})
	}
	assert.Equal(t, int64(3), e.hub.Stats().Rejected["origin"])
}

func TestOversizedAndTooManyMessagesClose(t *testing.T) {
	e := newEnv(t, fanout.Options{ReadLimit: 512, MessageRate: 1, MessageBurst: 3}, "A")
	t.Run("oversized frame", func(t *testing.T) {
		c := e.dial(t, "/ws", nil)
		big := `{"type":"subscribe","stations":["` + strings.Repeat("A", 600) + `"]}`
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, c.conn.Write(ctx, websocket.MessageText, []byte(big)))
		_, err := c.read(10 * time.Second)
		require.Error(t, err)
		assert.Equal(t, websocket.StatusMessageTooBig, websocket.CloseStatus(err), "closed with 1009: %v", err)
	})
	t.Run("message flood", func(t *testing.T) {
		c := e.dial(t, "/ws", nil)
		for range 6 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := c.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"unsubscribe","stations":["A"]}`))
			cancel()
			if err != nil {
				break
			}
		}
		var err error
		for err == nil {
			_, err = c.read(10 * time.Second)
		}
		assert.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "closed with 1008: %v", err)
	})
	assert.Equal(t, int64(1), e.hub.Stats().Rejected["misbehaving"])
}

// TestSlowClientEvictedOthersUnaffected keeps a client that never reads subscribed to
// everything while two others read: the silent one is evicted, and the others receive
// every event in order, each batch within a generous bound of its commit.
func TestSlowClientEvictedOthersUnaffected(t *testing.T) {
	e := newEnv(t, fanout.Options{Queue: 1000, WriteTimeout: 3 * time.Second, CloseTimeout: 200 * time.Millisecond},
		"A", "B")
	// A small receive buffer, so that the kernel does not hold megabytes for it.
	slow := e.dial(t, "/ws", &websocket.DialOptions{HTTPClient: smallBufferClient()})
	ack, _ := slow.subscribe([]string{"*"}, nil)
	start := ack.ID

	// The fast clients are pumped into channels by goroutines that end when their
	// connection closes (at the end of the test).
	type arrival struct {
		m  msg
		at time.Time
	}
	var fast []chan arrival
	var seen [2]atomic.Int64 // the last id each fast client received
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for i := range 2 {
		c := e.dial(t, "/ws", nil)
		c.subscribe([]string{"*"}, nil)
		ch := make(chan arrival, 100000)
		fast = append(fast, ch)
		wg.Go(func() {
			for {
				m, err := c.read(time.Minute)
				if err != nil {
					return
				}
				ch <- arrival{m, time.Now()}
				seen[i].Store(m.ID)
			}
		})
	}

	type batch struct {
		stored time.Time
		last   int64
	}
	var batches []batch
	evicted := func() bool { return e.hub.Stats().EvictionsTotal() > 0 }
	for i := 0; i < 500 && !evicted(); i++ {
		e.ingest(t, []string{"A", "B"}[i%2], 200)
		last := e.lastEventID(t)
		batches = append(batches, batch{time.Now(), last})
		// The next batch waits for the readers, as a station's next batch waits for the
		// database: what is measured is whether the slow client holds them up.
		require.Eventually(t, func() bool { return seen[0].Load() >= last && seen[1].Load() >= last },
			10*time.Second, time.Millisecond, "the fast clients receive batch %d", i)
	}
	require.Eventually(t, evicted, 10*time.Second, 20*time.Millisecond, "the client that never reads is evicted")
	e.ingest(t, "A", 10) // and the stream goes on
	want := e.events(t, start)

	for i, ch := range fast {
		var got []msg
		byID := map[int64]time.Time{}
		timeout := time.After(30 * time.Second)
		for len(got) < len(want) {
			select {
			case a := <-ch:
				got = append(got, a.m)
				byID[a.m.ID] = a.at
			case <-timeout:
				t.Fatalf("fast reader %d: %d of %d events after 30s", i, len(got), len(want))
			}
		}
		assertEvents(t, want, got, "fast reader "+strconv.Itoa(i))
		// Latency: each batch's last event reached the reader soon after its commit
		// (generous bound: this checks that nobody waited for the slow client, not speed).
		for _, b := range batches {
			if at, ok := byID[b.last]; assert.True(t, ok) {
				assert.Less(t, at.Sub(b.stored), 5*time.Second, "batch ending at %d", b.last)
			}
		}
	}
	st := e.hub.Stats()
	assert.Equal(t, int64(1), st.EvictionsTotal(), "only the slow client: %v", st.Evictions)
	assert.Equal(t, int64(2), st.Clients)

	// What the kernel buffered for the evicted client (megabytes) drains slowly through
	// its small window: its close code is checked in TestEvictionClosesWith1008.
}

// TestStuckWriteIsCut leaves a client that never reads with a queue too large to fill:
// the watchdog closes it once a write has been stuck for the write timeout.
func TestStuckWriteIsCut(t *testing.T) {
	e := newEnv(t, fanout.Options{Queue: 1 << 30, WriteTimeout: 300 * time.Millisecond}, "A")
	stuck := e.dial(t, "/ws", &websocket.DialOptions{HTTPClient: smallBufferClient()})
	stuck.subscribe([]string{"*"}, nil)
	timedOut := func() bool { return e.hub.Stats().Evictions["write_timeout"] > 0 }
	for i := 0; i < 500 && !timedOut(); i++ {
		e.ingest(t, "A", 200)
	}
	require.Eventually(t, timedOut, 10*time.Second, 20*time.Millisecond, "the stuck write is cut")
	require.Eventually(t, func() bool { return e.hub.Stats().Clients == 0 }, 10*time.Second, 20*time.Millisecond)
	assert.Zero(t, e.hub.Stats().Evictions["slow_consumer"], "the queue never filled")
}

// TestEvictionClosesWith1008 overflows the queue of a client whose connection is fine
// (one batch larger than Queue): it is told why it is evicted.
func TestEvictionClosesWith1008(t *testing.T) {
	e := newEnv(t, fanout.Options{Queue: 5}, "A")
	small := e.dial(t, "/ws", nil)
	small.subscribe([]string{"A"}, nil)
	e.ingest(t, "A", 20)
	var err error
	for err == nil {
		_, err = small.read(10 * time.Second)
	}
	assert.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "%v", err)
	assert.Contains(t, err.Error(), "slow consumer")
	assert.Equal(t, int64(1), e.hub.Stats().Evictions["slow_consumer"])
}

// TestResumeNoGapNoDuplicate disconnects a client in the middle of a stream that keeps
// flowing, resumes on a new connection with the last id it saw, and checks that what the
// two connections delivered together is exactly the stream: once each, in order. The gap
// is served from the hub's memory or (with a tiny memory) by the Source, on each Source.
func TestResumeNoGapNoDuplicate(t *testing.T) {
	for _, b := range backends {
		for _, tt := range []struct {
			name   string
			recent int
		}{
			{"from memory", 0},
			{"from the source", 1},
		} {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				e := newEnvOn(t, b.new(t), fanout.Options{Recent: tt.recent}, "A", "B", "C")
				c := e.dial(t, "/ws", nil)
				ack, _ := c.subscribe([]string{"A", "B"}, nil)
				start := ack.ID

				done := make(chan struct{})
				go func() {
					defer close(done)
					for i := range 40 {
						e.ingest(t, []string{"A", "B", "C"}[i%3], 3)
						time.Sleep(10 * time.Millisecond)
					}
				}()
				first := c.collect(20)
				c.conn.CloseNow()
				time.Sleep(50 * time.Millisecond) // more events come while nobody listens

				c2 := e.dial(t, "/ws", nil)
				ack2, replayed := c2.subscribe([]string{"B", "A"}, strconv.FormatInt(first[len(first)-1].ID, 10))
				st := ack2.status(t)
				assert.False(t, st.Resync)
				require.NotNil(t, st.Replayed)
				assert.Equal(t, len(replayed), *st.Replayed)
				<-done
				want := e.events(t, start, "A", "B")
				got := append(append([]msg{}, first...), replayed...)
				got = append(got, c2.collect(len(want)-len(got))...)
				assertEvents(t, want, got, "both connections together")
				assert.LessOrEqual(t, ack2.ID, got[len(got)-1].ID)
			})
		}
	}
}

func TestResumeByTime(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnvOn(t, b.new(t), fanout.Options{}, "A")
			e.ingest(t, "A", 2)
			time.Sleep(20 * time.Millisecond)
			since := time.Now()
			time.Sleep(20 * time.Millisecond)
			mark := e.lastEventID(t)
			e.ingest(t, "A", 3)

			c := e.dial(t, "/ws/station/A?since="+since.UTC().Format(time.RFC3339Nano), nil)
			_, got := c.untilAck()
			want := e.events(t, mark)
			// Replayed before the acknowledgement, or live after it when this replica had
			// not read them yet: either way once each, in order.
			got = append(got, c.collect(len(want)-len(got))...)
			assertEvents(t, want, got, "events stored after the time")
		})
	}
}

func TestResumeResyncs(t *testing.T) {
	tests := []struct {
		name   string
		opts   fanout.Options
		since  func(t *testing.T, e *env) any
		reason string
	}{
		{"gap too large", fanout.Options{ReplayMax: 5}, func(*testing.T, *env) any { return "1" }, "more than 5 events"},
		{"gap too large, from the database", fanout.Options{ReplayMax: 5, Recent: 1}, func(*testing.T, *env) any { return 1 }, "more than 5 events"},
		{"unknown id", fanout.Options{}, func(*testing.T, *env) any { return "999999" }, "not an event id"},
		{"too old", fanout.Options{Now: func() time.Time { return time.Now().Add(25 * time.Hour) }},
			func(*testing.T, *env) any { return "1" }, "older than the replay window"},
		{"too old, from the database", fanout.Options{Recent: 1, Now: func() time.Time { return time.Now().Add(25 * time.Hour) }},
			func(*testing.T, *env) any { return "1" }, "older than the replay window"},
		{"time too old", fanout.Options{}, func(*testing.T, *env) any { return time.Now().Add(-25 * time.Hour).Format(time.RFC3339) }, "older than the replay window"},
		{"pruned", fanout.Options{Recent: 1}, func(t *testing.T, e *env) any {
			e.prune(t, time.Now().Add(time.Hour))
			e.ingest(t, "A", 1)
			return "1"
		}, "no longer kept"},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				e := newEnvOn(t, b.new(t), tt.opts, "A")
				e.ingest(t, "A", 10)
				require.Eventually(t, func() bool { return e.hub.Position() > 0 }, 10*time.Second, 10*time.Millisecond)
				since := tt.since(t, e)
				last := e.lastEventID(t)
				require.Eventually(t, func() bool { return e.hub.Position() == last }, 10*time.Second, 10*time.Millisecond)

				c := e.dial(t, "/ws", nil)
				ack, before := c.subscribe([]string{"A"}, since)
				require.Len(t, before, 1, "a resync message, no events")
				st := before[0].status(t)
				assert.True(t, st.Resync)
				assert.Contains(t, st.Reason, tt.reason)
				assert.Equal(t, last, before[0].ID, "the resync's id is the new resume point")
				assert.Equal(t, last, ack.ID)

				e.ingest(t, "A", 1) // live from there
				assertEvents(t, e.events(t, last), c.collect(1), "live after the resync")
				assert.Equal(t, int64(1), e.hub.Stats().Resyncs)
			})
		}
	}
}

// TestNoGoroutineLeak connects and drops clients every way there is and checks that
// nothing is left running: after the clients leave (the hub still running), and after
// the hub stops.
func TestNoGoroutineLeak(t *testing.T) {
	base := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, base) }) // runs after the hub has stopped
	e := newEnv(t, fanout.Options{Queue: 50, ReadLimit: 256, PingInterval: 50 * time.Millisecond}, "A", "B")
	warm := e.dial(t, "/ws", nil)
	warm.subscribe([]string{"A"}, nil)
	e.ingest(t, "A", 1)
	warm.collect(1)
	warm.conn.Close(websocket.StatusNormalClosure, "")
	require.Eventually(t, func() bool { return e.hub.Stats().Clients == 0 }, 10*time.Second, 10*time.Millisecond)
	running := goleak.IgnoreCurrent()

	var clients []*client
	for i := range 12 {
		path := "/ws"
		if i%3 == 0 {
			path = "/ws/station/B"
		}
		c := e.dial(t, path, nil)
		if path == "/ws" {
			c.subscribe([]string{"*"}, nil)
		} else {
			c.untilAck()
		}
		clients = append(clients, c)
	}
	e.ingest(t, "B", 2)
	for i, c := range clients {
		switch i % 4 {
		case 0:
			c.collect(2)
			require.NoError(t, c.conn.Close(websocket.StatusNormalClosure, "bye"))
		case 1:
			c.collect(1)
			c.conn.CloseNow()
		case 2: // never reads: evicted once enough comes
		case 3:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			assert.NoError(t, c.conn.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", 1000))))
			cancel()
		}
	}
	for i := 0; e.hub.Stats().Clients > 0 && i < 50; i++ {
		e.ingest(t, "B", 100)
	}
	for _, c := range clients {
		c.conn.CloseNow()
	}
	require.Eventually(t, func() bool { return e.hub.Stats().Clients == 0 }, 10*time.Second, 10*time.Millisecond)
	goleak.VerifyNone(t, running)
}

func TestShutdownClosesConnectionsWithGoingAway(t *testing.T) {
	e := startHub(t, newMemSource(), fanout.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.hub.Run(ctx) }()
	c := e.dial(t, "/ws", nil)
	c.subscribe([]string{"*"}, nil)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	_, err := c.read(10 * time.Second)
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
	_, resp, err := e.tryDial(t, "/ws", nil)
	require.Error(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, statusOf(resp), "no new connections after shutdown")
}

// TestResumeInsideABatch resumes from an id in the middle of a batch's readings (stored
// as one row of their span): the client gets the rest of that batch and what follows,
// from the hub's memory or from the database, once each and in order.
func TestResumeInsideABatch(t *testing.T) {
	for _, b := range backends {
		for _, recent := range []int{0, 1} { // 0: the default memory; 1: the database serves it
			t.Run(fmt.Sprintf("%s/recent=%d", b.name, recent), func(t *testing.T) {
				e := newEnvOn(t, b.new(t), fanout.Options{Recent: recent}, "A", "B")
				e.ingest(t, "A", 10)
				e.ingest(t, "B", 4)
				e.ingest(t, "A", 6)
				all := e.events(t, 0)
				require.Len(t, all, 20)
				since := all[3].ID // inside A's first batch

				c := e.dial(t, "/ws", nil)
				ack, replayed := c.subscribe([]string{"A"}, strconv.FormatInt(since, 10))
				st := ack.status(t)
				assert.False(t, st.Resync, st.Reason)
				require.NotNil(t, st.Replayed)
				assert.Equal(t, 12, *st.Replayed, "6 of the first batch and the 6 of the second")
				assertEvents(t, e.events(t, since, "A"), replayed, "the rest of the batch, then the next")

				e.ingest(t, "A", 3)
				assertEvents(t, e.events(t, all[19].ID, "A"), c.collect(3), "live after the resume")
			})
		}
	}
}

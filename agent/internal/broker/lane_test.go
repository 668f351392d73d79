package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// phPayload is a pH reading whose value tells the publishes apart.
func phPayload(i int) string {
	return fmt.Sprintf(`{"value": %d.5, "unit": "pH", "timestamp": "2025-11-13T12:00:00"}`, 3+i)
}

// waitReceived waits until the broker has read n publishes on reading topics.
func waitReceived(t *testing.T, b *Broker, n int64) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for b.Stats().MessagesReceived < n {
		if time.Now().After(deadline) {
			t.Fatalf("the broker read %d publishes, want %d", b.Stats().MessagesReceived, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitEntered waits for the next call of the sink.
func waitEntered(t *testing.T, sink *fakeSink) {
	t.Helper()
	select {
	case <-sink.entered:
	case <-time.After(guard):
		t.Fatal("the sink was not called")
	}
}

// readAck reads the next packet, which must be a PUBACK, and returns its packet id and
// reason code.
func readAck(t *testing.T, c *rawConn) (uint16, byte) {
	t.Helper()
	p := c.read()
	require.Equal(t, byte(4), p.kind(), "want a PUBACK, got %s", p.bytes())
	require.GreaterOrEqual(t, len(p.body), 2)
	return binary.BigEndian.Uint16(p.body), pubackReason(p)
}

// While a client's publish is being stored, the broker reads its next ones; they reach
// the sink together in one call, each is acknowledged only once stored, in the order the
// publishes came, and a publish answered at once (a refusal) waits for those before it.
// Subscribers get the stored publishes in order.
func TestLaneStoresQueuedPublishesTogetherAndAnswersInOrder(t *testing.T) {
	b, sink := startBroker(t, nil)
	sink.gate = make(chan struct{})
	watcher := mustConnectV5(t, b, "viewer1", "viewpass")
	_, err := watcher.subscribe(t, phTopic, 1)
	require.NoError(t, err)

	c := dialRaw(t, b, "device1", "devpass", true)
	c.publishID(phTopic, 1, 1, phPayload(1))
	waitEntered(t, sink) // publish 1 is in the sink, held there
	for id := uint16(2); id <= 5; id++ {
		c.publishID(phTopic, 1, id, phPayload(int(id)))
	}
	c.publishID(phTopic, 1, 6, "not json")
	waitReceived(t, b, 6) // all read while publish 1 is still being stored
	require.Equal(t, 1, sink.Calls())

	sink.gate <- struct{}{}
	id, reason := readAck(t, c)
	assert.Equal(t, uint16(1), id)
	assert.Equal(t, byte(0), reason)
	first := storedBeforeAck(t, sink)
	require.Len(t, first, 1)
	assert.InDelta(t, 4.5, first[0].Value, 1e-9)

	waitEntered(t, sink)
	sink.gate <- struct{}{}
	id, reason = readAck(t, c)
	assert.Equal(t, uint16(2), id)
	assert.Equal(t, byte(0), reason)
	rest := storedBeforeAck(t, sink)
	require.Len(t, rest, 4, "publishes 2 to 5 reach the sink in one call")
	for i, o := range rest {
		assert.InDelta(t, float64(5+i)+0.5, o.Value, 1e-9, "in the order sent")
	}
	for want := uint16(3); want <= 5; want++ {
		id, reason = readAck(t, c)
		assert.Equal(t, want, id)
		assert.Equal(t, byte(0), reason)
	}
	id, reason = readAck(t, c)
	assert.Equal(t, uint16(6), id, "the refusal comes after the acknowledgements of the publishes before it")
	assert.Equal(t, byte(0x99), reason)
	assert.Equal(t, 2, sink.Calls())

	for i := 1; i <= 5; i++ {
		m := watcher.next(t)
		assert.Equal(t, phTopic, m.Topic)
		assert.JSONEq(t, phPayload(i), string(m.Payload), "delivered in the order sent")
	}
	c.alive()
}

// A call of the sink that fails leaves all of its publishes unacknowledged, and only them.
func TestLaneStoreFailureLeavesItsPublishesUnacknowledged(t *testing.T) {
	b, sink := startBroker(t, nil)
	sink.gate = make(chan struct{})
	sink.failNext(2)

	c := dialRaw(t, b, "device1", "devpass", false)
	c.publishID(phTopic, 1, 1, phPayload(1))
	waitEntered(t, sink)
	c.publishID(phTopic, 1, 2, phPayload(2))
	c.publishID(phTopic, 1, 3, phPayload(3))
	waitReceived(t, b, 3)
	sink.gate <- struct{}{} // publish 1 fails
	waitEntered(t, sink)
	sink.gate <- struct{}{} // publishes 2 and 3 fail together
	c.publishID(phTopic, 1, 4, phPayload(4))
	waitEntered(t, sink)
	sink.gate <- struct{}{}

	id, _ := readAck(t, c)
	assert.Equal(t, uint16(4), id, "the publishes of the failed calls are not acknowledged")
	assert.Len(t, storedBeforeAck(t, sink), 1)
	sink.none(t)
	assert.Equal(t, int64(3), b.Stats().Rejects[ReasonStoreFailure])
	assert.Equal(t, 3, sink.Calls())
	c.alive()
}

// A lane holds at most laneDepth publishes: beyond them the broker stops reading from the
// client until the sink catches up, and nothing is lost.
func TestLaneFullStopsReading(t *testing.T) {
	b, sink := startBroker(t, nil)
	sink.gate = make(chan struct{})

	c := dialRaw(t, b, "device1", "devpass", false)
	n := laneDepth + 3
	c.publishID(phTopic, 1, 1, phPayload(1))
	waitEntered(t, sink)
	for id := 2; id <= n; id++ {
		c.publishID(phTopic, 1, uint16(id), phPayload(id))
	}
	// One publish in the sink and laneDepth queued; the next one is read and waits for
	// room in OnPublish, and the rest stay unread.
	waitReceived(t, b, int64(laneDepth)+2)
	sink.gate <- struct{}{}
	id, reason := readAck(t, c)
	require.Equal(t, uint16(1), id)
	require.Equal(t, byte(0), reason)
	stored := len(storedBeforeAck(t, sink))
	for stored < n {
		waitEntered(t, sink)
		sink.gate <- struct{}{}
		batch := <-sink.got
		assert.LessOrEqual(t, len(batch), laneDepth, "a call holds no more than a lane")
		stored += len(batch)
	}
	for id := 2; id <= n; id++ {
		got, reason := readAck(t, c)
		require.Equal(t, uint16(id), got)
		require.Equal(t, byte(0), reason)
	}
	assert.Equal(t, int64(n), b.Stats().MessagesReceived)
	c.alive()
}

// The sink's refusals of the observations of one call go back to the publishes they came
// from: a publish with some readings refused is acknowledged, one with all refused gets
// its refusal, whatever their neighbours in the call.
func TestLaneRefusalsGoToTheirPublishes(t *testing.T) {
	b, sink := startBroker(t, nil)
	sink.gate = make(chan struct{})

	c := dialRaw(t, b, "device1", "devpass", true)
	c.publishID(phTopic, 1, 1, phPayload(1))
	waitEntered(t, sink)
	c.publishID(readingsTopic, 1, 2, `[{"param": "radon", "value": 1, "unit": "Bq/L"}, {"param": "do", "value": 6.5, "unit": "mg/L"}]`)
	c.publishID(readingsTopic, 1, 3, `[{"param": "radon", "value": 2, "unit": "Bq/L"}]`)
	c.publishID(phTopic, 1, 4, phPayload(4))
	waitReceived(t, b, 4)
	sink.gate <- struct{}{}
	waitEntered(t, sink)
	sink.gate <- struct{}{}

	want := []struct {
		id     uint16
		reason byte
	}{{1, 0}, {2, 0}, {3, 0x83}, {4, 0}}
	for _, w := range want {
		id, reason := readAck(t, c)
		assert.Equal(t, w.id, id)
		assert.Equal(t, w.reason, reason, "publish %d", w.id)
	}
	assert.Len(t, <-sink.got, 1)
	second := <-sink.got
	require.Len(t, second, 2, "the readings of publishes 2 and 4 that the sink kept")
	assert.Equal(t, "do", string(second[0].Param))
	assert.Equal(t, "ph", string(second[1].Param))
	assert.Equal(t, int64(2), b.Stats().Rejects[ReasonUnknownParam])
	assert.Equal(t, int64(3), b.Stats().ReadingsAccepted)
}

// A device's QoS 1 readings, stored by its lane, reach subscribers as from their sender:
// a subscription of the sender's own with No Local (MQTT 5) does not get them back, a
// device's subscription without it and every other subscriber do, with the publish's user
// properties.
func TestLanePublishesKeepTheirSender(t *testing.T) {
	b, _ := startBroker(t, nil)
	watcher := mustConnectV5(t, b, "viewer1", "viewpass")
	_, err := watcher.subscribe(t, phTopic, 1)
	require.NoError(t, err)
	device := mustConnectV5(t, b, "device1", "devpass")
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	_, err = device.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: phTopic, QoS: 1, NoLocal: true}}})
	require.NoError(t, err)
	other := mustConnectV5(t, b, "gateway", "gwpass")
	_, err = other.subscribe(t, phTopic, 1)
	require.NoError(t, err)

	for i := range 3 {
		resp, err := device.Publish(ctx, &paho.Publish{Topic: phTopic, QoS: 1, Payload: []byte(phPayload(i)),
			Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "fw", Value: "1.2"}}}})
		require.NoError(t, err)
		assert.Equal(t, byte(0), resp.ReasonCode)
	}
	for _, c := range []*v5client{watcher, other} {
		for i := range 3 {
			p := c.next(t)
			assert.Equal(t, phPayload(i), string(p.Payload), "in order")
			assert.Equal(t, "1.2", p.Properties.User.Get("fw"))
		}
	}
	select {
	case p := <-device.received:
		t.Fatalf("No Local: the sender got its own publish back: %s", p.Payload)
	case <-time.After(200 * time.Millisecond):
	}
}

// With nobody subscribed, a stored publish gets one bare PUBACK (none of the publish's
// properties, MQTT 5 or not), and a retained one is still retained for whoever subscribes
// later.
func TestLaneAnswersWithoutSubscribers(t *testing.T) {
	b, sink := startBroker(t, nil)
	for _, v5 := range []bool{true, false} {
		c := dialRaw(t, b, "device1", "devpass", v5)
		c.publishID(phTopic, 1, 7, phPayload(1), "fw", "1.2")
		p := c.read()
		assert.Equal(t, byte(0x40), p.header, "PUBACK, no flags")
		assert.Equal(t, []byte{0, 7}, p.body, "v5 %v: packet id, and nothing else", v5)
		require.Len(t, sink.next(t), 1, "stored before it was acknowledged")
		c.alive() // and one answer only: what mochi was left of the publish it drops
	}

	device := mustConnectV5(t, b, "device1", "devpass")
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	resp, err := device.Publish(ctx, &paho.Publish{Topic: phTopic, QoS: 1, Retain: true, Payload: []byte(phPayload(2))})
	require.NoError(t, err)
	assert.Equal(t, byte(0), resp.ReasonCode)
	watcher := mustConnectV5(t, b, "viewer1", "viewpass")
	_, err = watcher.subscribe(t, phTopic, 1)
	require.NoError(t, err)
	m := watcher.next(t)
	assert.Equal(t, phPayload(2), string(m.Payload))
	assert.True(t, m.Retain, "retained though nobody was subscribed when it was stored")
}

// A lane's goroutine stays while its client is connected, idle between publishes, and
// ends once the client has gone.
func TestLaneGoroutineLivesWithTheClient(t *testing.T) {
	b, sink := startBroker(t, nil)
	c := dialRaw(t, b, "device1", "devpass", false)
	laneOf := func() *lane {
		var found *lane
		b.hook.laneByClient.Range(func(_, v any) bool { found = v.(*lane); return false })
		return found
	}
	state := func(l *lane) (alive, waiting bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.alive, l.waiting
	}

	for i := range 3 {
		c.publishID(phTopic, 1, uint16(i+1), phPayload(i))
		p := c.read()
		assert.Equal(t, byte(0x40), p.header)
		require.Len(t, sink.next(t), 1)
		l := laneOf()
		require.NotNil(t, l, "publish %d: the client has a lane", i)
		require.Eventually(t, func() bool { alive, waiting := state(l); return alive && waiting }, guard, time.Millisecond,
			"publish %d: the lane's goroutine waits for the next publish", i)
	}
	l := laneOf()
	require.NoError(t, c.conn.Close())
	require.Eventually(t, func() bool { alive, _ := state(l); return !alive && laneOf() == nil }, guard, time.Millisecond,
		"the lane's goroutine ends with its client")
}

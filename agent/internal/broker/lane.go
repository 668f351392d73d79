package broker

import (
	"errors"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/purehealth/purehealth/agent/internal/payload"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// A lane stores one client's QoS 1 publishes of readings while mochi goes on reading the
// client's next packets, and answers them in order. mochi processes a client's packets one
// at a time: storing each publish before reading the next would let a client have one
// publish in the sink at a time, however many it sends without waiting for
// acknowledgements, and a group commit could never hold more readings than there are
// clients. A lane hands the sink everything the client sent meanwhile in one call, which
// the sink makes durable in one commit.
//
// The lane acknowledges a publish only once the sink has stored it, as OnPublish does, and
// then delivers it to subscribers; a publish the sink could not store stays
// unacknowledged. A lane has a goroutine only while it has publishes to store.
type lane struct {
	mu      sync.Mutex
	changed sync.Cond // broadcast when publishes leave the queue, and when the lane goes idle
	queue   []queued
	bytes   int  // payload bytes in queue
	running bool // a goroutine is storing or answering publishes of this lane
}

// queued is a publish waiting in its lane.
type queued struct {
	pk packets.Packet
	in *inbound
}

// laneDepth is how many publishes a client may have queued in its lane; the next one waits
// in OnPublish, and mochi stops reading from the client. With those being stored, a client
// has at most twice as many publishes held by the broker.
const laneDepth = 64

// enqueue adds a publish to cl's lane, waiting for room first, and starts the lane's
// goroutine if it is idle. Room is laneDepth publishes and Options.MaxPacketSize bytes of
// payload, so that a lane holds about as much as one packet of the largest size; a single
// publish always fits.
func (h *hook) enqueue(cl *mqtt.Client, pk packets.Packet, in *inbound) {
	l := h.laneOf(cl)
	size := len(pk.Payload)
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.queue) >= laneDepth || len(l.queue) > 0 && l.bytes+size > int(h.b.opts.MaxPacketSize) {
		l.changed.Wait()
	}
	l.queue = append(l.queue, queued{pk: pk, in: in})
	l.bytes += size
	if !l.running {
		l.running = true
		h.lanes.Add(1)
		go h.drain(cl, l)
	}
}

// settle waits until cl's lane has answered every publish queued in it, so that a publish
// answered at once is answered after them.
func (h *hook) settle(cl *mqtt.Client) {
	v, ok := h.laneByClient.Load(cl)
	if !ok {
		return
	}
	l := v.(*lane)
	l.mu.Lock()
	for l.running {
		l.changed.Wait()
	}
	l.mu.Unlock()
}

// laneOf returns cl's lane, creating it on first use. OnDisconnect forgets it.
func (h *hook) laneOf(cl *mqtt.Client) *lane {
	if v, ok := h.laneByClient.Load(cl); ok {
		return v.(*lane)
	}
	l := &lane{}
	l.changed.L = &l.mu
	v, _ := h.laneByClient.LoadOrStore(cl, l)
	return v.(*lane)
}

// OnDisconnect forgets the client's lane. A lane still storing publishes finishes them;
// their acknowledgements go nowhere, and the client sends them again if its session
// survives, as after any connection lost before an acknowledgement.
func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.laneByClient.Delete(cl)
}

// laneObservations bounds the observations of one Sink.Ingest call made by a lane: as many
// as a single publish may hold, so that a lane's call is no larger than the largest
// publish's. A publish is never split.
const laneObservations = payload.MaxItems

// drain stores and answers the publishes of l in order, in as few Sink.Ingest calls as
// laneObservations allows, until the queue is empty.
func (h *hook) drain(cl *mqtt.Client, l *lane) {
	defer h.lanes.Done()
	var obs []telemetry.Observation
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.running = false
			l.queue = nil // let the array and its payloads go
			l.changed.Broadcast()
			l.mu.Unlock()
			return
		}
		n, count := 0, 0
		for n < len(l.queue) && (n == 0 || count+len(l.queue[n].in.obs) <= laneObservations) {
			count += len(l.queue[n].in.obs)
			l.bytes -= len(l.queue[n].pk.Payload)
			n++
		}
		batch := append([]queued(nil), l.queue[:n]...)
		l.queue = append(l.queue[:0], l.queue[n:]...)
		l.changed.Broadcast()
		l.mu.Unlock()

		obs = obs[:0]
		for _, q := range batch {
			obs = append(obs, q.in.obs...)
		}
		rejected, err := h.b.sink.Ingest(h.ingest.context(time.Now()), obs)
		off := 0
		for _, q := range batch {
			end := off + len(q.in.obs)
			var rej []error
			if off < len(rejected) {
				rej = rejected[off:min(end, len(rejected))]
			}
			off = end
			h.answer(cl, q.pk, h.stored(cl, q.pk, q.in, rej, err))
		}
	}
}

// answer does for a publish of a lane what mochi does for one OnPublish has settled with
// verdict: acknowledge it unless it is to stay unacknowledged (packets.ErrRejectPacket,
// after which refusePublish may have sent an MQTT 5 refusal itself), and deliver it to
// subscribers if it was accepted.
func (h *hook) answer(cl *mqtt.Client, pk packets.Packet, verdict error) {
	if errors.Is(verdict, packets.ErrRejectPacket) {
		return
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID}
	if err := cl.WritePacket(ack); err != nil {
		h.b.log.Debug("acknowledgement not sent", "client", cut(cl.ID, 64), "error", err)
	}
	if verdict != nil { // packets.CodeSuccessIgnore: acknowledged, not passed on
		return
	}
	// mochi passes a publish on as from its inline client, with the sender's packet
	// (payload, properties, retain flag) intact; the origin becomes the broker's.
	inline, ok := h.b.srv.Clients.Get(mqtt.InlineClientId)
	if !ok {
		return
	}
	pk.Ignore = false
	if err := h.b.srv.InjectPacket(inline, pk); err != nil {
		h.b.log.Warn("stored publish not passed on to subscribers", "topic", pk.TopicName, "error", err)
	}
}

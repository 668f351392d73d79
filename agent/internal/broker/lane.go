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
// A publish is acknowledged only once the sink has stored it, and then delivered to
// subscribers as by mochi for any publish (answer); a publish the sink could not store
// stays unacknowledged. A QoS 1 publish on a reading topic that is refused (a payload
// with no reading in it) waits in the lane too, so that its answer comes in its turn.
//
// A lane's goroutine starts with the client's first QoS 1 reading and ends once the client
// has disconnected and the lane is empty: a goroutine started for every batch cost a
// few percent of the agent's CPU at full load (its creation and first stack growth).
type lane struct {
	mu      sync.Mutex
	changed sync.Cond // broadcast when publishes leave the queue, and when the lane goes idle
	work    sync.Cond // signalled when a publish arrives for a waiting goroutine, or the client left
	queue   []*queued
	spare   []*queued // the array of the batch before, for the queue after the next
	bytes   int       // payload bytes in queue
	running bool      // the goroutine is storing or answering publishes of this lane
	alive   bool      // the lane has a goroutine
	waiting bool      // it waits for work
	closed  bool      // the client disconnected: the goroutine ends once the queue is empty
}

// queued is a publish waiting in its lane: readings to store (in) or a refusal to send
// (ref), in its turn. A packet is 800 bytes: they are reused (queuedPool) rather than
// allocated for every publish, and so is the array of the readings.
type queued struct {
	pk  packets.Packet
	in  inbound
	ref *refused
}

// observations is the number of readings q holds for the sink.
func (q *queued) observations() int { return len(q.in.obs) }

// queuedKeepObs is the largest array of readings a reused queued keeps: a device's
// publish holds one reading or a few.
const queuedKeepObs = 16

// reset empties q for reuse, keeping a small readings array.
func (q *queued) reset() {
	obs := q.in.obs
	clear(obs) // the readings' strings belong to the publish
	if cap(obs) > queuedKeepObs {
		obs = nil
	}
	*q = queued{in: inbound{obs: obs[:0]}}
}

var queuedPool = sync.Pool{New: func() any { return new(queued) }}

// obsPool holds the arrays that lanes gather a batch's observations in.
var obsPool = sync.Pool{New: func() any { return new([]telemetry.Observation) }}

// laneDepth is how many publishes a client may have queued in its lane; the next one waits
// in OnPacketRead, and mochi stops reading from the client. With those being stored, a client
// has at most twice as many publishes held by the broker.
const laneDepth = 64

// enqueue adds a publish, with the readings or the refusal inspect made of it, to cl's
// lane, waiting for room first, and starts the lane's goroutine, or wakes it if it waits.
// Room is laneDepth publishes and Options.MaxPacketSize bytes of
// payload, so that a lane holds about as much as one packet of the largest size; a single
// publish always fits. q comes from queuedPool; the lane puts it back.
func (h *hook) enqueue(cl *mqtt.Client, q *queued) {
	l := h.laneOf(cl)
	size := len(q.pk.Payload)
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.queue) >= laneDepth || len(l.queue) > 0 && l.bytes+size > int(h.b.opts.MaxPacketSize) {
		l.changed.Wait()
	}
	l.queue = append(l.queue, q)
	l.bytes += size
	switch {
	case !l.alive:
		l.alive = true
		h.lanes.Add(1)
		go h.drain(cl, l)
	case l.waiting:
		l.work.Signal()
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
	for l.running || len(l.queue) > 0 {
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
	l.changed.L, l.work.L = &l.mu, &l.mu
	v, _ := h.laneByClient.LoadOrStore(cl, l)
	return v.(*lane)
}

// OnDisconnect forgets the client's lane and lets its goroutine end. A lane still storing
// publishes finishes them; their acknowledgements go nowhere, and the client sends them
// again if its session survives, as after any connection lost before an acknowledgement.
// mochi calls it once the client's reads have ended, so nothing is queued after it.
func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	v, ok := h.laneByClient.LoadAndDelete(cl)
	if !ok {
		return
	}
	l := v.(*lane)
	l.mu.Lock()
	l.closed = true
	l.work.Signal()
	l.mu.Unlock()
}

// laneObservations bounds the observations of one Sink.Ingest call made by a lane: as many
// as a single publish may hold, so that a lane's call is no larger than the largest
// publish's. A publish is never split.
const laneObservations = payload.MaxItems

// drain stores and answers the publishes of l in order, in as few Sink.Ingest calls as
// laneObservations allows, until the client has disconnected and the queue is empty. The
// acknowledgements of one call leave in one write (batchConn).
func (h *hook) drain(cl *mqtt.Client, l *lane) {
	defer h.lanes.Done()
	conn, _ := cl.Net.Conn.(*batchConn)
	var (
		obsp  *[]telemetry.Observation // from obsPool while there is work
		obs   []telemetry.Observation
		batch []*queued
	)
	for {
		l.mu.Lock()
		if batch != nil {
			l.spare, batch = batch[:0], nil
		}
		for len(l.queue) == 0 {
			if l.running {
				l.running = false
				l.changed.Broadcast()
			}
			if obsp != nil { // an idle client holds no array of readings
				*obsp = obs[:0]
				obsPool.Put(obsp)
				obsp, obs = nil, nil
			}
			if l.closed {
				l.alive = false
				l.mu.Unlock()
				return
			}
			l.waiting = true
			l.work.Wait()
			l.waiting = false
		}
		l.running = true
		if obsp == nil {
			obsp = obsPool.Get().(*[]telemetry.Observation)
			obs = *obsp
		}
		n, count := 0, 0
		for n < len(l.queue) && (n == 0 || count+l.queue[n].observations() <= laneObservations) {
			count += l.queue[n].observations()
			l.bytes -= len(l.queue[n].pk.Payload)
			n++
		}
		// The batch takes the queue's array, and the queue the spare one.
		if n == len(l.queue) {
			batch, l.queue, l.spare = l.queue, l.spare, nil
		} else {
			batch, l.spare = append(l.spare, l.queue[:n]...), nil
			rest := copy(l.queue, l.queue[n:])
			clear(l.queue[rest:])
			l.queue = l.queue[:rest]
		}
		l.changed.Broadcast()
		l.mu.Unlock()

		obs = obs[:0]
		for _, q := range batch {
			obs = append(obs, q.in.obs...)
		}
		var (
			rejected []error
			err      error
		)
		if len(obs) > 0 {
			rejected, err = h.b.sink.Ingest(h.ingest.context(time.Now()), obs)
			clear(obs) // the observations' strings belong to the publishes
		}
		conn.hold()
		var subs subscribed
		off := 0
		for _, q := range batch {
			var verdict error
			if q.ref != nil {
				verdict = h.refusePublish(cl, &q.pk, q.ref.code, q.ref.cause)
			} else {
				end := off + len(q.in.obs)
				var rej []error
				if off < len(rejected) {
					rej = rejected[off:min(end, len(rejected))]
				}
				off = end
				verdict = h.stored(cl, &q.pk, &q.in, rej, err)
			}
			h.answer(cl, conn, &subs, &q.pk, verdict)
			q.reset()
			queuedPool.Put(q)
		}
		conn.flush()
		clear(batch)
	}
}

// answer settles a publish of a lane with verdict, the way mochi settles one that
// OnPublish returned verdict for. A publish that is to stay unacknowledged
// (packets.ErrRejectPacket, after which refusePublish may have sent an MQTT 5 refusal
// itself) gets nothing.
//
// A publish with nothing to retain and nobody to deliver it to gets its PUBACK here: that
// is all mochi would send, and the common case (devices publish, the agent stores). Any
// other is handed back to mochi as if the client had just sent it, with its verdict waiting
// for OnPublish: mochi then acknowledges it and, if it was accepted, retains and delivers
// it as from its sender, so that MQTT 5 No Local and everything else mochi does for a
// publish hold as for one stored at once. (mochi counts it as received a second time in its
// $SYS figures; the broker's own Stats count once.)
func (h *hook) answer(cl *mqtt.Client, conn *batchConn, subs *subscribed, pk *packets.Packet, verdict error) {
	if errors.Is(verdict, errRejectPacket) {
		return
	}
	if errors.Is(verdict, errSuccessIgnore) || !pk.FixedHeader.Retain && !subs.to(h, pk.TopicName) {
		// A bare PUBACK, success: MQTT 3.1.1 has no refusal, and mochi would copy the
		// publish's properties into it [MQTT-3.4.2-1].
		if err := conn.puback(cl, pk.PacketID); err != nil {
			h.b.log.Debug("stored publish not acknowledged", "client", cut(cl.ID, 64), "topic", pk.TopicName, "error", err)
		}
		return
	}
	k := settledKey{cl, pk.PacketID}
	h.settled.Store(k, settledVerdict{verdict})
	if err := h.b.srv.InjectPacket(cl, *pk); err != nil {
		h.b.log.Debug("stored publish not acknowledged", "client", cut(cl.ID, 64), "topic", pk.TopicName, "error", err)
	}
	h.settled.Delete(k) // if mochi did not get as far as OnPublish (the client is gone)
}

// The verdicts answer compares with, as errors once: a packets.Code made an error for each
// comparison is an allocation per publish.
var (
	errRejectPacket  error = packets.ErrRejectPacket
	errSuccessIgnore error = packets.CodeSuccessIgnore
)

// subscribed says whether a publish on a topic has anyone to go to: a subscription of a
// client, a shared one, or one of the agent's own. It keeps the answer for the last topic
// while a lane answers one batch: a device publishes on one topic or a few, mochi's
// look-up allocates, and the publishes of a batch were all read before any of them is
// answered, so one look-up for them is as right as one each.
type subscribed struct {
	topic string
	any   bool
	known bool
}

func (s *subscribed) to(h *hook, topic string) bool {
	if !s.known || s.topic != topic {
		subs := h.b.srv.Topics.Subscribers(topic)
		s.topic, s.known = topic, true
		s.any = len(subs.Subscriptions) > 0 || len(subs.Shared) > 0 || len(subs.InlineSubscriptions) > 0
	}
	return s.any
}

// settledKey names a publish of a lane handed back to mochi: a client may not reuse a
// packet id before the publish that holds it is acknowledged.
type settledKey struct {
	cl *mqtt.Client
	id uint16
}

// settledVerdict is the verdict waiting for a settled publish's OnPublish.
type settledVerdict struct{ err error }

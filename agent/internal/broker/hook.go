package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/purehealth/purehealth/agent/internal/payload"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// hook is where mochi hands us control: login, access checks and every publish, which it
// passes to OnPublish before acknowledging it. mochi calls the hook from each client's own
// goroutine, one packet at a time per client; a client's QoS 1 readings are stored and
// acknowledged by its lane (lane.go) meanwhile.
type hook struct {
	mqtt.HookBase
	b *Broker

	// ctx is the context Run was given. mochi's hook methods carry no context, so it is kept
	// here (set once before serving) to cancel Sink.Ingest calls when the broker stops.
	ctx context.Context
	// ingest bounds each Sink.Ingest call by Options.IngestTimeout (set with ctx).
	ingest *deadlines

	// admitted holds the clients that passed OnConnect until mochi asks OnConnectAuthenticate,
	// which it always does right after a successful OnConnect.
	admitted sync.Map // *mqtt.Client → struct{}

	laneByClient sync.Map       // *mqtt.Client → *lane, from its first QoS 1 reading to OnDisconnect
	lanes        sync.WaitGroup // the lanes' goroutines; Run waits for them
	settled      sync.Map       // settledKey → settledVerdict: a lane's publishes handed back to mochi
}

func (h *hook) ID() string { return "purehealth" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish,
		mqtt.OnPublishDropped, mqtt.OnPacketRead, mqtt.OnDisconnect:
		return true
	}
	return false
}

// OnConnect authenticates the client and checks its Will. mochi publishes a Will without any
// ACL check when the client goes away, so a Will on a topic the client may not publish to is
// refused here, as is a Will on a reading topic (it would bypass validation and storage).
//
// mochi sends no CONNACK when OnConnect fails, so a refusal writes its own with the right
// return code for the protocol version before the connection is closed.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	b := h.b
	if pk.Properties.AuthenticationMethod != "" {
		return h.refuseConnect(cl, ReasonAuth, "enhanced authentication not supported",
			packets.ErrBadAuthenticationMethod, packets.ErrMalformedUsernameOrPassword)
	}
	acct, why := b.access.authenticate(pk.Connect.Username, pk.Connect.Password)
	switch why {
	case badCredentials:
		return h.refuseConnect(cl, ReasonAuth, "bad username or password",
			packets.ErrBadUsernameOrPassword, packets.ErrMalformedUsernameOrPassword)
	case notAuthorized:
		return h.refuseConnect(cl, ReasonAuth, "anonymous clients not allowed",
			packets.ErrNotAuthorized, packets.Err3NotAuthorized)
	}
	if acct == b.access.anonymous && len(b.opts.Users) > 0 &&
		atomic.LoadInt64(&b.srv.Info.ClientsConnected) >= b.opts.MaxClients-reservedForUsers(b.opts.MaxClients) {
		return h.refuseConnect(cl, ReasonAuth, "no room for anonymous clients: the rest is kept for configured users",
			packets.ErrServerBusy, packets.Err3ServerUnavailable)
	}
	// Taking over a session inherits its subscriptions, unchecked: only the same identity
	// may do it, and nobody may take the agent's own inline client.
	if old, ok := b.srv.Clients.Get(cl.ID); ok &&
		(old.Net.Inline || !bytes.Equal(old.Properties.Username, cl.Properties.Username)) {
		return h.refuseConnect(cl, ReasonACL, "client id in use by another user",
			packets.ErrClientIdentifierNotValid, packets.Err3ClientIdentifierNotValid)
	}
	if pk.Connect.WillFlag {
		will := pk.Connect.WillTopic
		if !b.access.canPublish(acct, will) || b.access.isIngest(will) {
			return h.refuseConnect(cl, ReasonACL, fmt.Sprintf("will topic %q not allowed", cut(will, 128)),
				packets.ErrNotAuthorized, packets.Err3NotAuthorized)
		}
	}
	h.admitted.Store(cl, struct{}{})
	return nil
}

// reservedForUsers is how many of maxClients anonymous clients may not take, so that the
// configured users (the station's own devices) can always log in.
func reservedForUsers(maxClients int64) int64 { return max(1, maxClients/10) }

// refuseConnect counts and logs a refused connection and sends the CONNACK saying why: v5
// for MQTT 5 clients, v3 for MQTT 3.x.
func (h *hook) refuseConnect(cl *mqtt.Client, reason, why string, v5, v3 packets.Code) error {
	h.b.stats.reject(reason, 1)
	h.b.log.Info("mqtt connection refused", "reason", why, "client", cut(cl.ID, 64),
		"user", cut(string(cl.Properties.Username), 64), "remote", cl.Net.Remote)
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}}
	if cl.Properties.ProtocolVersion >= 5 {
		ack.ReasonCode = v5.Code
		ack.Properties.ReasonString = why
	} else {
		ack.ReasonCode = v3.Code
	}
	if err := cl.WritePacket(ack); err != nil {
		return fmt.Errorf("%s (connack not sent: %v): %w", why, err, v5)
	}
	return fmt.Errorf("%s: %w", why, v5)
}

// OnConnectAuthenticate admits exactly the clients OnConnect admitted: deny by default. An
// admitted client leaves the listener's pending places.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	_, ok := h.admitted.LoadAndDelete(cl)
	if ok {
		if l := h.b.listener(cl.Net.Listener); l != nil {
			l.admit(cl.Net.Conn)
		}
	}
	return ok
}

// OnACLCheck applies the roles to every subscription filter and every delivery of a
// message to a subscriber (not write). mochi asks it for every publish too (write): those
// are checked in OnPublish instead, which can answer each protocol version as it must
// (mochi would send an MQTT 3.1.1 client a DISCONNECT packet, which 3.1.1 does not have).
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline || write {
		return true
	}
	return h.allowed(cl, topic, false)
}

// allowed applies the roles to one publish (write) or subscription, counting and logging
// a denial.
func (h *hook) allowed(cl *mqtt.Client, topic string, write bool) bool {
	a := h.b.access
	acct, ok := a.lookup(cl.Properties.Username)
	allowed := ok && (write && a.canPublish(acct, topic) || !write && a.canSubscribe(acct, topic))
	if !allowed {
		h.b.stats.reject(ReasonACL, 1)
		h.b.log.Debug("mqtt access denied", "client", cut(cl.ID, 64), "topic", cut(topic, 128),
			"publish", write)
	}
	return allowed
}

// OnPacketRead sees every packet as it is read, before mochi processes it.
//
// A QoS 1 publish on this station's reading topics goes to the client's lane (lane.go)
// here, stored and answered from there, and mochi is left a publish it drops without a
// word: its topic is replaced by laneTaken, a $SYS topic, which mochi discards before any
// hook, acknowledgement or delivery. Taken here rather than in OnPublish, such a publish
// costs mochi nothing but reading it. A publish mochi would refuse as malformed
// (PublishValidate: a topic alias among others, which the broker does not allow) is left
// to mochi.
//
// A publish on a $ topic ($SYS/...) a client sent is marked so that OnPublish refuses it.
// mochi drops such a publish before any hook sees it, without an acknowledgement: a QoS 1
// or 2 client would wait for one and send it again forever. Marked, the publish takes the
// normal path with a topic mochi accepts and is refused by OnPublish like any other topic
// the client may not publish to. Ignore can only be set here, never by a client, and
// keeps the publish from being delivered or retained whatever happens to it.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return pk, nil
	}
	if strings.HasPrefix(pk.TopicName, "$") {
		pk.Ignore = true
		pk.TopicName = dollarRefused + pk.TopicName[1:]
		return pk, nil
	}
	if pk.FixedHeader.Qos != 1 ||
		pk.PublishValidate(h.b.srv.Options.Capabilities.TopicAliasMaximum) != packets.CodeSuccess {
		return pk, nil
	}
	q := queuedPool.Get().(*queued)
	readings, ref := h.inspect(cl, pk, &q.in)
	if !readings && ref == nil {
		q.reset()
		queuedPool.Put(q)
		return pk, nil // not a reading topic: mochi delivers it once OnPublish lets it
	}
	q.pk, q.ref = pk, ref
	h.enqueue(cl, q)
	pk.TopicName = laneTaken
	return pk, nil
}

// laneTaken is the topic of a publish taken by a lane, as mochi sees it: mochi drops a
// publish to $SYS before anything else (mochi.IsValidFilter).
var laneTaken = mqtt.SysPrefix + "/purehealth/taken-by-lane"

// dollarRefused replaces the leading "$" of a marked publish's topic.
const dollarRefused = "refused-dollar-topic/"

// OnPublishDropped counts messages mochi dropped because a subscriber's queue was full.
func (h *hook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.b.stats.dropped.Add(1)
	h.b.log.Debug("mqtt message dropped: client queue full", "client", cut(cl.ID, 64),
		"topic", pk.TopicName)
}

// OnPublish stores the readings of a publish on this station's reading topics before they
// are acknowledged. Its return value steers mochi:
//   - nil: acknowledged and delivered to subscribers;
//   - packets.ErrRejectPacket: no acknowledgement at any QoS and protocol version (the
//     client sends it again later), not delivered;
//   - packets.CodeSuccessIgnore: acknowledged, not delivered or retained.
//
// A QoS 1 publish of readings went to the client's lane already (OnPacketRead), so that the
// client's next publishes are read while it is being stored; OnPublish sees it only if the
// lane hands it back for delivery (answer). Everything else is answered here, once the
// lane has answered what came before it, so that every answer goes out in the order the
// publishes came in [MQTT-4.6.0-2].
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the agent's own outputs
	}
	if v, ok := h.settled.LoadAndDelete(settledKey{cl, pk.PacketID}); ok && pk.FixedHeader.Qos == 1 {
		return pk, v.(settledVerdict).err // stored by the client's lane: answer as it says
	}
	var in inbound
	readings, ref := h.inspect(cl, pk, &in)
	h.settle(cl)
	switch {
	case ref != nil:
		return pk, h.refusePublish(cl, &pk, ref.code, ref.cause)
	case !readings:
		return pk, nil // not a reading topic, but the ACL let this client publish there
	}
	rejected, err := h.b.sink.Ingest(h.ingest.context(time.Now()), in.obs)
	return pk, h.stored(cl, &pk, &in, rejected, err)
}

// inbound is a publish of readings, decoded, on its way to the sink.
type inbound struct {
	leaf     string
	obs      []telemetry.Observation
	problems []error // the items Decode refused
}

// refused is a publish refused before it reached the sink.
type refused struct {
	code  packets.Code
	cause error
}

// inspect checks and decodes a publish into in, appending to the array in.obs holds. It
// reports whether there are readings to store, or returns the refusal to send, or neither
// for a topic that holds no readings. It writes nothing to the client.
func (h *hook) inspect(cl *mqtt.Client, pk packets.Packet, in *inbound) (readings bool, _ *refused) {
	if pk.Ignore { // a $ topic (OnPacketRead)
		h.b.stats.reject(ReasonACL, 1)
		topic := "$" + strings.TrimPrefix(pk.TopicName, dollarRefused)
		h.b.log.Debug("mqtt access denied", "client", cut(cl.ID, 64), "topic", cut(topic, 128), "publish", true)
		return false, &refused{packets.ErrNotAuthorized, errors.New("$ topics are the broker's")}
	}
	if !h.allowed(cl, pk.TopicName, true) {
		return false, &refused{packets.ErrNotAuthorized, errors.New("not authorized to publish on this topic")}
	}
	b := h.b
	station, leaf, err := payload.ParseTopic(pk.TopicName)
	if err != nil || station != b.opts.Station {
		return false, nil
	}
	if isOutput(leaf) { // the roles refuse these already
		return false, &refused{packets.ErrNotAuthorized, errors.New("agent output topic")}
	}
	b.stats.received.Add(1)

	obs, decodeErr := payload.AppendDecode(in.obs[:0], leaf, pk.Payload, b.opts.Location)
	problems := payload.Split(decodeErr)
	if len(obs) == 0 {
		b.stats.reject(ReasonDecode, len(problems))
		for _, p := range problems {
			b.report(cl.ID, pk.TopicName, p.Error())
		}
		return false, &refused{packets.ErrPayloadFormatInvalid, decodeErr}
	}
	for i := range obs {
		obs[i].Station = station
	}
	*in = inbound{leaf: leaf, obs: obs, problems: problems}
	return true, nil
}

// stored settles a publish once the sink has answered for its readings (rejected and err
// as Sink.Ingest returns them) and returns what OnPublish returns for it.
func (h *hook) stored(cl *mqtt.Client, pk *packets.Packet, in *inbound, rejected []error, err error) error {
	b := h.b
	if err != nil {
		if h.ctx.Err() != nil {
			b.log.Debug("publish not stored: broker stopping", "topic", pk.TopicName, "error", err)
			return packets.ErrRejectPacket
		}
		b.stats.reject(ReasonStoreFailure, 1)
		b.log.Error("readings not stored, publish left unacknowledged", "topic", pk.TopicName,
			"client", cut(cl.ID, 64), "qos", pk.FixedHeader.Qos, "error", err)
		b.report(cl.ID, pk.TopicName, "not stored: the station's store failed; "+
			"the message was not acknowledged, send it again")
		return packets.ErrRejectPacket
	}

	// Items refused by Decode are reported now, after the store succeeded, so that a store
	// failure (the client will resend everything) reports nothing twice.
	b.stats.reject(ReasonDecode, len(in.problems))
	for _, p := range in.problems {
		b.report(cl.ID, pk.TopicName, p.Error())
	}
	var index []int // built on the first refusal in a readings array
	accepted := 0
	var firstRefusal error
	for i := range in.obs {
		var r error
		if i < len(rejected) {
			r = rejected[i]
		}
		if r == nil {
			accepted++
			continue
		}
		b.stats.reject(classify(r), 1)
		if in.leaf == payload.Readings {
			if index == nil {
				index = itemIndexes(len(in.obs), in.problems)
			}
			r = fmt.Errorf("%s[%d]: %w", payload.Readings, index[i], r)
		}
		if firstRefusal == nil {
			firstRefusal = r
		}
		b.report(cl.ID, pk.TopicName, r.Error())
	}
	b.stats.accepted.Add(int64(accepted))
	if accepted > 0 {
		return nil
	}
	code := packets.ErrImplementationSpecificError
	switch {
	case in.leaf != payload.Readings && errors.Is(firstRefusal, telemetry.ErrUnknownParam):
		code = packets.ErrTopicNameInvalid // the topic named the unknown parameter
	case errors.Is(firstRefusal, telemetry.ErrSensorLimit):
		code = packets.ErrQuotaExceeded
	}
	return h.refusePublish(cl, pk, code, firstRefusal)
}

// refusePublish tells the sender that its publish was refused. MQTT 5 with QoS ≥ 1 gets a
// PUBACK (QoS 1) or PUBREC (QoS 2) with the reason code and our reason string; it is written
// here because mochi would answer a QoS 2 publish with a PUBACK and log every refusal as an
// error. MQTT 3.1.1 has no way to say no: the publish is acknowledged as its QoS requires
// [MQTT-3.3.5-2], since sending it again cannot help (a closed connection would only make a
// device with a persistent session resend it on every reconnect), and neither delivered
// nor retained.
func (h *hook) refusePublish(cl *mqtt.Client, pk *packets.Packet, code packets.Code, cause error) error {
	if cl.Properties.ProtocolVersion < 5 || pk.FixedHeader.Qos == 0 {
		return packets.CodeSuccessIgnore
	}
	ack := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Puback},
		PacketID:    pk.PacketID,
		ReasonCode:  code.Code,
		Properties:  packets.Properties{ReasonString: cut(cause.Error(), 256)},
	}
	if pk.FixedHeader.Qos == 2 {
		ack.FixedHeader.Type = packets.Pubrec // ends the QoS 2 flow (MQTT 5 4.3.3)
	}
	if err := cl.WritePacket(ack); err != nil {
		h.b.log.Debug("refusal not sent", "client", cut(cl.ID, 64), "error", err)
	}
	return packets.ErrRejectPacket
}

// itemIndexes maps each decoded observation of a readings array back to its item index,
// skipping the items Decode refused.
func itemIndexes(n int, problems []error) []int {
	bad := make(map[int]bool, len(problems))
	for _, p := range problems {
		var fe *payload.FieldError
		if errors.As(p, &fe) && fe.Index >= 0 {
			bad[fe.Index] = true
		}
	}
	out := make([]int, n)
	idx := 0
	for i := range out {
		for bad[idx] {
			idx++
		}
		out[i] = idx
		idx++
	}
	return out
}

// classify names the Stats reason for a reading the sink refused.
func classify(err error) string {
	switch {
	case errors.Is(err, telemetry.ErrUnknownParam):
		return ReasonUnknownParam
	case errors.Is(err, telemetry.ErrUnitMismatch):
		return ReasonUnitMismatch
	case errors.Is(err, telemetry.ErrSensorLimit):
		return ReasonSensorLimit
	}
	return ReasonInvalid
}

// Package brokertest runs an embedded MQTT broker (mochi-mqtt) on a free loopback port for
// tests, and records every PUBLISH it receives before acknowledging it.
//
// It is test support: the broker allows anonymous clients unless Options.Users is set, and
// it is stopped by the test's cleanup.
package brokertest

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Message is one PUBLISH as the broker received it.
type Message struct {
	ClientID string
	Protocol byte // 4 or 5
	Topic    string
	Payload  []byte
	QoS      byte
	// Verdict is what the broker did with it: accepted, rejected (Options.Reject), kicked
	// (Options.Kick: the client was disconnected instead of acknowledged) or dropped
	// (Options.Drop: swallowed without an acknowledgement).
	Verdict Verdict
}

// Verdict is the broker's answer to a publish.
type Verdict string

// The verdicts.
const (
	Accepted Verdict = "accepted"
	Rejected Verdict = "rejected"
	Kicked   Verdict = "kicked"
	Dropped  Verdict = "dropped"
)

// Options tune the broker. The zero value is an anonymous broker that accepts everything.
type Options struct {
	// Reject, if set, is asked about every publish; a non-zero reason code (≥ 0x80) makes
	// the broker refuse it. MQTT 5 clients get the code in their PUBACK; MQTT 3.1.1 has no
	// way to refuse, so the broker acknowledges it anyway (as mochi does).
	Reject func(Message) byte
	// Kick, if set, is asked about every publish with the number of publishes received so
	// far from that client (1 for the first); true disconnects the client instead of
	// acknowledging.
	Kick func(m Message, n int) bool
	// Drop, if set, is asked about every publish; true swallows it: no acknowledgement, the
	// connection stays up (a stalled broker).
	Drop func(Message) bool
	// Users, if not nil, are the only username/password pairs allowed to connect.
	Users map[string]string
	// ReceiveMaximum, if not 0, is the broker's receive maximum per client.
	ReceiveMaximum uint16
}

// Broker is a running test broker.
type Broker struct {
	// Addr is the broker's address, 127.0.0.1:port.
	Addr string

	opts    Options
	mu      sync.Mutex
	msgs    []Message
	perCl   map[string]int
	changed chan struct{} // closed and replaced on every new message
}

// Start starts a broker on 127.0.0.1:0 and stops it when the test ends.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	b := &Broker{opts: opts, perCl: map[string]int{}, changed: make(chan struct{})}
	caps := mqtt.NewDefaultServerCapabilities()
	if opts.ReceiveMaximum > 0 {
		caps.ReceiveMaximum = opts.ReceiveMaximum
	}
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := srv.AddHook(&usersHook{users: opts.Users}, nil); err != nil {
		t.Fatalf("brokertest: auth hook: %v", err)
	}
	if err := srv.AddHook(&recordHook{b: b}, nil); err != nil {
		t.Fatalf("brokertest: record hook: %v", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "test", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		t.Fatalf("brokertest: listen: %v", err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatalf("brokertest: serve: %v", err)
	}
	t.Cleanup(func() { closeServer(t, srv) })
	b.Addr = tcp.Address()
	return b
}

// closeServer stops the broker. mochi v2.7.9's Close can deadlock when a client is added or
// removed at the same moment (Clients.GetByListener read-locks the client map twice, and a
// writer queued in between blocks both), so wait for the clients of the test to be gone
// first, and fail the test rather than hang if Close still does not return.
func closeServer(t testing.TB, srv *mqtt.Server) {
	for deadline := time.Now().Add(2 * time.Second); srv.Clients.Len() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("brokertest: close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("brokertest: mochi Close did not return within 10s (client map deadlock)")
	}
}

// Messages returns a copy of every publish received so far, in arrival order.
func (b *Broker) Messages() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.msgs)
}

// WaitFor blocks until at least n publishes have arrived or ctx ends.
func (b *Broker) WaitFor(ctx context.Context, n int) error {
	for {
		b.mu.Lock()
		got, changed := len(b.msgs), b.changed
		b.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), errors.New("brokertest: fewer publishes than awaited"))
		case <-changed:
		}
	}
}

func (b *Broker) add(m Message) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, m)
	b.perCl[m.ClientID]++
	close(b.changed)
	b.changed = make(chan struct{})
	return b.perCl[m.ClientID]
}

// recordHook records publishes in OnPublish, which mochi calls before it acknowledges.
type recordHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *recordHook) ID() string { return "brokertest-record" }

func (h *recordHook) Provides(b byte) bool { return b == mqtt.OnPublish }

func (h *recordHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	m := Message{
		ClientID: cl.ID, Protocol: cl.Properties.ProtocolVersion, Topic: pk.TopicName,
		Payload: slices.Clone(pk.Payload), QoS: pk.FixedHeader.Qos, Verdict: Accepted,
	}
	opts := h.b.opts
	var code byte
	if opts.Reject != nil {
		code = opts.Reject(m)
		if code >= 0x80 {
			m.Verdict = Rejected
		}
	}
	// Kick is decided on the running count, which includes this message.
	h.b.mu.Lock()
	n := h.b.perCl[m.ClientID] + 1
	h.b.mu.Unlock()
	if opts.Kick != nil && opts.Kick(m, n) {
		m.Verdict = Kicked
		h.b.add(m)
		cl.Stop(errors.New("brokertest: kicked"))
		return pk, packets.ErrRejectPacket // no acknowledgement
	}
	if opts.Drop != nil && opts.Drop(m) {
		m.Verdict = Dropped
		h.b.add(m)
		return pk, packets.ErrRejectPacket // mochi then neither acks nor forwards it
	}
	h.b.add(m)
	if m.Verdict == Rejected {
		return pk, packets.Code{Code: code, Reason: "rejected by test"}
	}
	return pk, nil
}

// usersHook allows only the configured users (everyone when users is nil, like mochi's
// allow-all hook), and then every topic.
type usersHook struct {
	mqtt.HookBase
	users map[string]string
}

func (h *usersHook) ID() string { return "brokertest-users" }

func (h *usersHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *usersHook) OnConnectAuthenticate(_ *mqtt.Client, pk packets.Packet) bool {
	if h.users == nil {
		return true
	}
	want, ok := h.users[string(pk.Connect.Username)]
	return ok && subtle.ConstantTimeCompare([]byte(want), pk.Connect.Password) == 1
}

func (h *usersHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

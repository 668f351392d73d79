package mqttsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	pahosession "github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"
)

// session5 is an MQTT 5 connection (eclipse/paho.golang): clean start, session expiry 0.
//
// paho.golang's Publish blocks until the acknowledgement, so many in flight would need a
// goroutine each and could leave the wire out of order. Instead send uses the asynchronous
// publish (ordered, returns once written) and learns the outcome through the session state:
// trackedState hands the library a response channel of ours for each PUBLISH.
type session5 struct {
	client  *paho.Client
	state   *trackedState
	qos     byte
	win     int
	closeMu sync.Once
	waiters sync.WaitGroup // one per publish awaiting its response
}

// trackedState is paho's in-memory session state, with a hook: the next PUBLISH added to
// the session reports to the channel in next instead of the library's own (which nobody
// reads for an asynchronous publish). Only the sensor's goroutine sets next, right before
// it publishes; the library calls AddToSession on that same goroutine.
type trackedState struct {
	*state.State
	next  chan<- packets.ControlPacket
	added bool // the PUBLISH that took next joined the session: next will hear of it
}

func (t *trackedState) AddToSession(ctx context.Context, p pahosession.Packet, resp chan<- packets.ControlPacket) error {
	mine := p.Type() == packets.PUBLISH && t.next != nil
	if mine {
		resp, t.next = t.next, nil
	}
	err := t.State.AddToSession(ctx, p, resp)
	if mine && err == nil {
		t.added = true
	}
	return err
}

func dial5(ctx context.Context, cfg Config, addr, clientID string) (*session5, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &ConnectError{Addr: addr, Err: dialReason(err)}
	}
	s := &session5{qos: cfg.QoS, state: &trackedState{State: state.NewInMemory()}}
	s.client = paho.NewClient(paho.ClientConfig{
		// Publishes, acknowledgements and pings are written from different goroutines.
		Conn:    packets.NewThreadSafeConn(linger(conn)),
		Session: s.state,
		// Bounds the wait for a slot under the broker's Receive Maximum; the window keeps
		// us below it, so this fires only on a stalled connection.
		PacketTimeout: cfg.AckTimeout,
	})
	cp := &paho.Connect{
		ClientID:   clientID,
		CleanStart: true,
		KeepAlive:  uint16(cfg.KeepAlive / time.Second),
	}
	if cfg.Username != "" {
		cp.Username, cp.UsernameFlag = cfg.Username, true
		cp.Password, cp.PasswordFlag = []byte(cfg.Password), cfg.Password != ""
	}
	ca, err := s.client.Connect(ctx, cp)
	if err != nil {
		s.state.Close() // the library closed the connection; nothing else to undo
		if ca != nil && ca.ReasonCode >= 0x80 {
			var says string
			if ca.Properties != nil {
				says = ca.Properties.ReasonString
			}
			return nil, &ConnectError{Addr: addr, Err: refusal("refused", ca.ReasonCode, false, says)}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no CONNACK within %v", cfg.ConnectTimeout)
		}
		return nil, &ConnectError{Addr: addr, Err: err}
	}
	s.win = 65535 // the protocol's default Receive Maximum
	if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil {
		s.win = int(*ca.Properties.ReceiveMaximum)
	}
	if cfg.Inflight > 0 && cfg.Inflight < s.win {
		s.win = cfg.Inflight
	}
	if ca.Properties != nil && ca.Properties.MaximumQoS != nil && cfg.QoS > *ca.Properties.MaximumQoS {
		most := *ca.Properties.MaximumQoS
		s.close()
		return nil, &ConnectError{Addr: addr, Err: fmt.Errorf("broker supports QoS %d at most, asked for %d", most, cfg.QoS)}
	}
	return s, nil
}

func (s *session5) send(ctx context.Context, topic string, payload []byte, done func(outcome, error)) {
	pub := &paho.Publish{Topic: topic, QoS: s.qos, Payload: payload}
	if s.qos == 0 {
		if _, err := s.client.Publish(ctx, pub); err != nil {
			done(outcomeFailed, err)
			return
		}
		done(outcomeWritten, nil)
		return
	}
	resp := make(chan packets.ControlPacket, 1) // the state never blocks on it
	s.state.next, s.state.added = resp, false
	_, err := s.client.PublishWithOptions(ctx, pub, paho.PublishOptions{Method: paho.PublishMethod_AsyncSend})
	if !s.state.added {
		// It never joined the session (no connection, no free slot in time, invalid):
		// no response will come.
		s.state.next = nil
		if err == nil {
			err = errors.New("publish not accepted by the client")
		}
		done(outcomeFailed, err)
		return
	}
	// An error now (paho.ErrNetworkErrorAfterStored) means the packet joined the session but
	// could not be written: the session still answers, when it is cleared, so wait for it
	// like for any other.
	s.waiters.Add(1)
	go func() {
		defer s.waiters.Done()
		var cp packets.ControlPacket
		select {
		case cp = <-resp:
		case <-s.client.Done():
			// The client has stopped; every acknowledgement it read is in resp already.
			select {
			case cp = <-resp:
			default:
				done(outcomeFailed, errors.New("connection closed before the acknowledgement"))
				return
			}
		}
		done(classify(cp))
	}()
}

// classify turns the session's response into an outcome.
func classify(cp packets.ControlPacket) (outcome, error) {
	switch p := cp.Content.(type) {
	case *packets.Puback:
		if p.ReasonCode >= 0x80 {
			return outcomeRejected, refusal("PUBACK", p.ReasonCode, false, says(p.Properties))
		}
		return outcomeAcked, nil
	case *packets.Pubcomp:
		if p.ReasonCode >= 0x80 {
			return outcomeRejected, refusal("PUBCOMP", p.ReasonCode, false, says(p.Properties))
		}
		return outcomeAcked, nil
	case *packets.Pubrec: // only reaches us when it carries an error
		return outcomeRejected, refusal("PUBREC", p.ReasonCode, false, says(p.Properties))
	case nil: // the session was closed
		return outcomeFailed, errors.New("connection closed before the acknowledgement")
	default:
		return outcomeFailed, fmt.Errorf("unexpected %T in reply to PUBLISH", p)
	}
}

func (s *session5) lost() <-chan struct{} { return s.client.Done() }

func (s *session5) window() int { return s.win }

func (s *session5) close() {
	s.closeMu.Do(func() {
		// Disconnect writes DISCONNECT (harmless if the connection is gone) and waits for
		// the client's goroutines; the waiters then see Done and finish.
		// Its error only says that the connection was gone already.
		s.client.Disconnect(&paho.Disconnect{ReasonCode: 0}) //nolint:errcheck
		s.waiters.Wait()
		s.state.Close()
	})
}

// says is the reason string of a packet's properties, if any.
func says(p *packets.Properties) string {
	if p == nil {
		return ""
	}
	return p.ReasonString
}

package mqttsim

import (
	"context"
	"net"
	"net/url"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// session311 is an MQTT 3.1.1 connection (eclipse/paho.mqtt.golang): clean session, no
// automatic reconnect (the sensor reconnects itself, so every publish is accounted for
// once).
type session311 struct {
	client  mqtt.Client
	qos     byte
	win     int
	lostCh  chan struct{}
	lostMu  sync.Once
	closeMu sync.Once
	waiters sync.WaitGroup // one per publish awaiting its token
}

func dial311(ctx context.Context, cfg Config, addr, clientID string) (*session311, error) {
	s := &session311{qos: cfg.QoS, lostCh: make(chan struct{}), win: cfg.Inflight}
	if s.win == 0 {
		s.win = defaultInflight311
	}
	// The library reports a failed dial as "network Error : dial tcp ...": keep the dial's own
	// error to give a clean message.
	var (
		mu      sync.Mutex
		dialErr error
	)
	opts := mqtt.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetKeepAlive(cfg.KeepAlive).
		SetWriteTimeout(cfg.AckTimeout).
		SetConnectionLostHandler(func(mqtt.Client, error) { s.markLost() }).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			d := net.Dialer{Timeout: cfg.ConnectTimeout}
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				mu.Lock()
				dialErr = err
				mu.Unlock()
				return nil, err
			}
			return linger(conn), nil
		})
	if cfg.Username != "" {
		opts.SetUsername(cfg.Username).SetPassword(cfg.Password)
	}
	s.client = mqtt.NewClient(opts)
	tok := s.client.Connect()
	<-tok.Done() // bounded by the connect timeout; the dial also ends with ctx
	if err := tok.Error(); err != nil {
		mu.Lock()
		defer mu.Unlock()
		if dialErr != nil {
			return nil, &ConnectError{Addr: addr, Err: dialReason(dialErr)}
		}
		if ct, ok := tok.(*mqtt.ConnectToken); ok && ct.ReturnCode() >= 1 && ct.ReturnCode() <= 5 {
			return nil, &ConnectError{Addr: addr, Err: refusal("refused", ct.ReturnCode(), true, "")}
		}
		return nil, &ConnectError{Addr: addr, Err: err}
	}
	return s, nil
}

func (s *session311) send(_ context.Context, topic string, payload []byte, done func(outcome, error)) {
	// Publish queues the packet in call order (it blocks while the connection's writer is
	// busy, up to the write timeout) and returns a token completed on PUBACK/PUBCOMP (QoS ≥ 1)
	// or once written (QoS 0), or with an error when the connection goes.
	tok := s.client.Publish(topic, s.qos, false, payload)
	s.waiters.Add(1)
	go func() {
		defer s.waiters.Done()
		<-tok.Done()
		switch {
		case tok.Error() != nil:
			// The library fails the tokens of a lost connection before it reports the loss:
			// report it first, so the sensor reconnects rather than publishing into a dead
			// client.
			if !s.client.IsConnectionOpen() {
				s.markLost()
			}
			done(outcomeFailed, tok.Error())
		case s.qos == 0:
			done(outcomeWritten, nil)
		default:
			done(outcomeAcked, nil)
		}
	}()
}

func (s *session311) markLost() { s.lostMu.Do(func() { close(s.lostCh) }) }

func (s *session311) lost() <-chan struct{} { return s.lostCh }

func (s *session311) window() int { return s.win }

func (s *session311) close() {
	s.closeMu.Do(func() {
		// Disconnect completes every outstanding token with an error (clean session); on a
		// connection already lost that has happened already.
		s.client.Disconnect(0)
		s.markLost()
		s.waiters.Wait()
	})
}

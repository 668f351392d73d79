package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/purehealth/purehealth/internal/testlog"
	"github.com/purehealth/purehealth/shared/telemetry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const station = "MH-PUNE-001"

// guard bounds every wait in these tests. It only turns a hang into a failure; no test
// asserts anything about how fast something happens.
const guard = 15 * time.Second

var hashes = sync.OnceValue(func() map[string]string {
	out := map[string]string{}
	for _, pw := range []string{"devpass", "viewpass", "adminpass", "gwpass"} {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		out[pw] = string(h)
	}
	return out
})

func testUsers() []User {
	h := hashes()
	return []User{
		{Name: "device1", PasswordHash: h["devpass"], Role: RoleDevice},
		{Name: "viewer1", PasswordHash: h["viewpass"], Role: RoleViewer},
		{Name: "admin", PasswordHash: h["adminpass"], Role: RoleAdmin},
		{Name: "gateway", PasswordHash: h["gwpass"], Role: RoleDevice,
			Publish: []string{"devices/gateway/#"}, Subscribe: []string{"devices/#"}},
	}
}

// fakeSink is a small real Sink: it refuses what telemetry.Normalize refuses, keeps what it
// accepts, and fails on demand.
type fakeSink struct {
	mu       sync.Mutex
	failures int  // the next calls that fail
	block    bool // calls wait for their context to end
	// gate, if set, holds every call (after entered) until the test sends on it.
	gate    chan struct{}
	calls   int
	got     chan []telemetry.Observation
	entered chan struct{} // one value per call, dropped when full
}

func newFakeSink() *fakeSink {
	return &fakeSink{got: make(chan []telemetry.Observation, 256), entered: make(chan struct{}, 256)}
}

var errDiskFull = errors.New("disk full")

func (s *fakeSink) failNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = n
}

func (s *fakeSink) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *fakeSink) Ingest(ctx context.Context, obs []telemetry.Observation) ([]error, error) {
	s.mu.Lock()
	s.calls++
	fail := s.failures > 0
	if fail {
		s.failures--
	}
	block, gate := s.block, s.gate
	s.mu.Unlock()
	select {
	case s.entered <- struct{}{}:
	default:
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if fail {
		return nil, errDiskFull
	}
	rejected := make([]error, len(obs))
	var ok []telemetry.Observation
	for i, o := range obs {
		if _, _, _, err := telemetry.Normalize(o.Param, o.Value, o.Unit); err != nil {
			rejected[i] = err
			continue
		}
		ok = append(ok, o)
	}
	if len(ok) > 0 {
		select {
		case s.got <- ok:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return rejected, nil
}

// next returns the next batch the sink accepted.
func (s *fakeSink) next(t *testing.T) []telemetry.Observation {
	t.Helper()
	select {
	case b := <-s.got:
		return b
	case <-time.After(guard):
		t.Fatal("no readings reached the sink")
		return nil
	}
}

// none checks that nothing more reached the sink. Call it after an event that proves any
// earlier batch would have arrived already.
func (s *fakeSink) none(t *testing.T) {
	t.Helper()
	select {
	case b := <-s.got:
		t.Fatalf("unexpected readings reached the sink: %+v", b)
	default:
	}
}

// startBroker runs a broker on 127.0.0.1:0 until the test ends.
func startBroker(t *testing.T, configure func(*Options)) (*Broker, *fakeSink) {
	t.Helper()
	logs := &testlog.Buffer{}
	ist, err := time.LoadLocation("Asia/Kolkata")
	require.NoError(t, err)
	opts := Options{
		Station:  station,
		Listen:   "127.0.0.1:0",
		Users:    testUsers(),
		Location: ist,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if configure != nil {
		configure(&opts)
	}
	sink := newFakeSink()
	b, err := New(opts, sink)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(guard):
			t.Errorf("Run did not return after its context ended")
		}
		if t.Failed() {
			t.Logf("broker log:\n%s", logs)
		}
	})
	select {
	case <-b.Ready():
	case err := <-done:
		t.Fatalf("Run ended before listening: %v", err)
	case <-time.After(guard):
		t.Fatal("broker not ready")
	}
	return b, sink
}

var clientSeq atomic.Int64

func clientID(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, clientSeq.Add(1))
}

// connectV3 connects an MQTT 3.1.1 client (Eclipse Paho). It returns the CONNACK return code
// with the error when the broker refuses.
func connectV3(t *testing.T, b *Broker, user, pass string, configure ...func(*pahov3.ClientOptions)) (pahov3.Client, byte, error) {
	t.Helper()
	o := pahov3.NewClientOptions().
		AddBroker("tcp://" + b.Addr().String()).
		SetClientID(clientID("v3")).
		SetUsername(user).
		SetPassword(pass).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(guard).
		SetWriteTimeout(guard)
	for _, c := range configure {
		c(o)
	}
	c := pahov3.NewClient(o)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(guard), "connect did not finish")
	if err := tok.Error(); err != nil {
		return nil, tok.(*pahov3.ConnectToken).ReturnCode(), err
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, 0, nil
}

func mustConnectV3(t *testing.T, b *Broker, user, pass string, configure ...func(*pahov3.ClientOptions)) pahov3.Client {
	t.Helper()
	c, _, err := connectV3(t, b, user, pass, configure...)
	require.NoError(t, err, "connect as %q", user)
	return c
}

func waitToken(t *testing.T, tok pahov3.Token) error {
	t.Helper()
	require.True(t, tok.WaitTimeout(guard), "token did not complete")
	return tok.Error()
}

// v5client is an MQTT 5 client (Eclipse Paho) with the messages it receives.
type v5client struct {
	*paho.Client
	received chan *paho.Publish
}

func connectV5(t *testing.T, b *Broker, user, pass string, configure ...func(*paho.Connect)) (*v5client, *paho.Connack, error) {
	t.Helper()
	return connectV5At(t, b.Addr().String(), user, pass, configure...)
}

func connectV5At(t *testing.T, addr, user, pass string, configure ...func(*paho.Connect)) (*v5client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	received := make(chan *paho.Publish, 256)
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				received <- pr.Packet
				return true, nil
			},
		},
	})
	cp := &paho.Connect{
		KeepAlive:    30,
		ClientID:     clientID("v5"),
		CleanStart:   true,
		Username:     user,
		UsernameFlag: user != "",
		Password:     []byte(pass),
		PasswordFlag: pass != "",
	}
	for _, f := range configure {
		f(cp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		return nil, ca, err
	}
	t.Cleanup(func() {
		if err := c.Disconnect(&paho.Disconnect{ReasonCode: 0}); err != nil {
			t.Logf("disconnect: %v", err)
		}
		<-c.Done()
	})
	return &v5client{Client: c, received: received}, ca, nil
}

func mustConnectV5(t *testing.T, b *Broker, user, pass string, configure ...func(*paho.Connect)) *v5client {
	t.Helper()
	c, _, err := connectV5(t, b, user, pass, configure...)
	require.NoError(t, err, "connect as %q", user)
	return c
}

func (c *v5client) publish(t *testing.T, topic string, qos byte, body string) (*paho.PublishResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	return c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(body)})
}

func (c *v5client) subscribe(t *testing.T, filter string, qos byte) (*paho.Suback, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	return c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
}

func (c *v5client) next(t *testing.T) *paho.Publish {
	t.Helper()
	select {
	case p := <-c.received:
		return p
	case <-time.After(guard):
		t.Fatal("no message received")
		return nil
	}
}

package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/firmware-sim/internal/brokertest"
)

// endpoints collects what a station announces.
type endpoints struct {
	mu  sync.Mutex
	got []Endpoint
	ch  chan Endpoint
}

func newEndpoints() *endpoints { return &endpoints{ch: make(chan Endpoint, 64)} }

func (e *endpoints) add(ep Endpoint) error {
	e.mu.Lock()
	e.got = append(e.got, ep)
	e.mu.Unlock()
	e.ch <- ep
	return nil
}

// wait returns the first n endpoints announced, by "probe param".
func (e *endpoints) wait(t *testing.T, n int) map[string]Endpoint {
	t.Helper()
	out := map[string]Endpoint{}
	timeout := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case ep := <-e.ch:
			out[ep.Probe+" "+string(ep.Params[0])] = ep
		case <-timeout:
			t.Fatalf("%d of %d endpoints announced: %v", len(out), n, out)
		}
	}
	return out
}

// startStation runs sc's station until the test ends; the station must stop cleanly. log
// may be nil.
func startStation(t *testing.T, yamlDoc string, log *slog.Logger) *endpoints {
	t.Helper()
	sc, err := Parse([]byte(yamlDoc))
	require.NoError(t, err)
	eps := newEndpoints()
	st, err := NewStation(sc, Options{OnEndpoint: eps.add, Logger: log})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err, "a stop through the context is not an error")
		case <-time.After(20 * time.Second):
			t.Error("the station did not stop")
		}
	})
	return eps
}

// One station serves every kind of probe at once; each answers on its own protocol, and
// everything stops with the context (goleak checks no goroutine is left).
func TestStationServesEveryKind(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "dev", "tty-ph") // the directory is created by the station
	broker := brokertest.Start(t, brokertest.Options{})
	doc := fmt.Sprintf(`station: MH-KOLHAPUR-001
seed: 3
speed: 50
probes:
  - {name: ph-1, kind: serial, param: ph, link: %q}
  - {name: sonde-1, kind: coap, listen: "127.0.0.1:0", params: [do, temp], interval: 50ms}
  - {name: turb-1, kind: http, listen: "127.0.0.1:0", params: [turbidity]}
  - {name: lab-1, kind: mqtt, broker: %q, params: [bod], rate: 20, qos: 1}
`, link, broker.Addr)

	// Registered before the station's cleanup, so it runs after the station stopped.
	t.Cleanup(func() {
		_, err := os.Lstat(link)
		assert.ErrorIs(t, err, os.ErrNotExist, "the link goes when the station stops")
	})
	eps := startStation(t, doc, nil)
	got := eps.wait(t, 5)
	assert.Equal(t, link, got["ph-1 ph"].Link)
	assert.Regexp(t, `^/dev/pts/\d+$`, got["ph-1 ph"].Address)
	assert.Regexp(t, `^coap://127\.0\.0\.1:\d+/do$`, got["sonde-1 do"].Address)
	assert.Regexp(t, `^coap://127\.0\.0\.1:\d+/temp$`, got["sonde-1 temp"].Address)
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+/turbidity$`, got["turb-1 turbidity"].Address)
	assert.Equal(t, "mqtt://"+broker.Addr, got["lab-1 bod"].Address)

	t.Run("serial", func(t *testing.T) { assertEZOReading(t, link) })
	t.Run("coap", func(t *testing.T) {
		assertCoAP(t, strings.TrimPrefix(got["sonde-1 do"].Address, "coap://"))
	})
	t.Run("http", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, got["turb-1 turbidity"].Address, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var r struct{ Unit string }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
		assert.Equal(t, "NTU", r.Unit)
	})
	t.Run("mqtt", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		require.NoError(t, broker.WaitFor(ctx, 2))
		m := broker.Messages()[0]
		assert.Equal(t, "purehealth/MH-KOLHAPUR-001/bod", m.Topic)
		assert.Equal(t, byte(1), m.QoS)
	})
	http.DefaultClient.CloseIdleConnections()
	// The station's cleanup has not run yet: the link is still there.
	_, err := os.Lstat(link)
	require.NoError(t, err)
}

// assertEZOReading sends R to the circuit behind link and checks the reply is a pH value
// and *OK.
func assertEZOReading(t *testing.T, link string) {
	t.Helper()
	f, err := os.OpenFile(link, os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Write([]byte("R\r"))
	require.NoError(t, err)
	require.NoError(t, f.SetReadDeadline(time.Now().Add(10*time.Second)))
	var got []byte
	buf := make([]byte, 64)
	for !strings.HasSuffix(string(got), "*OK\r") {
		n, err := f.Read(buf)
		require.NoError(t, err, "read so far: %q", got)
		got = append(got, buf[:n]...)
	}
	value, _, ok := strings.Cut(string(got), "\r")
	require.True(t, ok)
	v, err := strconv.ParseFloat(value, 64)
	require.NoError(t, err, "a number first: %q", got)
	assert.True(t, v > 4 && v < 10, "a river's pH: %v", v)
}

// assertCoAP reads /do with GET and gets two notifications of /temp.
func assertCoAP(t *testing.T, addr string) {
	t.Helper()
	addr, _, _ = strings.Cut(addr, "/")
	stop := make(chan struct{})
	defer close(stop)
	cc, err := udp.Dial(addr, options.WithPeriodicRunner(periodic.New(stop, 100*time.Millisecond)),
		options.WithErrors(func(error) {}))
	require.NoError(t, err)
	defer func() {
		assert.NoError(t, cc.Close())
		<-cc.Done()
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := cc.Get(ctx, "/do")
	require.NoError(t, err)
	assert.Equal(t, codes.Content, resp.Code())
	cc.ReleaseMessage(resp)

	notes := make(chan struct{}, 16)
	obs, err := cc.Observe(ctx, "/temp", func(*pool.Message) {
		select {
		case notes <- struct{}{}:
		default:
		}
	})
	require.NoError(t, err)
	for range 2 {
		select {
		case <-notes:
		case <-ctx.Done():
			t.Fatal("fewer than two notifications of /temp")
		}
	}
	assert.NoError(t, obs.Cancel(ctx))
}

// A listener that cannot be bound stops the station before anything is served or
// announced, names the probe and its line, and releases what was already bound.
func TestStationBindFailure(t *testing.T) {
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	httpAddr := free.Addr().String()
	require.NoError(t, free.Close())
	link := filepath.Join(t.TempDir(), "tty-do")

	sc, err := Parse(fmt.Appendf(nil, `station: MH-PUNE-001
probes:
  - {name: do-1, kind: serial, param: do, link: %q}
  - {name: turb-1, kind: http, listen: %q, params: [turbidity]}
  - {name: sonde-1, kind: coap, listen: %q, params: [do]}
`, link, httpAddr, busy.LocalAddr().String()))
	require.NoError(t, err)
	eps := newEndpoints()
	st, err := NewStation(sc, Options{OnEndpoint: eps.add})
	require.NoError(t, err)
	err = st.Run(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), `probe "sonde-1" (coap, line 5): listen: `)
	assert.Contains(t, err.Error(), "address already in use")
	assert.Empty(t, eps.got, "nothing announced")
	_, lerr := os.Lstat(link)
	assert.ErrorIs(t, lerr, os.ErrNotExist, "the serial probe never started")
	again, err := net.Listen("tcp", httpAddr)
	require.NoError(t, err, "the HTTP listener was released")
	require.NoError(t, again.Close())

	assert.ErrorContains(t, st.Run(t.Context()), "Run called twice")
}

// An endpoint that cannot be announced (stdout closed) stops the station with that error.
func TestStationAnnounceFailure(t *testing.T) {
	sc, err := Parse([]byte(`station: MH-PUNE-001
probes:
  - {name: turb-1, kind: http, listen: "127.0.0.1:0", params: [turbidity]}
  - {name: ph-1, kind: serial, param: ph}
`))
	require.NoError(t, err)
	broken := errors.New("broken pipe")
	st, err := NewStation(sc, Options{OnEndpoint: func(Endpoint) error { return broken }})
	require.NoError(t, err)
	err = st.Run(t.Context())
	assert.ErrorIs(t, err, broken)
}

// A serial probe that fails while running stops the whole station, naming the probe.
func TestStationProbeFailureStopsAll(t *testing.T) {
	dir := t.TempDir()
	notALink := filepath.Join(dir, "tty-ph")
	require.NoError(t, os.WriteFile(notALink, nil, 0o600)) // a file the emulator refuses to replace
	sc, err := Parse(fmt.Appendf(nil, `station: MH-PUNE-001
probes:
  - {name: turb-1, kind: http, listen: "127.0.0.1:0", params: [turbidity]}
  - {name: ph-1, kind: serial, param: ph, link: %q}
`, notALink))
	require.NoError(t, err)
	st, err := NewStation(sc, Options{})
	require.NoError(t, err)
	err = st.Run(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), `probe "ph-1" (serial, line 4): link `)
	assert.Contains(t, err.Error(), "is not a symlink")
}

// An MQTT probe whose broker is not up keeps trying instead of failing the station; here
// a plain TCP listener that appears after the first failed attempt sees it connect.
func TestStationMQTTWaitsForBroker(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	var logs syncBuffer
	startStation(t, fmt.Sprintf(`station: MH-PUNE-001
probes:
  - {name: lab-1, kind: mqtt, broker: %q, params: [bod]}
`, addr), slog.New(slog.NewTextHandler(&logs, nil)))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "broker not reachable") },
		20*time.Second, 10*time.Millisecond, "the first attempt fails: nothing listens")
	l, err = net.Listen("tcp", addr)
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.(*net.TCPListener).SetDeadline(time.Now().Add(20*time.Second)))
	c, err := l.Accept()
	require.NoError(t, err, "the probe tried again")
	require.NoError(t, c.Close())
}

// syncBuffer is a bytes.Buffer safe for concurrent use, for a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestNewStationRejectsInvalid(t *testing.T) {
	_, err := NewStation(&Scenario{Station: "MH-PUNE-001"}, Options{})
	assert.EqualError(t, err, "probes: at least one is required")
	_, err = NewStation(&Scenario{Station: "MH-PUNE-001", Probes: []Probe{{Name: "a", Kind: KindCoAP,
		Listen: "127.0.0.1:0", Params: List{"do"}}}}, Options{})
	assert.NoError(t, err, "a scenario built in code works too")
}

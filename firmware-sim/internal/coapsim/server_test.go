package coapsim

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	netclient "github.com/plgd-dev/go-coap/v3/net/client"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Every goroutine Serve starts — observers, the library's readers and timers — must be
// gone when it returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// serve runs a server for cfg on a free loopback port until the test ends.
func serve(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s, err := New(cfg, nil)
	require.NoError(t, err)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Serve(t.Context(), conn) }()
	t.Cleanup(func() { assert.NoError(t, <-done, "Serve after the context ended") })
	return s, conn.LocalAddr().String()
}

// dial connects a go-coap client: an implementation of the client side we did not write.
func dial(t *testing.T, addr string) *client.Conn {
	t.Helper()
	stop := make(chan struct{})
	cc, err := udp.Dial(addr,
		options.WithPeriodicRunner(periodic.New(stop, 100*time.Millisecond)),
		options.WithErrors(func(error) {}))
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, cc.Close())
		<-cc.Done()
		close(stop)
	})
	return cc
}

func get(t *testing.T, cc *client.Conn, path string) (codes.Code, message.MediaType, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := cc.Get(ctx, path)
	require.NoError(t, err, "GET %s", path)
	defer cc.ReleaseMessage(resp)
	cf, err := resp.ContentFormat()
	if err != nil {
		cf = 0xffff
	}
	body, err := resp.ReadBody()
	require.NoError(t, err)
	return resp.Code(), cf, body
}

// reading is the contract's JSON, decoded with encoding/json, independently of the agent.
type reading struct {
	Value     *float64 `json:"value"`
	Unit      string   `json:"unit"`
	Timestamp string   `json:"timestamp"`
}

func decodeReading(t *testing.T, body []byte) reading {
	t.Helper()
	var r reading
	require.NoError(t, json.Unmarshal(body, &r), "payload %q", body)
	require.NotNil(t, r.Value, "payload %q has a value", body)
	_, err := time.Parse(time.RFC3339Nano, r.Timestamp)
	require.NoError(t, err, "timestamp of %q", body)
	return r
}

func TestGet(t *testing.T) {
	tests := []struct {
		format  Format
		param   telemetry.Param
		wantCF  message.MediaType
		wantUni string
	}{
		{FormatJSON, telemetry.DO, message.AppJSON, "mg/L"},
		{FormatJSON, telemetry.Temp, message.AppJSON, "degC"},
		{FormatText, telemetry.PH, message.TextPlain, ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.format)+"/"+string(tt.param), func(t *testing.T) {
			_, addr := serve(t, Config{Params: []telemetry.Param{tt.param}, Format: tt.format})
			code, cf, body := get(t, dial(t, addr), "/"+string(tt.param))
			require.Equal(t, codes.Content, code)
			assert.Equal(t, tt.wantCF, cf)
			var v float64
			if tt.format == FormatJSON {
				r := decodeReading(t, body)
				assert.Equal(t, tt.wantUni, r.Unit)
				v = *r.Value
			} else {
				var err error
				v, err = strconv.ParseFloat(string(body), 64)
				require.NoError(t, err, "text payload %q", body)
			}
			info, _ := telemetry.Info(tt.param)
			assert.True(t, info.Physical.Contains(v), "%v within %v", v, info.Physical)
		})
	}
}

func TestRequestsOutsideTheResources(t *testing.T) {
	_, addr := serve(t, Config{Params: []telemetry.Param{telemetry.DO, telemetry.PH}})
	cc := dial(t, addr)

	code, _, body := get(t, cc, "/salinity")
	assert.Equal(t, codes.NotFound, code)
	assert.Contains(t, string(body), "/do, /ph")

	code, cf, body := get(t, cc, "/.well-known/core")
	assert.Equal(t, codes.Content, code)
	assert.Equal(t, message.AppLinkFormat, cf)
	assert.Equal(t, `</do>;rt="purehealth.do";obs;ct=50,</ph>;rt="purehealth.ph";obs;ct=50`, string(body))

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := cc.Delete(ctx, "/do")
	require.NoError(t, err)
	defer cc.ReleaseMessage(resp)
	assert.Equal(t, codes.MethodNotAllowed, resp.Code())
}

// notification is what an observe callback saw, copied out of the pooled message.
type notification struct {
	code     codes.Code
	seq      uint32
	hasSeq   bool
	maxAge   uint32
	body     []byte
	received time.Time
}

func observe(t *testing.T, cc *client.Conn, path string) (<-chan notification, netclient.Observation) {
	t.Helper()
	ch := make(chan notification, 64)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	obs, err := cc.Observe(ctx, path, func(m *pool.Message) {
		n := notification{code: m.Code(), received: time.Now()}
		n.seq, _ = m.Observe()
		n.hasSeq = m.HasOption(message.Observe)
		n.maxAge, _ = m.GetOptionUint32(message.MaxAge)
		n.body, _ = m.ReadBody()
		select {
		case ch <- n:
		default:
		}
	})
	require.NoError(t, err)
	return ch, obs
}

func next(t *testing.T, ch <-chan notification) notification {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(10 * time.Second):
		require.FailNow(t, "no notification within 10s")
	}
	return notification{}
}

func TestObserve(t *testing.T) {
	s, addr := serve(t, Config{Params: []telemetry.Param{telemetry.DO}, Interval: 50 * time.Millisecond})
	cc := dial(t, addr)
	ch, obs := observe(t, cc, "/do")

	var last uint32
	for i := range 5 {
		n := next(t, ch)
		require.Equal(t, codes.Content, n.code, "notification %d", i)
		require.True(t, n.hasSeq, "notification %d carries Observe", i)
		if i > 0 {
			assert.Greater(t, n.seq, last, "sequence numbers increase")
		}
		last = n.seq
		assert.Equal(t, uint32(1), n.maxAge, "Max-Age: 50ms rounded up to a second")
		r := decodeReading(t, n.body)
		assert.Equal(t, "mg/L", r.Unit)
	}
	assert.Equal(t, 1, s.Stats().Observers)
	assert.Equal(t, uint64(1), s.Stats().Registrations)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	require.NoError(t, obs.Cancel(ctx), "deregistration with Observe 1")
	assert.Equal(t, uint64(1), s.Stats().Deregistrations)
	assert.Equal(t, 0, s.Stats().Observers)
	// The client has seen the fourth notification; its acknowledgement may still be on its
	// way to the server.
	assert.Eventually(t, func() bool { return s.Stats().Notifications >= 4 }, 5*time.Second, 10*time.Millisecond,
		"confirmable notifications acknowledged: %d", s.Stats().Notifications)
}

// A client that goes away without deregistering stops acknowledging: it is dropped.
func TestObserverThatVanishesIsDropped(t *testing.T) {
	s, addr := serve(t, Config{Params: []telemetry.Param{telemetry.DO},
		Interval: 50 * time.Millisecond, AckTimeout: 300 * time.Millisecond})
	stop := make(chan struct{})
	defer close(stop)
	cc, err := udp.Dial(addr, options.WithPeriodicRunner(periodic.New(stop, 100*time.Millisecond)),
		options.WithErrors(func(error) {}))
	require.NoError(t, err)
	ch, _ := observe(t, cc, "/do")
	next(t, ch)
	require.Equal(t, 1, s.Stats().Observers)
	require.NoError(t, cc.Close()) // no deregistration: the socket is just gone
	<-cc.Done()
	require.Eventually(t, func() bool { return s.Stats().Observers == 0 }, 10*time.Second, 20*time.Millisecond,
		"an observer that does not acknowledge is dropped")
}

// clock is a settable clock for Config.Now.
type clock struct{ at atomic.Pointer[time.Time] }

func (c *clock) set(t time.Time) { c.at.Store(&t) }
func (c *clock) now() time.Time  { return *c.at.Load() }

// instants finds, for FaultError at rate 1/2, one instant the probe answers and one it
// fails: the fault is a pure function of the probe and the instant.
func instants(t *testing.T, cfg Config) (ok, failing time.Time) {
	t.Helper()
	s, err := New(cfg, nil)
	require.NoError(t, err)
	base := time.Date(2025, 11, 13, 6, 30, 0, 0, time.UTC)
	for i := range 1000 {
		at := base.Add(time.Duration(i) * time.Millisecond)
		if s.read("/do", at).failure {
			failing = at
		} else {
			ok = at
		}
		if !ok.IsZero() && !failing.IsZero() {
			return ok, failing
		}
	}
	require.FailNow(t, "no instants found")
	return
}

func TestServerErrors(t *testing.T) {
	t.Run("every GET fails", func(t *testing.T) {
		s, addr := serve(t, Config{Params: []telemetry.Param{telemetry.DO}, Fault: FaultError, FaultRate: 1})
		code, cf, body := get(t, dial(t, addr), "/do")
		assert.Equal(t, codes.InternalServerError, code)
		assert.Equal(t, message.TextPlain, cf)
		assert.Equal(t, "simulated sensor failure", string(body))
		assert.Equal(t, uint64(1), s.Stats().ServerErrors)
	})
	t.Run("a 5.00 notification ends the observation", func(t *testing.T) {
		cfg := Config{Params: []telemetry.Param{telemetry.DO}, Fault: FaultError, FaultRate: 0.5,
			Interval: 50 * time.Millisecond}
		ok, failing := instants(t, cfg)
		var c clock
		c.set(ok)
		cfg.Now = c.now
		s, addr := serve(t, cfg)
		ch, obs := observe(t, dial(t, addr), "/do")
		first := next(t, ch)
		require.Equal(t, codes.Content, first.code, "the registration succeeds")
		c.set(failing)
		n := next(t, ch)
		assert.Equal(t, codes.InternalServerError, n.code)
		assert.False(t, n.hasSeq, "a final response carries no Observe option")
		require.Eventually(t, func() bool { return s.Stats().Observers == 0 }, 5*time.Second, 10*time.Millisecond)
		assert.True(t, obs.Canceled(), "the client library ends the observation too")
	})
}

// rawGet encodes a CoAP GET by hand (RFC 7252 §3): typ 0 confirmable, 1 non-confirmable.
func rawGet(typ byte, mid uint16, token []byte, path string) []byte {
	b := []byte{0x40 | typ<<4 | byte(len(token)), 0x01, byte(mid >> 8), byte(mid)}
	b = append(b, token...)
	return append(append(b, 0xb0|byte(len(path))), path...) // Uri-Path (11), length < 13
}

func TestPeerRateLimit(t *testing.T) {
	s, addr := serve(t, Config{Params: []telemetry.Param{telemetry.DO}, PeerRate: 5})
	conn, err := net.Dial("udp", addr)
	require.NoError(t, err)
	defer conn.Close()
	for i := range 60 {
		_, err := conn.Write(rawGet(1, uint16(1000+i), []byte{byte(i)}, "do"))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return s.Stats().Dropped >= 40 }, 5*time.Second, 10*time.Millisecond,
		"60 requests at once from a peer allowed 5/s: most are dropped (stats %+v)", s.Stats())
	assert.LessOrEqual(t, s.Stats().Requests, uint64(20), "only the peer's burst is handled")
}

// Garbage from many ports: nothing crashes, state stays bounded, and a real client is
// answered once the junk peers have gone idle.
func TestGarbageDatagrams(t *testing.T) {
	s, addr := serve(t, Config{Params: []telemetry.Param{telemetry.DO}, MaxPeers: 8,
		Interval: 100 * time.Millisecond, PeerIdle: 500 * time.Millisecond})
	before := runtime.NumGoroutine()
	heapBefore := heapInUse()
	rng := rand.New(rand.NewPCG(1, 2))
	conns := make([]net.Conn, 40)
	for sock := range conns {
		conn, err := net.Dial("udp", addr)
		require.NoError(t, err)
		// A well-formed request first, so the peer is kept (and counts against MaxPeers):
		// all of them at once, well within PeerIdle, however slowly the garbage goes.
		_, err = conn.Write(rawGet(1, uint16(sock), []byte{9}, "do"))
		require.NoError(t, err)
		conns[sock] = conn
	}
	for sock, conn := range conns {
		for i := range 100 {
			var d []byte
			switch i % 5 {
			case 0: // noise
				d = make([]byte, 1+rng.IntN(64))
				for j := range d {
					d[j] = byte(rng.Uint32())
				}
			case 1: // a header cut short
				d = []byte{0x40, 0x01, 0x12}
			case 2: // a valid header with a broken option
				d = []byte{0x41, 0x01, 0x00, byte(i), 0x7, 0xbf}
			case 3: // oversized
				d = make([]byte, 3000)
				d[0] = 0x40
			case 4: // a well-formed request for a resource that does not exist
				d = rawGet(1, uint16(sock*100+i), []byte{1, 2}, "nope")
			}
			_, err := conn.Write(d)
			require.NoError(t, err)
		}
		require.NoError(t, conn.Close())
	}
	require.Eventually(t, func() bool { return s.Stats().PeersRefused > 0 }, 5*time.Second, 10*time.Millisecond,
		"peers over MaxPeers are refused")
	// A refused or malformed peer's goroutine ends at the server's next periodic check.
	assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= before+8*2+4 }, 5*time.Second, 20*time.Millisecond,
		"goroutines bounded by MaxPeers: %d, %d before the flood", runtime.NumGoroutine(), before)

	assert.Less(t, heapInUse(), heapBefore+16<<20, "4000 datagrams leave little behind")

	cc := dial(t, addr)
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		resp, err := cc.Get(ctx, "/do")
		if err != nil {
			return false
		}
		defer cc.ReleaseMessage(resp)
		return resp.Code() == codes.Content
	}, 10*time.Second, 50*time.Millisecond, "a real client is answered after the flood")
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no params", Config{}, "at least one is required"},
		{"unknown param", Config{Params: []telemetry.Param{"salinity"}}, `"salinity" is not a canonical parameter`},
		{"duplicate", Config{Params: []telemetry.Param{telemetry.DO, telemetry.DO}}, "do listed twice"},
		{"format", Config{Params: []telemetry.Param{telemetry.DO}, Format: "xml"}, `unknown format "xml"`},
		{"fault", Config{Params: []telemetry.Param{telemetry.DO}, Fault: "unplug"}, `unknown fault "unplug"`},
		{"rate", Config{Params: []telemetry.Param{telemetry.DO}, FaultRate: 2}, "fault rate 2"},
		{"interval", Config{Params: []telemetry.Param{telemetry.DO}, Interval: time.Millisecond}, "interval 1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestParseFault(t *testing.T) {
	for in, want := range map[string]Fault{"": "none", "garbage": "garbage", "ERROR": FaultError, "5.00": FaultError} {
		got, err := ParseFault(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := ParseFault("slow")
	assert.ErrorContains(t, err, "want none, noise, drift, stuck, dropout, garbage, spike, error")
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

package coapprobe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/probestatus"
	"github.com/purehealth/purehealth/agent/internal/probetest"
	"github.com/purehealth/purehealth/internal/testproc"
	"github.com/purehealth/purehealth/shared/telemetry"
)

func newProbe(t *testing.T, cfg Config, s *probetest.Sink, h probestatus.Health) *Probe {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "do-1"
	}
	if cfg.Param == "" {
		cfg.Param = telemetry.DO
	}
	if cfg.Station == "" {
		cfg.Station = "MH-PUNE-001"
	}
	p, err := New(cfg, s, h, probetest.Logger(t))
	require.NoError(t, err)
	return p
}

func TestPoll(t *testing.T) {
	tests := []struct {
		format   string
		wantUnit string
		wantTime bool
	}{
		{"json", "mg/L", true},
		{"text", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			srv := probetest.StartSim(t, "coap", "127.0.0.1:0", "--format", tt.format)
			s, h := &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 100*time.Millisecond)
			p := newProbe(t, Config{URL: srv.URLs[0], Interval: 100 * time.Millisecond}, s, h)
			probetest.Run(t, p)

			for _, o := range s.WaitReadings(t, 3) {
				assert.Equal(t, "MH-PUNE-001", o.Station)
				assert.Equal(t, "do-1", o.Sensor)
				assert.Equal(t, "do", o.Param)
				assert.Equal(t, tt.wantUnit, o.Unit)
				assert.Equal(t, tt.wantTime, !o.Time.IsZero(), "timestamp from the payload")
				assert.True(t, o.Value >= 0 && o.Value <= 25, "DO %v mg/L", o.Value)
			}
			st := p.Status()
			assert.Equal(t, "poll", st.Mode)
			assert.True(t, st.Connected)
			assert.Zero(t, st.Errors, "last error: %s", st.LastError)
			assert.Zero(t, probetest.Sensor(t, h, "do-1").Errors)
		})
	}
}

func TestStoresTakenReadingAtShutdown(t *testing.T) {
	for _, observe := range []bool{false, true} {
		t.Run(fmt.Sprintf("observe=%v", observe), func(t *testing.T) {
			srv := probetest.StartSim(t, "coap", "127.0.0.1:0", "--interval", "100ms")
			s := &probetest.Sink{}
			p := newProbe(t, Config{URL: srv.URLs[0], Interval: 100 * time.Millisecond, Observe: observe}, s,
				probetest.Station("coap", "do-1", telemetry.DO, 100*time.Millisecond))
			probetest.StoresTakenReadingAtShutdown(t, p, s)
			assert.Equal(t, uint64(1), p.Status().Readings)
		})
	}
}

func TestObserve(t *testing.T) {
	srv := probetest.StartSim(t, "coap", "127.0.0.1:0", "--interval", "100ms")
	s, h := &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 100*time.Millisecond)
	p := newProbe(t, Config{URL: srv.URLs[0], Interval: 100 * time.Millisecond, Observe: true}, s, h)
	probetest.Run(t, p)

	rs := s.WaitReadings(t, 8)
	for i := 1; i < len(rs); i++ {
		assert.True(t, rs[i].Time.After(rs[i-1].Time), "notifications in order: %v after %v", rs[i].Time, rs[i-1].Time)
	}
	st := p.Status()
	assert.Equal(t, "observe", st.Mode)
	assert.True(t, st.Connected)
	assert.GreaterOrEqual(t, st.Notifications, uint64(8))
	assert.Zero(t, st.Reconnects, "one registration serves them all")
	assert.Zero(t, st.Errors, "last error: %s", st.LastError)
}

// The probe reboots (the simulator is killed and started again on the same port): it forgot
// its observers, so the probe must notice the silence and register again.
func TestObserveRegistersAgainAfterServerRestart(t *testing.T) {
	addr := testproc.FreeAddr(t, "udp")
	srv := probetest.StartSim(t, "coap", addr, "--interval", "100ms")
	s, h := &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 100*time.Millisecond)
	p := newProbe(t, Config{URL: srv.URLs[0], Interval: 100 * time.Millisecond, Observe: true}, s, h)
	probetest.Run(t, p)
	before := len(s.WaitReadings(t, 3))

	srv.Kill(t)
	probetest.StartSim(t, "coap", addr, "--interval", "100ms")
	s.WaitReadings(t, before+3)

	assert.GreaterOrEqual(t, p.Status().Reconnects, uint64(1))
	assert.GreaterOrEqual(t, probetest.Sensor(t, h, "do-1").Reconnects, uint64(1), "re-registration counted in sensor health")
}

// A frozen server (SIGSTOP) sends nothing and answers nothing: the watchdog re-registers,
// registrations time out (counted), and observing resumes when it thaws.
func TestObserveWatchdog(t *testing.T) {
	srv := probetest.StartSim(t, "coap", "127.0.0.1:0", "--interval", "100ms")
	s, h := &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 100*time.Millisecond)
	p := newProbe(t, Config{URL: srv.URLs[0], Interval: 100 * time.Millisecond, Observe: true}, s, h)
	probetest.Run(t, p)
	s.WaitReadings(t, 3)

	srv.Signal(t, syscall.SIGSTOP)
	require.Eventually(t, func() bool { return probetest.Sensor(t, h, "do-1").ErrorsByKind[KindTimeout] >= 1 },
		20*time.Second, 20*time.Millisecond, "a registration to a frozen server times out")
	frozen := s.Count()
	srv.Signal(t, syscall.SIGCONT)
	s.WaitReadings(t, frozen+3)
	assert.GreaterOrEqual(t, p.Status().Reconnects, uint64(1))
}

func TestServerErrorsAreCounted(t *testing.T) {
	for _, observe := range []bool{false, true} {
		t.Run(map[bool]string{false: "poll", true: "observe"}[observe], func(t *testing.T) {
			srv := probetest.StartSim(t, "coap", "127.0.0.1:0", "--fault", "error", "--fault-rate", "1", "--interval", "100ms")
			s, h := &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 100*time.Millisecond)
			p := newProbe(t, Config{URL: srv.URLs[0], Interval: 100 * time.Millisecond, Observe: observe}, s, h)
			probetest.Run(t, p)
			require.Eventually(t, func() bool { return probetest.Sensor(t, h, "do-1").ErrorsByKind[KindBadCode] >= 2 },
				10*time.Second, 10*time.Millisecond)
			assert.Contains(t, p.Status().LastError, "5.00 InternalServerError")
			assert.Contains(t, p.Status().LastError, "simulated sensor failure", "the diagnostic payload")
			assert.Zero(t, s.Count())
		})
	}
}

func TestGarbagePayloadsAreCounted(t *testing.T) {
	srv := probetest.StartSim(t, "coap", "127.0.0.1:0", "--fault", "garbage")
	s, h := &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 20*time.Millisecond)
	p := newProbe(t, Config{URL: srv.URLs[0], Interval: 20 * time.Millisecond}, s, h)
	probetest.Run(t, p)
	// About one payload in three is garbage; a fifth of those has a unit no parameter has,
	// which decodes and is refused by the sink instead.
	require.Eventually(t, func() bool { return probetest.Sensor(t, h, "do-1").ErrorsByKind[KindDecode] >= 3 && s.Count() >= 3 },
		30*time.Second, 10*time.Millisecond)
	st := p.Status()
	assert.Equal(t, st.Errors, probetest.Sensor(t, h, "do-1").Errors, "every error the probe saw went to health")
}

// rogue is a hand-written CoAP server on loopback: answer builds the datagrams sent back
// for each request received.
type rogue struct {
	conn     *net.UDPConn
	requests atomic.Int64
}

func startRogue(t *testing.T, answer func(req []byte) [][]byte) *rogue {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	r := &rogue{conn: conn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return // closed at the end of the test
			}
			if n < 4 || buf[1] < 1 || buf[1] > 31 {
				continue // answer requests only: acknowledgements must not start a storm
			}
			r.requests.Add(1)
			for _, d := range answer(buf[:n]) {
				if _, err := conn.WriteToUDP(d, from); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() {
		assert.NoError(t, conn.Close())
		<-done
	})
	return r
}

func (r *rogue) url() string { return "coap://" + r.conn.LocalAddr().String() + "/do" }

// ack builds, by hand (RFC 7252 §3), a piggybacked response to req: code 2.05, the request's
// message id and token, content-format 50 and payload. It returns nil for a datagram that is
// not a request.
func ack(req []byte, payload string) []byte {
	if len(req) < 4 || req[0]>>6 != 1 {
		return nil
	}
	tkl := int(req[0] & 0x0f)
	if len(req) < 4+tkl {
		return nil
	}
	b := []byte{0x60 | byte(tkl), 0x45, req[2], req[3]}
	b = append(b, req[4:4+tkl]...)
	b = append(b, 0xc1, 50) // Content-Format (12): application/json
	return append(append(b, 0xff), payload...)
}

const goodPayload = `{"value":6.5,"unit":"mg/L"}`

// Malformed datagrams from the server's own address, before every real answer: the probe
// survives them, and memory and goroutines stay bounded.
func TestMalformedDatagramsFromTheServer(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	r := startRogue(t, func(req []byte) [][]byte {
		var out [][]byte
		for range 50 {
			noise := make([]byte, 1+rng.IntN(80))
			for i := range noise {
				noise[i] = byte(rng.Uint32())
			}
			out = append(out, noise)
		}
		out = append(out,
			[]byte{0x60},                             // a header cut short
			[]byte{0x61, 0x45, 0, 0, 1, 0xf0},        // a reserved option delta
			[]byte{0x68, 0x45, req[2], req[3]},       // a token length the datagram does not have
			ack([]byte{0x42, 1, 9, 9, 7, 7}, "{"),    // an answer to a request never made
			[]byte{0x50, 0x01, 0, 1, 0xb2, 'd', 'o'}, // a request to the probe (dropped)
		)
		return append(out, ack(req, goodPayload))
	})
	s, h := &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 100*time.Millisecond)
	p := newProbe(t, Config{URL: r.url(), Interval: 100 * time.Millisecond}, s, h)
	goroutines, heap := runtime.NumGoroutine(), heapInUse()
	probetest.Run(t, p)

	rs := s.WaitReadings(t, 10)
	assert.Equal(t, 6.5, rs[0].Value)
	assert.Less(t, runtime.NumGoroutine(), goroutines+20, "goroutines bounded")
	assert.Less(t, heapInUse(), heap+16<<20, "memory bounded after %d requests with 55 bad datagrams each", r.requests.Load())
	assert.Positive(t, p.Status().Dropped, "requests and strangers' tokens are dropped unanswered")
}

// Datagrams from anyone but the server never reach the probe: its socket is connected.
func TestDatagramsFromStrangersAreIgnored(t *testing.T) {
	srv := probetest.StartSim(t, "coap", "127.0.0.1:0")
	s, h := &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 50*time.Millisecond)
	p := newProbe(t, Config{URL: srv.URLs[0], Interval: 50 * time.Millisecond}, s, h)
	probetest.Run(t, p)
	s.WaitReadings(t, 1)
	local := p.Status().Local
	require.NotEmpty(t, local)

	to, err := net.ResolveUDPAddr("udp", local)
	require.NoError(t, err)
	// Unconnected, so the kernel's "port unreachable" answers do not fail the writes.
	stranger, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer stranger.Close()
	for i := range 2000 {
		_, err := stranger.WriteToUDP([]byte{0x60, 0x45, byte(i >> 8), byte(i), 0xff, '9'}, to)
		require.NoError(t, err)
	}
	n := s.Count()
	s.WaitReadings(t, n+3)
	assert.Zero(t, p.Status().Errors)
}

func TestObserveUnsupportedFallsBackToPolling(t *testing.T) {
	r := startRogue(t, func(req []byte) [][]byte { return [][]byte{ack(req, goodPayload)} }) // no Observe option
	s, h := &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 50*time.Millisecond)
	p := newProbe(t, Config{URL: r.url(), Interval: 50 * time.Millisecond, Observe: true}, s, h)
	probetest.Run(t, p)
	s.WaitReadings(t, 5)
	assert.Equal(t, "poll", p.Status().Mode)
	assert.Zero(t, p.Status().Reconnects)
}

// A server that never answers: timeouts are counted, and the probe backs off between
// connections instead of hammering it.
func TestTimeoutsBackOff(t *testing.T) {
	r := startRogue(t, func([]byte) [][]byte { return nil })
	s, h := &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 20*time.Millisecond)
	p := newProbe(t, Config{URL: r.url(), Interval: 20 * time.Millisecond}, s, h)
	probetest.Run(t, p)
	time.Sleep(3 * time.Second)
	got := r.requests.Load()
	assert.GreaterOrEqual(t, probetest.Sensor(t, h, "do-1").ErrorsByKind[KindTimeout], uint64(3))
	assert.GreaterOrEqual(t, probetest.Sensor(t, h, "do-1").Reconnects, uint64(1))
	// Polling at 20ms would send 150 requests in 3s; with three tries per connection and a
	// doubling pause between connections it is a few dozen at most.
	assert.Less(t, got, int64(40), "requests in 3s to a dead server")
}

func TestRefusedReadingsAreLeftToTheSink(t *testing.T) {
	r := startRogue(t, func(req []byte) [][]byte { return [][]byte{ack(req, `{"value":6.5,"unit":"furlongs"}`)} })
	s, h := &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 50*time.Millisecond)
	p := newProbe(t, Config{URL: r.url(), Interval: 50 * time.Millisecond}, s, h)
	probetest.Run(t, p)
	require.Eventually(t, func() bool { return p.Status().Rejected >= 2 }, 10*time.Second, 10*time.Millisecond)
	assert.Contains(t, p.Status().LastError, "furlongs")
	assert.Zero(t, probetest.Sensor(t, h, "do-1").Errors, "the pipeline counts what it refuses, not the probe")
}

func TestStoreFailureKeepsProbing(t *testing.T) {
	r := startRogue(t, func(req []byte) [][]byte { return [][]byte{ack(req, goodPayload)} })
	s, h := &probetest.Sink{Fail: errors.New("disk full")}, probetest.Station("coap", "do-1", telemetry.DO, 50*time.Millisecond)
	p := newProbe(t, Config{URL: r.url(), Interval: 50 * time.Millisecond}, s, h)
	probetest.Run(t, p)
	require.Eventually(t, func() bool { return r.requests.Load() >= 3 }, 10*time.Second, 10*time.Millisecond)
	assert.Contains(t, p.Status().LastError, "store: disk full")
}

func TestTest(t *testing.T) {
	t.Run("reading", func(t *testing.T) {
		srv := probetest.StartSim(t, "coap", "127.0.0.1:0")
		p := newProbe(t, Config{URL: srv.URLs[0]}, &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 0))
		ex, err := p.Test(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "GET "+srv.URLs[0], ex.Request)
		assert.Equal(t, "2.05 Content", ex.Response)
		assert.Equal(t, "application/json (50)", ex.ContentType)
		assert.True(t, strings.HasPrefix(ex.Payload, `{"value":`), ex.Payload)
		require.NotNil(t, ex.Value)
		assert.Equal(t, "mg/L", ex.Unit)
		assert.False(t, ex.Time.IsZero())
		assert.Empty(t, ex.Error)
	})
	t.Run("server error", func(t *testing.T) {
		srv := probetest.StartSim(t, "coap", "127.0.0.1:0", "--fault", "error", "--fault-rate", "1")
		s, h := &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 0)
		p := newProbe(t, Config{URL: srv.URLs[0]}, s, h)
		ex, err := p.Test(t.Context())
		require.Error(t, err)
		assert.Equal(t, "5.00 InternalServerError", ex.Response)
		assert.Equal(t, "simulated sensor failure", ex.Payload)
		assert.Equal(t, err.Error(), ex.Error)
		assert.Zero(t, probetest.Sensor(t, h, "do-1").Errors, "Test counts nothing")
	})
	t.Run("no answer", func(t *testing.T) {
		r := startRogue(t, func([]byte) [][]byte { return nil })
		p := newProbe(t, Config{URL: r.url(), Timeout: 200 * time.Millisecond}, &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 0))
		ex, err := p.Test(t.Context())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no response within 200ms")
		assert.Empty(t, ex.Response)
	})
	t.Run("long payload", func(t *testing.T) {
		long := `{"value":6.5,"unit":"mg/L","note":"` + strings.Repeat("x", 400) + `"}`
		r := startRogue(t, func(req []byte) [][]byte { return [][]byte{ack(req, long)} })
		p := newProbe(t, Config{URL: r.url()}, &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 0))
		ex, err := p.Test(t.Context())
		require.NoError(t, err)
		assert.True(t, ex.Truncated)
		assert.Len(t, ex.Payload, payloadShown)
		assert.Equal(t, 6.5, *ex.Value)
	})
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"coaps", Config{Name: "x", Param: telemetry.DO, URL: "coaps://h/do"}, "not supported"},
		{"http", Config{Name: "x", Param: telemetry.DO, URL: "http://h/do"}, "want coap://host[:port]/path"},
		{"no host", Config{Name: "x", Param: telemetry.DO, URL: "coap:///do"}, "want coap://"},
		{"no name", Config{Param: telemetry.DO, URL: "coap://h/do"}, "name is required"},
		{"alias param", Config{Name: "x", Param: "DO", URL: "coap://h/do"}, `param "DO" is not a canonical parameter`},
		{"negative", Config{Name: "x", Param: telemetry.DO, URL: "coap://h/do", Timeout: -1}, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, &probetest.Sink{}, probetest.Station("coap", "x", telemetry.DO, 0), nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := New(Config{Name: "x", Param: telemetry.DO, URL: "coaps://h/do"}, &probetest.Sink{}, probetest.Station("coap", "x", telemetry.DO, 0), nil)
	assert.ErrorIs(t, err, ErrDTLS)
}

func TestParseURL(t *testing.T) {
	target, path, queries, err := parseURL("coap://sonde.local/sensors/do?unit=mg%2FL&avg=1")
	require.NoError(t, err)
	assert.Equal(t, "sonde.local:5683", target)
	assert.Equal(t, "/sensors/do", path)
	require.Len(t, queries, 2)
	assert.Equal(t, "unit=mg/L", string(queries[0].Value))
	assert.Equal(t, "avg=1", string(queries[1].Value))

	target, path, _, err = parseURL("coap://[::1]:5684")
	require.NoError(t, err)
	assert.Equal(t, "[::1]:5684", target)
	assert.Equal(t, "/", path)
}

func TestRunTwiceIsRefused(t *testing.T) {
	r := startRogue(t, func(req []byte) [][]byte { return [][]byte{ack(req, goodPayload)} })
	p := newProbe(t, Config{URL: r.url(), Interval: time.Second}, &probetest.Sink{}, probetest.Station("coap", "do-1", telemetry.DO, 0))
	probetest.Run(t, p)
	require.Eventually(t, func() bool { return p.Status().Connected }, 10*time.Second, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	assert.ErrorContains(t, p.Run(ctx), "already running")
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

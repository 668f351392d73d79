package httpprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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
		cfg.Name = "turb-1"
	}
	if cfg.Param == "" {
		cfg.Param = telemetry.Turbidity
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
		{"json", "NTU", true},
		{"text", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			srv := probetest.StartSim(t, "http", "127.0.0.1:0", "--params", "turbidity", "--format", tt.format)
			s, h := &probetest.Sink{}, probetest.Station("http", "turb-1", telemetry.Turbidity, 50*time.Millisecond)
			p := newProbe(t, Config{URL: srv.URLs[0], Interval: 50 * time.Millisecond}, s, h)
			probetest.Run(t, p)
			for _, o := range s.WaitReadings(t, 3) {
				assert.Equal(t, "MH-PUNE-001", o.Station)
				assert.Equal(t, "turb-1", o.Sensor)
				assert.Equal(t, "turbidity", o.Param)
				assert.Equal(t, tt.wantUnit, o.Unit)
				assert.Equal(t, tt.wantTime, !o.Time.IsZero())
				assert.True(t, o.Value >= 0 && o.Value <= 10000, "turbidity %v", o.Value)
			}
			assert.Zero(t, p.Status().Errors, "last error: %s", p.Status().LastError)
		})
	}
}

func TestStoresTakenReadingAtShutdown(t *testing.T) {
	srv, _ := reading(t, http.StatusOK, `{"value": 12.5, "unit": "NTU"}`)
	s := &probetest.Sink{}
	p := newProbe(t, Config{URL: srv.URL, Interval: 20 * time.Millisecond}, s,
		probetest.Station("http", "turb-1", telemetry.Turbidity, 20*time.Millisecond))
	probetest.StoresTakenReadingAtShutdown(t, p, s)
	assert.Equal(t, uint64(1), p.Status().Readings)
}

// reading serves a fixed body, counting connections.
func reading(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func TestKeepAliveConnectionIsReused(t *testing.T) {
	srv, conns := reading(t, http.StatusOK, `{"value": 12.5, "unit": "NTU"}`)
	s, h := &probetest.Sink{}, probetest.Station("http", "turb-1", telemetry.Turbidity, 20*time.Millisecond)
	p := newProbe(t, Config{URL: srv.URL + "/turbidity", Interval: 20 * time.Millisecond}, s, h)
	probetest.Run(t, p)
	s.WaitReadings(t, 10)
	assert.Equal(t, int64(1), conns.Load(), "ten polls on one connection")
}

func TestFailuresAreCounted(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		kind    string
		mention string
	}{
		{"slow", []string{"--fault", "slow", "--fault-rate", "1", "--slow", "5s"}, KindTimeout, "no complete answer within 300ms"},
		{"500", []string{"--fault", "500", "--fault-rate", "1"}, "http_500", `500 Internal Server Error ("simulated sensor failure")`},
		{"oversized", []string{"--fault", "oversized", "--fault-rate", "1"}, KindDecode, "payload too large: body over 65536 bytes"},
		{"garbage", []string{"--fault", "garbage"}, KindDecode, "decode"},
		{"dropout", []string{"--fault", "dropout"}, KindConnect, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := probetest.StartSim(t, "http", "127.0.0.1:0", append([]string{"--params", "turbidity"}, tt.args...)...)
			s, h := &probetest.Sink{}, probetest.Station("http", "turb-1", telemetry.Turbidity, 20*time.Millisecond)
			p := newProbe(t, Config{URL: srv.URLs[0], Interval: 20 * time.Millisecond, Timeout: 300 * time.Millisecond}, s, h)
			probetest.Run(t, p)
			require.Eventually(t, func() bool { return probetest.Sensor(t, h, "turb-1").ErrorsByKind[tt.kind] >= 2 },
				30*time.Second, 10*time.Millisecond, "errors %v", probetest.Sensor(t, h, "turb-1").ErrorsByKind)
			assert.Contains(t, p.Status().LastError, tt.mention)
			assert.Equal(t, p.Status().Errors, probetest.Sensor(t, h, "turb-1").Errors, "every error went to health")
		})
	}
}

// A device answering 500 every time is polled less and less often, not every interval.
func TestBackoff(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		http.Error(w, "broken", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	s, h := &probetest.Sink{}, probetest.Station("http", "turb-1", telemetry.Turbidity, 20*time.Millisecond)
	p := newProbe(t, Config{URL: srv.URL, Interval: 20 * time.Millisecond}, s, h)
	probetest.Run(t, p)
	time.Sleep(3 * time.Second)
	// 150 polls at 20ms; with a doubling pause from 1s it is a handful.
	assert.Less(t, requests.Load(), int64(10))
	assert.GreaterOrEqual(t, probetest.Sensor(t, h, "turb-1").ErrorsByKind["http_503"], uint64(2))
}

func TestReconnectAfterTheDeviceComesBack(t *testing.T) {
	addr := testproc.FreeAddr(t, "tcp")
	srv := probetest.StartSim(t, "http", addr, "--params", "turbidity")
	s, h := &probetest.Sink{}, probetest.Station("http", "turb-1", telemetry.Turbidity, 50*time.Millisecond)
	p := newProbe(t, Config{URL: srv.URLs[0], Interval: 50 * time.Millisecond}, s, h)
	probetest.Run(t, p)
	s.WaitReadings(t, 2)
	srv.Stop(t)
	require.Eventually(t, func() bool { return probetest.Sensor(t, h, "turb-1").ErrorsByKind[KindConnect] >= 1 },
		10*time.Second, 10*time.Millisecond)
	n := s.Count()
	probetest.StartSim(t, "http", addr, "--params", "turbidity")
	s.WaitReadings(t, n+2)
	assert.Equal(t, uint64(1), probetest.Sensor(t, h, "turb-1").Reconnects)
	assert.Equal(t, uint64(1), p.Status().Reconnects)
}

func TestRefusedReadingsAreLeftToTheSink(t *testing.T) {
	srv, _ := reading(t, http.StatusOK, `{"value": 12.5, "unit": "furlongs"}`)
	s, h := &probetest.Sink{}, probetest.Station("http", "turb-1", telemetry.Turbidity, 20*time.Millisecond)
	p := newProbe(t, Config{URL: srv.URL, Interval: 20 * time.Millisecond}, s, h)
	probetest.Run(t, p)
	require.Eventually(t, func() bool { return p.Status().Rejected >= 2 }, 10*time.Second, 10*time.Millisecond)
	assert.Contains(t, p.Status().LastError, "furlongs")
	assert.Zero(t, probetest.Sensor(t, h, "turb-1").Errors, "the pipeline counts what it refuses, not the probe")
}

func TestStoreFailureKeepsPolling(t *testing.T) {
	srv, _ := reading(t, http.StatusOK, `12.5`)
	s, h := &probetest.Sink{Fail: errors.New("disk full")}, probetest.Station("http", "turb-1", telemetry.Turbidity, 20*time.Millisecond)
	p := newProbe(t, Config{URL: srv.URL, Interval: 20 * time.Millisecond}, s, h)
	probetest.Run(t, p)
	require.Eventually(t, func() bool { return p.Status().Polls >= 3 }, 10*time.Second, 10*time.Millisecond)
	assert.Contains(t, p.Status().LastError, "store: disk full")
	assert.Zero(t, probetest.Sensor(t, h, "turb-1").Errors)
}

func TestTest(t *testing.T) {
	t.Run("reading", func(t *testing.T) {
		srv := probetest.StartSim(t, "http", "127.0.0.1:0", "--params", "turbidity")
		h := probetest.Station("http", "turb-1", telemetry.Turbidity, 0)
		p := newProbe(t, Config{URL: srv.URLs[0]}, &probetest.Sink{}, h)
		ex, err := p.Test(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "GET "+srv.URLs[0], ex.Request)
		assert.Equal(t, "200 OK", ex.Response)
		assert.Equal(t, "application/json", ex.ContentType)
		assert.True(t, strings.HasPrefix(ex.Payload, `{"value":`), ex.Payload)
		require.NotNil(t, ex.Value)
		assert.Equal(t, "NTU", ex.Unit)
		assert.False(t, ex.Time.IsZero())
		assert.Zero(t, p.Status().Polls, "Test counts nothing")
	})
	t.Run("error status", func(t *testing.T) {
		srv, _ := reading(t, http.StatusNotFound, `no such sensor`)
		p := newProbe(t, Config{URL: srv.URL}, &probetest.Sink{}, probetest.Station("http", "turb-1", telemetry.Turbidity, 0))
		ex, err := p.Test(t.Context())
		require.Error(t, err)
		assert.Equal(t, "404 Not Found", ex.Response)
		assert.Equal(t, "no such sensor", ex.Payload)
		assert.Equal(t, err.Error(), ex.Error)
	})
	t.Run("unreachable", func(t *testing.T) {
		p := newProbe(t, Config{URL: "http://" + testproc.FreeAddr(t, "tcp") + "/turbidity"}, &probetest.Sink{}, probetest.Station("http", "turb-1", telemetry.Turbidity, 0))
		ex, err := p.Test(t.Context())
		require.Error(t, err)
		assert.Contains(t, ex.Error, "connection refused")
		assert.Empty(t, ex.Response)
	})
	t.Run("long body", func(t *testing.T) {
		srv, _ := reading(t, http.StatusOK, `{"value":12.5,"note":"`+strings.Repeat("x", 400)+`"}`)
		p := newProbe(t, Config{URL: srv.URL}, &probetest.Sink{}, probetest.Station("http", "turb-1", telemetry.Turbidity, 0))
		ex, err := p.Test(t.Context())
		require.NoError(t, err)
		assert.True(t, ex.Truncated)
		assert.Len(t, ex.Payload, payloadShown)
		assert.Equal(t, 12.5, *ex.Value)
	})
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"coap url", Config{Name: "x", Param: telemetry.Turbidity, URL: "coap://h/t"}, "want http://host[:port]/path"},
		{"no name", Config{Param: telemetry.Turbidity, URL: "http://h/t"}, "name is required"},
		{"alias param", Config{Name: "x", Param: "turb", URL: "http://h/t"}, `param "turb" is not a canonical parameter`},
		{"negative", Config{Name: "x", Param: telemetry.Turbidity, URL: "http://h/t", Interval: -1}, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, &probetest.Sink{}, probetest.Station("http", "x", telemetry.Turbidity, 0), nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestRunTwiceIsRefused(t *testing.T) {
	srv, _ := reading(t, http.StatusOK, `12.5`)
	p := newProbe(t, Config{URL: srv.URL, Interval: time.Second}, &probetest.Sink{}, probetest.Station("http", "turb-1", telemetry.Turbidity, 0))
	probetest.Run(t, p)
	require.Eventually(t, func() bool { return p.Status().Polls >= 1 }, 10*time.Second, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	assert.ErrorContains(t, p.Run(ctx), "already running")
}

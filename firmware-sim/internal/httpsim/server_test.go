package httpsim

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/shared/telemetry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func start(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s, err := New(cfg, nil)
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func fetch(t *testing.T, c *http.Client, method, url string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// reading is the contract's JSON, decoded with encoding/json, independently of the agent.
type reading struct {
	Value     *float64 `json:"value"`
	Unit      string   `json:"unit"`
	Timestamp string   `json:"timestamp"`
}

func TestGet(t *testing.T) {
	_, url := start(t, Config{Params: []telemetry.Param{telemetry.Turbidity, telemetry.PH}})
	resp, body, err := fetch(t, http.DefaultClient, http.MethodGet, url+"/turbidity")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var r reading
	require.NoError(t, json.Unmarshal(body, &r), "%q", body)
	require.NotNil(t, r.Value)
	assert.Equal(t, "NTU", r.Unit)
	_, err = time.Parse(time.RFC3339Nano, r.Timestamp)
	assert.NoError(t, err)

	_, text := start(t, Config{Params: []telemetry.Param{telemetry.PH}, Format: FormatText})
	resp, body, err = fetch(t, http.DefaultClient, http.MethodGet, text+"/ph")
	require.NoError(t, err)
	assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
	v, err := strconv.ParseFloat(string(body), 64)
	require.NoError(t, err, "%q", body)
	assert.True(t, v > 0 && v < 14)
}

func TestOutsideTheResources(t *testing.T) {
	_, url := start(t, Config{Params: []telemetry.Param{telemetry.Turbidity, telemetry.PH}})
	resp, body, err := fetch(t, http.DefaultClient, http.MethodGet, url+"/salinity")
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Contains(t, string(body), "/turbidity, /ph")

	resp, _, err = fetch(t, http.DefaultClient, http.MethodPost, url+"/ph")
	require.NoError(t, err)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
}

func TestTransportFaults(t *testing.T) {
	t.Run("error", func(t *testing.T) {
		s, url := start(t, Config{Params: []telemetry.Param{telemetry.DO}, Fault: FaultError, FaultRate: 1})
		resp, body, err := fetch(t, http.DefaultClient, http.MethodGet, url+"/do")
		require.NoError(t, err)
		assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		assert.Equal(t, "simulated sensor failure\n", string(body))
		assert.Equal(t, uint64(1), s.Stats().Errors)
	})
	t.Run("oversized", func(t *testing.T) {
		_, url := start(t, Config{Params: []telemetry.Param{telemetry.DO}, Fault: FaultOversized, FaultRate: 1})
		resp, body, err := fetch(t, http.DefaultClient, http.MethodGet, url+"/do")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Len(t, body, oversizedBytes)
		var r reading
		require.NoError(t, json.Unmarshal(body, &r), "a valid document, just too big")
		assert.Equal(t, "mg/L", r.Unit)
	})
	t.Run("slow", func(t *testing.T) {
		_, url := start(t, Config{Params: []telemetry.Param{telemetry.DO}, Fault: FaultSlow, FaultRate: 1,
			SlowDelay: 300 * time.Millisecond})
		_, _, err := fetch(t, &http.Client{Timeout: 50 * time.Millisecond}, http.MethodGet, url+"/do")
		require.Error(t, err, "an impatient client gives up")
		resp, _, err := fetch(t, http.DefaultClient, http.MethodGet, url+"/do")
		require.NoError(t, err, "a patient one gets the reading")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
}

// instant finds a time at which a probe of cfg shows what want asks for: device faults
// are pure functions of the probe and the instant.
func instant(t *testing.T, cfg Config, want func(device.Sample) bool) time.Time {
	t.Helper()
	s, err := New(cfg, nil)
	require.NoError(t, err)
	base := time.Date(2025, 11, 13, 6, 30, 0, 0, time.UTC)
	for i := range 10000 {
		at := base.Add(time.Duration(i) * time.Millisecond)
		if want(s.probes["/"+string(cfg.Params[0])].Read(at)) {
			return at
		}
	}
	require.FailNow(t, "no such instant")
	return time.Time{}
}

func TestDeviceFaults(t *testing.T) {
	t.Run("dropout hangs up", func(t *testing.T) {
		cfg := Config{Params: []telemetry.Param{telemetry.DO}, Fault: Fault(device.FaultDropout)}
		at := instant(t, cfg, func(s device.Sample) bool { return !s.OK })
		cfg.Now = func() time.Time { return at }
		s, url := start(t, cfg)
		_, _, err := fetch(t, http.DefaultClient, http.MethodGet, url+"/do")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "EOF")
		assert.Equal(t, uint64(1), s.Stats().Dropouts)
	})
	t.Run("garbage", func(t *testing.T) {
		cfg := Config{Params: []telemetry.Param{telemetry.DO}, Fault: Fault(device.FaultGarbage)}
		at := instant(t, cfg, func(s device.Sample) bool { return s.Garbage })
		cfg.Now = func() time.Time { return at }
		s, url := start(t, cfg)
		resp, body, err := fetch(t, http.DefaultClient, http.MethodGet, url+"/do")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		var r reading
		err = json.Unmarshal(body, &r)
		assert.True(t, err != nil || r.Value == nil || r.Unit == "??", "garbage %q is not a reading", body)
		assert.Equal(t, uint64(1), s.Stats().Garbage)
	})
}

// Serve stops when its context ends, cutting off answers the slow fault is holding.
func TestServeStops(t *testing.T) {
	s, err := New(Config{Params: []telemetry.Param{telemetry.DO}, Fault: FaultSlow, FaultRate: 1, SlowDelay: time.Hour}, nil)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	asked := make(chan error, 1)
	go func() {
		_, _, err := fetch(t, http.DefaultClient, http.MethodGet, "http://"+l.Addr().String()+"/do")
		asked <- err
	}()
	require.Eventually(t, func() bool { return s.Stats().Slow == 1 }, 5*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	assert.Error(t, <-asked, "the held request ends without an answer")
	assert.Equal(t, []string{"http://" + l.Addr().String() + "/do"}, s.URLs(l.Addr()))
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
		{"rate", Config{Params: []telemetry.Param{telemetry.DO}, FaultRate: -1}, "fault rate -1"},
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
	for in, want := range map[string]Fault{"": "none", "stuck": "stuck", "500": FaultError, "SLOW": FaultSlow, "oversized": FaultOversized} {
		got, err := ParseFault(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := ParseFault("unplug")
	assert.ErrorContains(t, err, strings.Join([]string{"none", "noise", "drift", "stuck", "dropout", "garbage",
		"spike", "error", "slow", "oversized"}, ", "))
}

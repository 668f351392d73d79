package serialprobe

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/probetest"
	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/internal/testproc"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// The integration tests drive the probe against ph-sim's EZO emulator on real
// pseudo-terminals. The emulator is internal to ph-sim, so it runs as the ph-sim binary,
// built once per test run: the same program a technician or the demo starts.

// guard bounds every wait. It turns a hang into a failure; no test asserts how fast
// anything happens.
const guard = 30 * time.Second

func TestMain(m *testing.M) { os.Exit(probetest.Main(m)) }

// sim is one `ph-sim serial` process. Its standard error goes to the test log.
type sim struct {
	link, trace string
	proc        *testproc.Process
}

// startSim runs the simulator on link with fast circuit timing and a transcript, and waits
// until it prints its device path. It is stopped when the test ends, and must exit cleanly.
func startSim(t testing.TB, link string, args ...string) *sim {
	t.Helper()
	s := &sim{link: link, trace: link + ".trace"}
	all := append([]string{"serial", "--link", link, "--speed", "20", "--trace", s.trace, "--log-level", "warn"}, args...)
	s.proc = testproc.Start(t, probetest.SimBinary(t), all...)
	t.Cleanup(func() { s.stop(t) })
	p := s.proc.Line(t, guard)
	require.True(t, strings.HasPrefix(p, "/dev/pts/"), "first line is the device path: %q", p)
	return s
}

// stop interrupts the simulator and waits for it; it removes its link on the way out.
// Idempotent.
func (s *sim) stop(t testing.TB) {
	t.Helper()
	assert.NoError(t, s.proc.Stop(syscall.SIGTERM, guard), "ph-sim exits cleanly on SIGTERM")
}

// commands returns the complete command lines the simulator has received so far.
func (s *sim) commands(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(s.trace)
	require.NoError(t, err)
	var out []string
	for line := range strings.Lines(string(b)) {
		if !strings.HasSuffix(line, "\n") || !strings.HasPrefix(line, "> ") {
			continue
		}
		cmd, err := strconv.Unquote(strings.TrimSuffix(line[2:], "\n"))
		require.NoError(t, err)
		out = append(out, strings.TrimSuffix(cmd, "\r"))
	}
	return out
}

func count(cmds []string, cmd string) int {
	n := 0
	for _, c := range cmds {
		if c == cmd {
			n++
		}
	}
	return n
}

// sink records what the probe ingests; it can be made to fail, as a full disk does.
type sink struct {
	mu      sync.Mutex
	obs     []telemetry.Observation
	failing bool
	calls   int
}

func (s *sink) Ingest(_ context.Context, obs []telemetry.Observation) ([]error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.failing {
		return nil, errors.New("disk full")
	}
	s.obs = append(s.obs, obs...)
	return make([]error, len(obs)), nil
}

func (s *sink) setFailing(f bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing = f
}

func (s *sink) observations() []telemetry.Observation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.obs)
}

func (s *sink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.obs)
}

// harness is a probe under test with real station state for its health and temperature.
type harness struct {
	probe   *Probe
	sink    *sink
	station *state.Station
	cfg     Config
	seq     uint64
}

// testConfig polls fast and reconnects fast; the simulator answers twenty times faster
// than a real circuit.
func testConfig(device string, p telemetry.Param) Config {
	return Config{Station: "MH-TEST-001", Name: string(p) + "-1", Param: p, Device: device,
		Interval: 100 * time.Millisecond, Timeout: time.Second,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
}

// newStation is the live state of a station expecting the probe of cfg: its Health and
// Temperature.
func newStation(cfg Config) *state.Station {
	return state.New(state.Options{
		Station:   cfg.Station,
		Freshness: func(telemetry.Param) time.Duration { return time.Hour },
		Expected:  []state.SensorSpec{{Name: cfg.Name, Kind: "serial", Param: cfg.Param, Interval: cfg.Interval}},
	})
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	st := newStation(cfg)
	h := &harness{sink: &sink{}, station: st, cfg: cfg}
	p, err := New(cfg, h.sink, st, st, nil)
	require.NoError(t, err)
	h.probe = p
	return h
}

// run starts the probe until the test ends, and checks that Run then returns nil.
func (h *harness) run(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.probe.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err, "Run returns nil when its context ends")
		case <-time.After(guard):
			t.Error("Run did not return after its context ended")
		}
	})
}

// setTemp records a water temperature reading measured at `at`.
func (h *harness) setTemp(v float64, at time.Time) {
	h.seq++
	h.station.Observe([]telemetry.Reading{{Seq: h.seq, Station: h.cfg.Station, Sensor: "temp-1",
		Param: telemetry.Temp, Value: v, Unit: "degC", Time: at, Source: telemetry.SourceSensor,
		Quality: telemetry.Good}}, at)
}

func (h *harness) sensor(t testing.TB) state.Sensor {
	t.Helper()
	for _, s := range h.station.Sensors() {
		if s.Name == h.cfg.Name {
			return s
		}
	}
	t.Fatalf("no sensor %s in the station state", h.cfg.Name)
	return state.Sensor{}
}

// eventually waits until cond holds, failing with msg after guard.
func eventually(t testing.TB, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: "+msg, args...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// capturedReading is the first reading in a captured transcript (testdata/ezo), read
// with strconv so the expectation does not pass through the parser under test.
func capturedReading(t testing.TB, name string, field int) float64 {
	t.Helper()
	frames := readCapture(t, filepath.Join("testdata", "ezo", name+".txt"))
	for i, fr := range frames {
		if fr.dir == '>' && string(fr.data) == "R\r" && i+1 < len(frames) {
			first, _, _ := strings.Cut(string(frames[i+1].data), "\r")
			v, err := strconv.ParseFloat(strings.Split(first, ",")[field], 64)
			require.NoError(t, err, "%s: %q", name, first)
			return v
		}
	}
	t.Fatalf("%s: no reading captured", name)
	return 0
}

// frozenAt is the model time of the captures.
const frozenAt = "2025-03-01T06:30:00Z"

// Package probetest holds what the probes' tests share: ph-sim, built once per test
// binary, as the device at the other end (StartSim runs it for the network probes,
// coapprobe and httpprobe; serialprobe runs SimBinary its own way), a small real Sink, the
// station state that records a probe's health, and a runner that checks how Run ends.
//
// A test package that uses ph-sim runs its tests through Main, which also removes the
// build and checks that no goroutine outlived the tests:
//
//	func TestMain(m *testing.M) { os.Exit(probetest.Main(m)) }
package probetest

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/internal/testproc"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// sims builds ph-sim for the test binary; Main removes it.
var sims testproc.Builder

// Main runs the tests (testproc.Main): it removes the ph-sim build afterwards and fails the
// run if goroutines outlived the tests. Probes, their connections and these helpers all own
// goroutines, and none may outlive its test. Pass its result to os.Exit.
func Main(m *testing.M) int { return testproc.Main(&sims, m.Run) }

// SimBinary returns the path of ph-sim, building it on first use (without the race
// detector: it is the device, not the code under test).
func SimBinary(t testing.TB) string {
	t.Helper()
	return sims.Binary(t, "ph-sim", "github.com/purehealth/purehealth/firmware-sim", false)
}

// Sim is a running `ph-sim coap` or `ph-sim http` process: the real simulator, which the
// agent cannot import.
type Sim struct {
	URLs []string // one per parameter it serves, in the order of --params
	proc *testproc.Process
}

// StartSim runs `ph-sim kind --listen listen args...` (with --params do unless args name
// the parameters) and waits for its resource URLs. When the test ends the simulator is
// stopped with SIGTERM, and must exit 0. It skips t with -short.
func StartSim(t testing.TB, kind, listen string, args ...string) *Sim {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs ph-sim")
	}
	bin := SimBinary(t)
	params := 1
	if i := slices.Index(args, "--params"); i >= 0 && i+1 < len(args) {
		params = len(strings.Split(args[i+1], ","))
	} else if i < 0 {
		args = append(args, "--params", "do")
	}
	p := testproc.Start(t, bin, append([]string{kind, "--listen", listen, "--log-level", "warn"}, args...)...)
	s := &Sim{proc: p}
	for range params {
		s.URLs = append(s.URLs, p.Line(t, 20*time.Second))
	}
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Stop ends the simulator with SIGTERM, a clean stop that must exit 0 within 10 seconds.
// Idempotent; after Kill it does nothing.
func (s *Sim) Stop(t testing.TB) {
	t.Helper()
	assert.NoError(t, s.proc.Stop(syscall.SIGTERM, 10*time.Second), "ph-sim exits 0 on SIGTERM")
}

// Kill ends the simulator abruptly, as a power cut of the probe would.
func (s *Sim) Kill(t testing.TB) {
	t.Helper()
	require.NoError(t, s.proc.Kill())
}

// Signal sends sig to the simulator (SIGSTOP freezes it, SIGCONT resumes it).
func (s *Sim) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, s.proc.Signal(sig))
}

// Sink is a small real implementation of the probes' Sink: it normalizes like the
// pipeline, refuses what telemetry refuses, and keeps the rest. Like the pipeline's store,
// it gives up when its context has ended. The zero value is ready; it is safe for
// concurrent use.
type Sink struct {
	Fail error // when set, every Ingest fails with it, as a failing store does; set it before use

	mu     sync.Mutex
	stored []telemetry.Observation
	// held, when set, receives each Ingest as it begins, and the Ingest waits for its
	// reply before storing (see StoresTakenReadingAtShutdown).
	held chan chan struct{}
}

// Ingest keeps the observations telemetry.Normalize accepts and rejects the others, each
// with its error.
func (s *Sink) Ingest(ctx context.Context, obs []telemetry.Observation) ([]error, error) {
	s.mu.Lock()
	held := s.held
	s.mu.Unlock()
	if held != nil {
		release := make(chan struct{})
		held <- release
		<-release
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Fail != nil {
		return make([]error, len(obs)), s.Fail
	}
	if err := ctx.Err(); err != nil {
		return make([]error, len(obs)), err
	}
	rejected := make([]error, len(obs))
	for i, o := range obs {
		if _, _, _, err := telemetry.Normalize(o.Param, o.Value, o.Unit); err != nil {
			rejected[i] = err
			continue
		}
		s.stored = append(s.stored, o)
	}
	return rejected, nil
}

// Readings returns a copy of what the sink kept, in arrival order.
func (s *Sink) Readings() []telemetry.Observation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stored)
}

// Count is how many readings the sink kept.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.stored)
}

// WaitReadings waits up to 20 seconds until the sink holds at least n readings, and
// returns them.
func (s *Sink) WaitReadings(t testing.TB, n int) []telemetry.Observation {
	t.Helper()
	require.Eventually(t, func() bool { return s.Count() >= n }, 20*time.Second, 10*time.Millisecond,
		"want %d readings, have %d", n, s.Count())
	return s.Readings()
}

// Station is the agent's real sensor health for a station that expects one probe: name,
// of kind ("coap", "http"), measuring p every interval.
func Station(kind, name string, p telemetry.Param, interval time.Duration) *state.Station {
	return state.New(state.Options{Station: "MH-PUNE-001",
		Expected: []state.SensorSpec{{Name: name, Kind: kind, Param: p, Interval: interval}}})
}

// Sensor returns the health of the sensor called name, failing t if st has none.
func Sensor(t testing.TB, st *state.Station, name string) state.Sensor {
	t.Helper()
	for _, s := range st.Sensors() {
		if s.Name == name {
			return s
		}
	}
	require.FailNow(t, "no sensor "+name)
	return state.Sensor{}
}

// Logger logs at debug level to the test's output.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Runner is a component with a blocking Run, such as a probe.
type Runner interface {
	Run(ctx context.Context) error
}

// Run runs r until the test ends, then checks that Run returns nil within 10 seconds of
// its context ending.
func Run(t testing.TB, r Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			assert.Fail(t, "Run did not return within 10s of its context ending")
		}
	})
}

// StoresTakenReadingAtShutdown checks the rule every probe keeps: a reading already taken
// is stored even when the probe's context ends while the sink is writing it. It runs r
// (whose sink is s) until its first reading reaches s, ends Run's context while the
// reading is held inside s, then lets the write go on: the reading must be kept and Run
// must return nil.
func StoresTakenReadingAtShutdown(t testing.TB, r Runner, s *Sink) {
	t.Helper()
	held := make(chan chan struct{})
	s.mu.Lock()
	s.held = held
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var release chan struct{}
	select {
	case release = <-held:
	case <-time.After(20 * time.Second):
		require.FailNow(t, "no reading reached the sink within 20s")
	}
	s.mu.Lock()
	s.held = nil // later writes (none are expected) pass
	s.mu.Unlock()
	cancel()
	close(release)
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		require.FailNow(t, "Run did not return within 10s of its context ending")
	}
	assert.Equal(t, 1, s.Count(), "the reading taken before shutdown is stored")
}

package coapprobe

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// simBin is ph-sim, built on first use: the server side of these tests is the simulator's
// real process, which the agent cannot import.
var simBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	code := m.Run()
	if simBin.dir != "" {
		os.RemoveAll(simBin.dir)
	}
	if code == 0 {
		// Probes, their connections and the test helpers all own goroutines: none may
		// outlive its test.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "coapprobe: goroutines left after the tests:", err)
			return 1
		}
	}
	return code
}

// buildSim returns the path of ph-sim, building it once per test binary.
func buildSim(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs ph-sim")
	}
	simBin.once.Do(func() {
		simBin.dir, simBin.err = os.MkdirTemp("", "coapprobe-sim")
		if simBin.err != nil {
			return
		}
		simBin.path = filepath.Join(simBin.dir, "ph-sim")
		out, err := exec.Command(goTool(), "build", "-o", simBin.path, "github.com/purehealth/purehealth/firmware-sim").CombinedOutput()
		if err != nil {
			simBin.err = fmt.Errorf("build ph-sim: %w\n%s", err, out)
		}
	})
	require.NoError(t, simBin.err)
	return simBin.path
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// sim is a running `ph-sim coap` process.
type sim struct {
	cmd  *exec.Cmd
	addr string // host:port it listens on
	urls []string
	done chan error
}

// startSim runs `ph-sim coap --listen listen args...` and waits for its resource URLs.
// The process is stopped with SIGTERM when the test ends, and must exit cleanly.
func startSim(t testing.TB, listen string, args ...string) *sim {
	t.Helper()
	bin := buildSim(t)
	params := 1
	for i, a := range args {
		if a == "--params" && i+1 < len(args) {
			params = len(strings.Split(args[i+1], ","))
		}
	}
	if !hasFlag(args, "--params") {
		args = append(args, "--params", "do")
	}
	cmd := exec.Command(bin, append([]string{"coap", "--listen", listen, "--log-level", "warn"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = testWriter{t}
	require.NoError(t, cmd.Start())
	s := &sim{cmd: cmd, done: make(chan error, 1)}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		s.done <- cmd.Wait()
	}()
	for range params {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "ph-sim exited before printing its URLs")
			s.urls = append(s.urls, l)
		case <-time.After(20 * time.Second):
			require.NoError(t, cmd.Process.Kill())
			require.FailNow(t, "ph-sim printed no URL within 20s")
		}
	}
	go func() {
		for range lines { // nothing more is expected; drain so the process never blocks
		}
	}()
	s.addr = strings.TrimPrefix(s.urls[0], "coap://")
	s.addr = s.addr[:strings.LastIndexByte(s.addr, '/')]
	t.Cleanup(func() { s.stop(t) })
	return s
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name {
			return true
		}
	}
	return false
}

// stop ends the simulator with SIGTERM (a clean stop: exit 0). Idempotent; a killed
// simulator is just reaped.
func (s *sim) stop(t testing.TB) {
	t.Helper()
	if s.done == nil {
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err == nil {
		select {
		case err := <-s.done:
			assert.NoError(t, err, "ph-sim exits 0 on SIGTERM")
		case <-time.After(10 * time.Second):
			assert.NoError(t, s.cmd.Process.Kill())
			<-s.done
			assert.Fail(t, "ph-sim ignored SIGTERM for 10s")
		}
	} else {
		<-s.done
	}
	s.done = nil
}

// kill ends the simulator abruptly, as a power cut of the probe would.
func (s *sim) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Kill())
	<-s.done
	s.done = nil
}

func (s *sim) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(sig))
}

// testWriter sends a process's stderr to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// sink is a small real implementation of Sink: it normalizes like the pipeline, refuses
// what telemetry refuses, and keeps the rest.
type sink struct {
	mu     sync.Mutex
	stored []telemetry.Observation
	fail   error // returned as a store failure when set
}

func (s *sink) Ingest(_ context.Context, obs []telemetry.Observation) ([]error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return make([]error, len(obs)), s.fail
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

func (s *sink) readings() []telemetry.Observation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]telemetry.Observation(nil), s.stored...)
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.stored)
}

// waitReadings waits until the sink holds at least n readings.
func (s *sink) waitReadings(t *testing.T, n int) []telemetry.Observation {
	t.Helper()
	require.Eventually(t, func() bool { return s.count() >= n }, 20*time.Second, 10*time.Millisecond,
		"want %d readings, have %d", n, s.count())
	return s.readings()
}

// health is the agent's real sensor health, expecting the probe under test.
func health(name string, p telemetry.Param, interval time.Duration) *state.Station {
	return state.New(state.Options{Station: "MH-PUNE-001",
		Expected: []state.SensorSpec{{Name: name, Kind: "coap", Param: p, Interval: interval}}})
}

func sensor(t *testing.T, h *state.Station, name string) state.Sensor {
	t.Helper()
	for _, s := range h.Sensors() {
		if s.Name == name {
			return s
		}
	}
	require.FailNow(t, "no sensor "+name)
	return state.Sensor{}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// run starts p.Run until the test ends and checks that it returns nil.
func run(t *testing.T, p *Probe) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
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

// freePort returns a loopback UDP address nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	addr := c.LocalAddr().String()
	require.NoError(t, c.Close())
	return addr
}

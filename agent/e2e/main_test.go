package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/purehealth/purehealth/agent/internal/admin"
)

// station is the id every test agent runs as.
const station = "MH-E2E-001"

// guard bounds every wait. It only turns a hang into a failure: no test asserts anything
// about how fast something happens. It is generous because the agent under test may be a
// race-detector build sharing two cores with the test.
const guard = 30 * time.Second

// agentBin and simBin are the ph-agent and ph-sim binaries built by TestMain for this run.
var agentBin, simBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ph-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	agentBin = filepath.Join(dir, "ph-agent")
	args := []string{"build"}
	if raceBuild {
		// The agent under test gets the race detector too: its log is checked for reports.
		args = append(args, "-race")
	}
	args = append(args, "-o", agentBin, "github.com/purehealth/purehealth/agent")
	if out, err := exec.Command(goTool(), args...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n%s", strings.Join(args, " "), err, out)
		return 1
	}
	// The probe simulators are the devices on the other end of the agent's probes.
	simBin = filepath.Join(dir, "ph-sim")
	simArgs := []string{"build", "-o", simBin, "github.com/purehealth/purehealth/firmware-sim"}
	if out, err := exec.Command(goTool(), simArgs...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n%s", strings.Join(simArgs, " "), err, out)
		return 1
	}
	code := m.Run()
	if code == 0 {
		// The helpers here own goroutines too (MQTT clients, process waiters): none may
		// outlive its test.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: goroutines left after the tests:", err)
			return 1
		}
	}
	return code
}

// agentEnv is the environment of every ph-agent process. A race-detector build waits a
// second at exit by default, for reports from other goroutines; the tests check the log
// instead, so that wait only slows every CLI command down.
func agentEnv() []string {
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	return append(os.Environ(), "GORACE="+gorace)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// agentConfig is one test agent's configuration and where its files live.
type agentConfig struct {
	Station  string
	Dir      string // the test's private directory
	Path     string // the configuration file
	DataDir  string
	Socket   string
	Listen   string // MQTT address, host:port
	MaxBytes int64  // buffer.max_bytes
	LogLevel string
}

// newConfig writes a configuration for an agent with its own directory, socket and MQTT
// port. The directory comes from os.MkdirTemp rather than t.TempDir: a unix socket path must
// stay under about 100 bytes, and t.TempDir embeds the test's name.
func newConfig(t *testing.T, maxBytes int64) agentConfig {
	t.Helper()
	dir, err := os.MkdirTemp("", "ph")
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("remove %s: %v", dir, err)
		}
	})
	c := agentConfig{
		Station: station, Dir: dir, Path: filepath.Join(dir, "agent.yaml"),
		DataDir: filepath.Join(dir, "data"), Socket: filepath.Join(dir, "admin.sock"),
		Listen: freeAddr(t), MaxBytes: maxBytes, LogLevel: "info",
	}
	tmpl, err := template.ParseFiles(filepath.Join("testdata", "agent.yaml.tmpl"))
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, tmpl.Execute(&buf, c))
	require.NoError(t, os.WriteFile(c.Path, buf.Bytes(), 0o600))
	return c
}

// DBPath is the agent's buffer database.
func (c agentConfig) DBPath() string { return filepath.Join(c.DataDir, "agent.db") }

// Topic is purehealth/<station>/<leaf>.
func (c agentConfig) Topic(leaf string) string { return "purehealth/" + c.Station + "/" + leaf }

// freeAddr returns a TCP address on 127.0.0.1 that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// agentProc is a ph-agent daemon process, started and stopped as often as a test likes. Its
// output over all its lives goes to one log file, shown when the test fails.
type agentProc struct {
	cfg    agentConfig
	log    string
	starts int

	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	waitErr error         // valid after exited is closed
}

// startAgent runs `ph-agent run` with cfg and waits until it answers on its admin socket
// and accepts MQTT connections. The process is killed at the end of the test if it still
// runs.
func startAgent(t *testing.T, cfg agentConfig) *agentProc {
	t.Helper()
	p := &agentProc{cfg: cfg, log: filepath.Join(cfg.Dir, "agent.log")}
	t.Cleanup(func() {
		if p.running() {
			p.kill(t)
		}
		p.checkLog(t)
		if t.Failed() {
			t.Logf("agent log (last 8 KiB):\n%s", p.logTail(8<<10))
		}
	})
	p.start(t)
	return p
}

func (p *agentProc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// start starts the process again (or for the first time) and waits until it is ready.
func (p *agentProc) start(t *testing.T) {
	t.Helper()
	p.launch(t)
	p.waitReady(t)
}

// launch starts the process and returns at once.
func (p *agentProc) launch(t *testing.T) {
	t.Helper()
	require.False(t, p.running(), "agent already running")
	p.starts++
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	fmt.Fprintf(f, "=== e2e: start %d at %s\n", p.starts, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(agentBin, "run", "--config", p.cfg.Path)
	cmd.Env = agentEnv()
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Start()
	require.NoError(t, f.Close()) // the child has its own descriptor
	require.NoError(t, err)
	p.cmd, p.exited = cmd, make(chan struct{})
	exited := p.exited
	go func() {
		p.waitErr = cmd.Wait()
		close(exited)
	}()
}

// waitReady polls until the admin API answers and the MQTT port accepts connections.
func (p *agentProc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(guard)
	client := admin.NewClient(p.cfg.Socket)
	for {
		select {
		case <-p.exited:
			t.Fatalf("agent exited before it was ready (%v); log:\n%s", p.waitErr, p.logTail(4<<10))
		default:
		}
		if ready(client, p.cfg.Listen) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready after %v; log:\n%s", guard, p.logTail(4<<10))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ready(client *admin.Client, mqttAddr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := client.Status(ctx); err != nil {
		return false
	}
	c, err := net.DialTimeout("tcp", mqttAddr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *agentProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill agent: %v", err)
	}
	p.wait(t)
}

// stop sends SIGTERM and requires a clean exit.
func (p *agentProc) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	p.wait(t)
	require.NoError(t, p.waitErr, "ph-agent run should exit 0 on SIGTERM")
}

func (p *agentProc) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(guard):
		t.Fatalf("agent process did not exit within %v", guard)
	}
}

// checkLog fails the test if the agent reported a data race or panicked.
func (p *agentProc) checkLog(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Errorf("read agent log: %v", err)
		return
	}
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if i := bytes.Index(b, []byte(bad)); i >= 0 {
			t.Errorf("agent log contains %q:\n%s", bad, b[i:min(len(b), i+4<<10)])
		}
	}
}

func (p *agentProc) logTail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b[max(0, len(b)-n):])
}

// cliResult is what one ph-agent command printed and how it exited.
type cliResult struct {
	Stdout, Stderr string
	Code           int
}

// runCLI runs ph-agent with args and --config of cfg.
func runCLI(t *testing.T, cfg agentConfig, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, append(args, "--config", cfg.Path)...)
	cmd.Env = agentEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{Stdout: stdout.String(), Stderr: stderr.String()}
	if exitErr, ok := errors.AsType[*exec.ExitError](err); ok {
		res.Code = exitErr.ExitCode()
	} else {
		require.NoError(t, err, "run ph-agent %v", args)
	}
	return res
}

// mustCLI runs ph-agent and requires it to succeed.
func mustCLI(t *testing.T, cfg agentConfig, args ...string) string {
	t.Helper()
	res := runCLI(t, cfg, args...)
	require.Equal(t, 0, res.Code, "ph-agent %v exited %d; stderr: %s", args, res.Code, res.Stderr)
	return res.Stdout
}

var clientSeq atomic.Int64

// connectV3 connects an MQTT 3.1.1 client (Eclipse Paho) with a clean session and no
// automatic reconnection, so that a lost connection completes every pending publish token
// with an error. It is disconnected at the end of the test.
func connectV3(t *testing.T, addr string) pahov3.Client {
	t.Helper()
	o := pahov3.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(fmt.Sprintf("e2e-%d", clientSeq.Add(1))).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(guard).
		SetWriteTimeout(guard).
		SetKeepAlive(time.Minute)
	c := pahov3.NewClient(o)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(guard), "MQTT connect did not finish")
	require.NoError(t, tok.Error(), "MQTT connect")
	t.Cleanup(func() { disconnect(c) })
	return c
}

// disconnect ends c's connection if it still has one; it may be called more than once.
func disconnect(c pahov3.Client) {
	if c.IsConnectionOpen() {
		c.Disconnect(100)
	}
}

// publishAcked publishes at QoS 1 and requires the PUBACK.
func publishAcked(t *testing.T, c pahov3.Client, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	require.True(t, tok.WaitTimeout(guard), "no PUBACK for %s %s", topic, payload)
	require.NoError(t, tok.Error(), "publish %s %s", topic, payload)
}

// subscription collects the messages of one MQTT subscription.
type subscription struct {
	mu   sync.Mutex
	msgs [][]byte
	more chan struct{} // signalled (without blocking) after each message
}

func subscribe(t *testing.T, c pahov3.Client, filter string) *subscription {
	t.Helper()
	s := &subscription{more: make(chan struct{}, 1)}
	tok := c.Subscribe(filter, 1, func(_ pahov3.Client, m pahov3.Message) {
		s.mu.Lock()
		s.msgs = append(s.msgs, bytes.Clone(m.Payload()))
		s.mu.Unlock()
		select {
		case s.more <- struct{}{}:
		default:
		}
	})
	require.True(t, tok.WaitTimeout(guard), "subscribe did not finish")
	require.NoError(t, tok.Error(), "subscribe %s", filter)
	return s
}

// waitFor returns the first message, in arrival order, that match accepts, waiting up to
// guard for it.
func (s *subscription) waitFor(t *testing.T, what string, match func([]byte) bool) []byte {
	t.Helper()
	deadline := time.After(guard)
	for {
		s.mu.Lock()
		for _, m := range s.msgs {
			if match(m) {
				s.mu.Unlock()
				return m
			}
		}
		n := len(s.msgs)
		s.mu.Unlock()
		select {
		case <-s.more:
		case <-deadline:
			t.Fatalf("no message %s among %d received", what, n)
			return nil
		}
	}
}

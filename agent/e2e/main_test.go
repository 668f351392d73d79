package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"text/template"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/internal/testproc"
)

// station is the id every test agent runs as.
const station = "MH-E2E-001"

// guard bounds every wait. It only turns a hang into a failure: no test asserts anything
// about how fast something happens. It is generous because the agent under test may be a
// race-detector build sharing two cores with the test.
const guard = 30 * time.Second

// bins builds the programs under test once per run, on first use.
var bins testproc.Builder

// TestMain also fails the run if goroutines outlive the tests: the helpers here own some
// too (MQTT clients, process waiters).
func TestMain(m *testing.M) { os.Exit(testproc.Main(&bins, m.Run)) }

// agentBin is ph-agent, with the race detector when the tests have it: its log is then
// checked for reports.
func agentBin(t testing.TB) string {
	t.Helper()
	return bins.Binary(t, "ph-agent", "github.com/purehealth/purehealth/agent", testproc.Race)
}

// simBin is ph-sim: the probe simulators are the devices on the other end of the agent's
// probes.
func simBin(t testing.TB) string {
	t.Helper()
	return bins.Binary(t, "ph-sim", "github.com/purehealth/purehealth/firmware-sim", false)
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
		Listen: testproc.FreeAddr(t, "tcp"), MaxBytes: maxBytes, LogLevel: "info",
	}
	require.NoError(t, os.WriteFile(c.Path, c.render(t), 0o600))
	return c
}

// render fills testdata/agent.yaml.tmpl with c.
func (c agentConfig) render(t *testing.T) []byte {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join("testdata", "agent.yaml.tmpl"))
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, tmpl.Execute(&buf, c))
	return buf.Bytes()
}

// DBPath is the agent's buffer database.
func (c agentConfig) DBPath() string { return filepath.Join(c.DataDir, "agent.db") }

// Topic is purehealth/<station>/<leaf>.
func (c agentConfig) Topic(leaf string) string { return "purehealth/" + c.Station + "/" + leaf }

// startAgent runs `ph-agent run` with cfg and waits until it answers on its admin socket
// and accepts MQTT connections. Its output over all its lives goes to agent.log in its
// directory, shown when the test fails and checked for race reports and panics. The
// process is killed at the end of the test if it still runs.
func startAgent(t *testing.T, cfg agentConfig) *testproc.Daemon {
	t.Helper()
	client := admin.NewClient(cfg.Socket)
	d := testproc.NewDaemon(t, testproc.DaemonOptions{
		Name: "ph-agent", Path: agentBin(t), Args: []string{"run", "--config", cfg.Path},
		Log: filepath.Join(cfg.Dir, "agent.log"), Guard: guard,
		Ready: func(context.Context) error {
			if !ready(client, cfg.Listen) {
				return errors.New("no answer on the admin socket or the MQTT port")
			}
			return nil
		},
	})
	d.Start(t)
	return d
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

// runCLI runs ph-agent with args and --config of cfg.
func runCLI(t *testing.T, cfg agentConfig, args ...string) testproc.Result {
	t.Helper()
	return testproc.Run(t, guard, agentBin(t), append(args, "--config", cfg.Path)...)
}

// mustCLI runs ph-agent and requires it to succeed.
func mustCLI(t *testing.T, cfg agentConfig, args ...string) string {
	t.Helper()
	res := runCLI(t, cfg, args...)
	require.Equal(t, 0, res.Code, "ph-agent %v exited %d; stderr: %s", args, res.Code, res.Stderr)
	return res.Stdout
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

package cross

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/testproc"
	"github.com/purehealth/purehealth/internal/testtool"
)

// Environment of `make cross-smoke`.
const (
	EnvDir     = "PH_CROSS_DIR"     // the directory of make cross's builds
	EnvVersion = "PH_CROSS_VERSION" // the version they were stamped with, if known
)

// guard bounds every wait; it only turns a hang into a failure. Emulated agents are slow.
const guard = 2 * time.Minute

var bins testproc.Builder

func TestMain(m *testing.M) { os.Exit(testproc.Main(&bins, m.Run)) }

// gateway is one build and the emulated core it runs on.
type gateway struct {
	build string   // file in PH_CROSS_DIR
	qemu  []string // emulator and its options
}

var gateways = []gateway{
	{"ph-agent-linux-arm64", []string{"qemu-aarch64-static", "-cpu", "cortex-a53"}}, // Pi 3, Zero 2 (64-bit OS)
	{"ph-agent-linux-armv7", []string{"qemu-arm-static", "-cpu", "cortex-a7"}},      // Pi 2 (32-bit OS)
	{"ph-agent-linux-armv6", []string{"qemu-arm-static", "-cpu", "arm1176"}},        // Pi 1, Zero
}

const configTmpl = `station: {id: %s, name: "qemu smoke", timezone: Asia/Kolkata, class: B}
data_dir: %s
log: {level: info, format: text}
mqtt: {listen: "%s", allow_anonymous: true}
clock: {sync_check: none}
`

// agent runs one emulated build.
type agent struct {
	t      *testing.T
	argv   []string // emulator, its options, the binary
	config string
	socket string
}

func (a *agent) cmd(args ...string) testproc.Result {
	a.t.Helper()
	all := append(append([]string{}, a.argv[1:]...), args...)
	return testproc.Run(a.t, guard, a.argv[0], all...)
}

type reading struct {
	Seq   uint64  `json:"seq"`
	Param string  `json:"param"`
	Value float64 `json:"value"`
}

// readings asks the running agent for what it stored, through its own CLI.
func (a *agent) readings() []reading {
	a.t.Helper()
	res := a.cmd("readings", "--json", "--limit", "10000", "--config", a.config)
	require.Zero(a.t, res.Code, "readings --json: %s", res.Stderr)
	var out struct {
		Readings []reading `json:"readings"`
	}
	require.NoError(a.t, json.Unmarshal([]byte(res.Stdout), &out), res.Stdout)
	return out.Readings
}

// publisher publishes ph readings at QoS 1 with mosquitto_pub, one process per reading,
// until stopped, and records the values whose PUBACK came (mosquitto_pub exits 0 only
// then).
type publisher struct {
	mu    sync.Mutex
	acked []float64
	sent  int
}

func (p *publisher) run(ctx context.Context, pub, addr, topic string) {
	host, port, _ := strings.Cut(addr, ":")
	for i := 0; ctx.Err() == nil; i++ {
		// Distinct values name the publishes; the agent stores what it parses.
		text := strconv.FormatFloat(6+float64(i%1000)/1000, 'f', 3, 64)
		v, _ := strconv.ParseFloat(text, 64)
		cmd := exec.CommandContext(ctx, pub, "-h", host, "-p", port, "-q", "1", "-i", "qemu-smoke",
			"-t", topic, "-m", text)
		err := cmd.Run()
		p.mu.Lock()
		p.sent++
		if err == nil {
			p.acked = append(p.acked, v)
		}
		p.mu.Unlock()
		if err != nil {
			select { // the broker is gone (killed): try again shortly
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

func (p *publisher) ackedValues() []float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]float64{}, p.acked...)
}

func (p *publisher) attempts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

func TestCrossAgentsUnderQemu(t *testing.T) {
	dir := os.Getenv(EnvDir)
	if dir == "" {
		t.Skipf("%s is not set: run `make cross-smoke`", EnvDir)
	}
	pub := testtool.LookPath(t, "mosquitto-clients", "mosquitto_pub")
	host := bins.Binary(t, "ph-agent", "github.com/purehealth/purehealth/agent", false)
	wqiArgs := []string{"wqi", "calc", "--ph", "7.4", "--do", "6.8", "--bod", "2.1", "--fc", "350", "--temp", "27.5", "--json"}
	want := testproc.Run(t, guard, host, wqiArgs...)
	require.Zero(t, want.Code, want.Stderr)

	for _, g := range gateways {
		t.Run(strings.TrimPrefix(g.build, "ph-agent-linux-"), func(t *testing.T) {
			start := time.Now()
			bin := filepath.Join(dir, g.build)
			require.FileExists(t, bin, "make cross builds it")
			tmp, err := os.MkdirTemp("", "phx") // short: the admin socket's path must fit sun_path
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, os.RemoveAll(tmp)) })
			a := &agent{t: t, argv: append(append([]string{testtool.LookPath(t, "qemu-user-static", g.qemu[0])}, g.qemu[1:]...), bin),
				config: filepath.Join(tmp, "agent.yaml"), socket: filepath.Join(tmp, "data", "admin.sock")}

			res := a.cmd("--version")
			require.Zero(t, res.Code, "--version: %s", res.Stderr)
			require.True(t, strings.HasPrefix(res.Stdout, "ph-agent "), "--version printed %q", res.Stdout)
			if v := os.Getenv(EnvVersion); v != "" {
				assert.Equal(t, "ph-agent "+v+"\n", res.Stdout)
			}

			station := "MH-QEMU-" + strings.ToUpper(strings.TrimPrefix(g.build, "ph-agent-linux-"))
			listen := testproc.FreeAddr(t, "tcp")
			require.NoError(t, os.WriteFile(a.config,
				[]byte(fmt.Sprintf(configTmpl, station, filepath.Join(tmp, "data"), listen)), 0o600))
			res = a.cmd("config", "check", a.config)
			require.Zero(t, res.Code, "config check: %s%s", res.Stdout, res.Stderr)
			assert.Contains(t, res.Stdout, "ok")

			daemon := testproc.NewDaemon(t, testproc.DaemonOptions{
				Name: g.build, Path: a.argv[0], Args: append(append([]string{}, a.argv[1:]...), "run", "--config", a.config),
				Log: filepath.Join(tmp, "agent.log"), Guard: guard,
				Ready: func(ctx context.Context) error {
					var d net.Dialer
					for _, addr := range [][2]string{{"unix", a.socket}, {"tcp", listen}} {
						c, err := d.DialContext(ctx, addr[0], addr[1])
						if err != nil {
							return err
						}
						if err := c.Close(); err != nil {
							return err
						}
					}
					return nil
				},
			})
			daemon.Start(t)

			// QoS 1 publishes stream in; the agent is killed in the middle of them.
			p := &publisher{}
			ctx, stop := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			wg.Go(func() { p.run(ctx, pub, listen, "purehealth/"+station+"/ph") })
			deadline := time.Now().Add(guard)
			for len(p.ackedValues()) < 15 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			daemon.Kill(t)
			acked := p.ackedValues()
			require.GreaterOrEqual(t, len(acked), 15, "acknowledged publishes before the kill")

			daemon.Start(t)
			// The publisher finds the broker back; wait for one acknowledgement more.
			for len(p.ackedValues()) <= len(acked) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			stop()
			wg.Wait()
			acked = p.ackedValues()

			stored := map[float64]bool{}
			for _, r := range a.readings() {
				assert.Equal(t, "ph", r.Param)
				stored[r.Value] = true
			}
			for _, v := range acked {
				assert.True(t, stored[v], "acknowledged reading %.3f is not in the buffer after kill -9 and restart", v)
			}
			res = a.cmd("status", "--config", a.config)
			require.Zero(t, res.Code, "status: %s", res.Stderr)
			assert.Contains(t, res.Stdout, station)
			daemon.Stop(t)
			assert.NotContains(t, daemon.LogTail(1<<20), "corrupt", "the killed agent's buffer opened clean")

			got := a.cmd(wqiArgs...)
			require.Zero(t, got.Code, "wqi calc: %s", got.Stderr)
			assert.JSONEq(t, want.Stdout, got.Stdout, "the WQI computed on %s equals this machine's", g.build)
			t.Logf("%s: %d of %d publishes acknowledged, all stored; %v", g.build, len(acked), p.attempts(), time.Since(start).Round(time.Second))
		})
	}
}

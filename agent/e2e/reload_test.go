package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/pahotest"
	"github.com/purehealth/purehealth/internal/testproc"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// rewrite writes cfg's file anew: the template, edited by the replacements (old, new,
// ...), with extra appended.
func rewrite(t *testing.T, cfg agentConfig, extra string, replacements ...string) {
	t.Helper()
	text := strings.NewReplacer(replacements...).Replace(string(cfg.render(t))) + extra
	tmp := cfg.Path + ".new"
	require.NoError(t, os.WriteFile(tmp, []byte(text), 0o600))
	require.NoError(t, os.Rename(tmp, cfg.Path), "replace the file in one step, as an editor or a deployment does")
}

// configStatus is the "config" part of `ph-agent status --json`.
type configStatus struct {
	Class  string `json:"class"`
	Config *struct {
		Reloads       uint64   `json:"reloads"`
		Failed        uint64   `json:"failed"`
		RestartNeeded []string `json:"restart_needed"`
		LastError     string   `json:"last_error"`
	} `json:"config"`
	Broker struct {
		Clients int64 `json:"clients"`
	} `json:"broker"`
}

func status(t *testing.T, cfg agentConfig) configStatus {
	t.Helper()
	var st configStatus
	require.NoError(t, json.Unmarshal([]byte(mustCLI(t, cfg, "status", "--json")), &st))
	return st
}

// waitReloads polls `ph-agent status` until n reloads were applied.
func waitReloads(t *testing.T, cfg agentConfig, n uint64) configStatus {
	t.Helper()
	var st configStatus
	require.Eventually(t, func() bool {
		st = status(t, cfg)
		return st.Config != nil && st.Config.Reloads+st.Config.Failed >= n
	}, guard, 20*time.Millisecond, "reload %d", n)
	require.Zero(t, st.Config.Failed, "a reload was refused: %s", st.Config.LastError)
	return st
}

// SIGHUP reloads the configuration under QoS 1 load without dropping a reading or an MQTT
// session. Four devices stream unique values while the file is changed twice: the class
// goes from B to A (so DO 5.5 mg/L, fine for B, opens a threshold alert), the HTTP probe
// turb-1 is replaced by temp-1, an alert hook is added, and mqtt.max_clients changes,
// which needs a restart and is said to. Afterwards every acknowledged reading is stored,
// the watcher's connection never dropped and its subscription still delivers, the added
// probe reports and the removed one is gone.
func TestSIGHUPReloadUnderLoad(t *testing.T) {
	const (
		publishers = 4
		window     = 8
		maxValue   = 200000
	)
	cfg := newConfig(t, 64<<20)
	simAddr := testproc.FreeAddr(t, "tcp")
	startSim(t, "http", "--listen", simAddr, "--params", "turbidity,temp", "--station", station)
	rewrite(t, cfg, fmt.Sprintf(`probes:
  - {name: turb-1, kind: http, url: "http://%s/turbidity", param: turbidity, interval: 200ms}
`, simAddr))
	agent := startAgent(t, cfg)

	// The watcher keeps one session for the whole test and listens for alerts.
	var lost atomic.Int64
	watcher := pahov3.NewClient(pahov3.NewClientOptions().AddBroker("tcp://" + cfg.Listen).
		SetClientID("reload-watcher").SetCleanSession(false).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(guard).SetWriteTimeout(guard).SetKeepAlive(time.Minute).
		SetConnectionLostHandler(func(pahov3.Client, error) { lost.Add(1) }))
	tok := watcher.Connect()
	require.True(t, tok.WaitTimeout(guard))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { pahotest.Disconnect(watcher) })
	alerts := subscribe(t, watcher, cfg.Topic("alerts"))
	require.Eventually(t, func() bool { return sensorsByName(t, cfg)["turb-1"].Readings > 0 }, guard, 50*time.Millisecond)

	// DO 5.5 mg/L meets class B: no alert.
	pahotest.PublishAcked(t, watcher, cfg.Topic("do"), "5.5", guard)

	clients := make([]pahov3.Client, publishers)
	for i := range clients {
		clients[i] = pahotest.Connect(t, cfg.Listen, "reload", guard)
	}
	ctx, stopPublishing := context.WithCancel(t.Context())
	var next atomic.Int64
	var wg sync.WaitGroup
	got := make([][]int64, publishers)
	for i, c := range clients {
		wg.Go(func() { got[i] = stream(ctx, c, cfg.Topic("conductivity"), window, &next, maxValue) })
	}
	defer stopPublishing()
	time.Sleep(300 * time.Millisecond)

	// First reload: class A, temp-1 instead of turb-1, and a key that needs a restart.
	hookOut := cfg.Dir + "/hook.out"
	rewrite(t, cfg, fmt.Sprintf(`probes:
  - {name: temp-1, kind: http, url: "http://%s/temp", param: temp, interval: 200ms}
`, simAddr), "class: B", "class: A", "allow_anonymous: true", "allow_anonymous: true\n  max_clients: 50")
	agent.Signal(t, syscall.SIGHUP)
	st := waitReloads(t, cfg, 1)
	assert.Equal(t, "A", st.Class)
	assert.Equal(t, []string{"mqtt.max_clients"}, st.Config.RestartNeeded)
	require.Eventually(t, func() bool { return sensorsByName(t, cfg)["temp-1"].Readings > 0 }, guard, 50*time.Millisecond,
		"the added probe reports")
	assert.NotContains(t, sensorsByName(t, cfg), "turb-1", "the removed probe is gone")

	// Second reload, still under load: an alert hook.
	rewrite(t, cfg, fmt.Sprintf(`probes:
  - {name: temp-1, kind: http, url: "http://%s/temp", param: temp, interval: 200ms}
alerts:
  hooks: [{command: ["/bin/sh", "-c", "echo $PH_ALERT_RULE $PH_ALERT_PARAM >> %s"]}]
`, simAddr, hookOut), "class: B", "class: A", "allow_anonymous: true", "allow_anonymous: true\n  max_clients: 50")
	agent.Signal(t, syscall.SIGHUP)
	waitReloads(t, cfg, 2)
	time.Sleep(300 * time.Millisecond)
	stopPublishing()
	wg.Wait()

	// The same DO now breaks class A's 6 mg/L: the alert reaches the watcher's old
	// subscription, and the new hook runs for it.
	pahotest.PublishAcked(t, watcher, cfg.Topic("do"), "5.5", guard)
	msg := alerts.waitFor(t, "a DO threshold alert", func(b []byte) bool {
		return bytes.Contains(b, []byte(`"rule":"threshold"`)) && bytes.Contains(b, []byte(`"param":"do"`))
	})
	assert.Contains(t, string(msg), "cpcb-class-A", "judged by the reloaded class")
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(hookOut)
		return err == nil && strings.Contains(string(b), "threshold do")
	}, guard, 50*time.Millisecond, "the hook added by the reload ran")

	assert.Zero(t, lost.Load(), "the watcher's connection dropped")
	assert.True(t, watcher.IsConnectionOpen())
	for _, c := range clients {
		assert.True(t, c.IsConnectionOpen(), "a publisher's connection dropped")
	}
	assert.Equal(t, int64(publishers+1), status(t, cfg).Broker.Clients, "every session is the one it was")

	var acked []int64
	for _, g := range got {
		acked = append(acked, g...)
	}
	require.NotEmpty(t, acked)
	var stored struct {
		Readings []struct {
			Value float64 `json:"value"`
		} `json:"readings"`
	}
	require.NoError(t, json.Unmarshal([]byte(mustCLI(t, cfg, "readings", "--param", string(telemetry.Conductivity),
		"--limit", "100000", "--json")), &stored))
	require.Less(t, len(stored.Readings), 100000, "the listing holds every stored reading")
	have := map[int64]bool{}
	for _, r := range stored.Readings {
		have[int64(r.Value)] = true
	}
	var missing []int64
	for _, v := range acked {
		if !have[v] {
			missing = append(missing, v)
		}
	}
	slices.Sort(missing)
	assert.Empty(t, missing, "acknowledged readings missing after the reloads")
	t.Logf("%d readings acknowledged across two reloads, all stored", len(acked))

	log := agent.LogTail(64 << 10)
	assert.Contains(t, log, "restart the agent for these keys")
	assert.Contains(t, log, "mqtt.max_clients")
	agent.Stop(t)
}

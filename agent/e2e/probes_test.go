package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/testproc"
)

// startSim runs ph-sim with args and returns once it printed its first line (the device
// path or the first resource URL), which it does when it is serving. It is stopped at the
// end of the test.
func startSim(t *testing.T, args ...string) *testproc.Process {
	t.Helper()
	p := testproc.Start(t, simBin(t), args...)
	t.Logf("ph-sim %s: %s", args[0], p.Line(t, 20*time.Second))
	return p
}

type sensorRow struct {
	Name         string     `json:"name"`
	Kind         string     `json:"kind"`
	Online       bool       `json:"online"`
	Readings     uint64     `json:"readings"`
	Reconnects   uint64     `json:"reconnects"`
	CalibratedAt *time.Time `json:"calibrated_at"`
}

func sensorsByName(t *testing.T, cfg agentConfig) map[string]sensorRow {
	t.Helper()
	var got struct {
		Sensors []sensorRow `json:"sensors"`
	}
	require.NoError(t, json.Unmarshal([]byte(mustCLI(t, cfg, "sensors", "--json")), &got))
	m := map[string]sensorRow{}
	for _, s := range got.Sensors {
		m[s.Name] = s
	}
	return m
}

// TestProbesOfEveryKind runs the agent with a serial (EZO over a pseudo-terminal), a CoAP
// (observed and polled) and an HTTP probe against ph-sim, then commissions them from the
// CLI as a technician would and replugs the serial probe.
func TestProbesOfEveryKind(t *testing.T) {
	cfg := newConfig(t, 64<<20)
	tty := filepath.Join(cfg.Dir, "tty-ph")
	coapAddr, httpAddr := testproc.FreeAddr(t, "udp"), testproc.FreeAddr(t, "tcp")
	serialArgs := []string{"serial", "--param", "ph", "--link", tty, "--speed", "10", "--station", station}
	startSim(t, "coap", "--listen", coapAddr, "--params", "do,temp", "--interval", "500ms", "--station", station)
	startSim(t, "http", "--listen", httpAddr, "--params", "turbidity", "--station", station)
	ph := startSim(t, serialArgs...)

	f, err := os.OpenFile(cfg.Path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fmt.Fprintf(f, `probes:
  - {name: ph-1, kind: serial, device: %s, param: ph, interval: 500ms}
  - {name: do-1, kind: coap, url: "coap://%s/do", param: do, observe: true, interval: 500ms}
  - {name: temp-1, kind: coap, url: "coap://%s/temp", param: temp, interval: 500ms}
  - {name: turb-1, kind: http, url: "http://%s/turbidity", param: turbidity, interval: 500ms}
`, tty, coapAddr, coapAddr, httpAddr)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	startAgent(t, cfg)

	var rows map[string]sensorRow
	require.Eventually(t, func() bool {
		rows = sensorsByName(t, cfg)
		for _, name := range []string{"ph-1", "do-1", "temp-1", "turb-1"} {
			if s := rows[name]; !s.Online || s.Readings < 2 {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond, "every probe online with readings; last: %+v", rows)
	assert.Equal(t, "serial", rows["ph-1"].Kind)
	assert.Equal(t, "coap", rows["do-1"].Kind)
	assert.Equal(t, "http", rows["turb-1"].Kind)

	out := mustCLI(t, cfg, "probe", "test", "ph-1")
	assert.Contains(t, out, "> R\n", "the raw exchange is shown")
	assert.Contains(t, out, "value: ", "and the parsed value")
	out = mustCLI(t, cfg, "probe", "test", "turb-1")
	assert.Contains(t, out, "< 200 OK")

	out = mustCLI(t, cfg, "probe", "calibrate", "ph-1", "mid", "7.00")
	assert.Contains(t, out, "> Cal,mid,7.00")
	assert.Contains(t, out, "?Cal,1")
	res := runCLI(t, cfg, "probe", "calibrate", "do-1", "air")
	assert.NotEqual(t, 0, res.Code, "a CoAP probe cannot be calibrated from the agent")
	assert.Contains(t, res.Stderr, "cannot be calibrated")
	res = runCLI(t, cfg, "probe", "test", "nope")
	assert.NotEqual(t, 0, res.Code)
	assert.Contains(t, res.Stderr, `no probe named "nope"`)

	rows = sensorsByName(t, cfg)
	require.NotNil(t, rows["ph-1"].CalibratedAt, "the calibration is recorded")
	var st struct {
		Probes []struct {
			Name        string          `json:"name"`
			Calibration json.RawMessage `json:"calibration"`
		} `json:"probes"`
	}
	require.NoError(t, json.Unmarshal([]byte(mustCLI(t, cfg, "probe", "status", "--json")), &st))
	require.Len(t, st.Probes, 4)
	var cal struct {
		Point string  `json:"point"`
		Value float64 `json:"value"`
		Reply string  `json:"reply"`
	}
	require.NoError(t, json.Unmarshal(st.Probes[0].Calibration, &cal))
	assert.Equal(t, "mid", cal.Point)
	assert.Equal(t, 7.0, cal.Value)
	assert.Contains(t, cal.Reply, "?Cal,1", "the circuit's answer is kept")

	// Unplug the pH probe and plug it back into the same port.
	before := rows["ph-1"].Readings
	// How the unplugged simulator exits does not matter here.
	if err := ph.Stop(os.Interrupt, 5*time.Second); err != nil {
		t.Logf("ph-sim serial: %v", err)
	}
	startSim(t, serialArgs...)
	require.Eventually(t, func() bool {
		r := sensorsByName(t, cfg)["ph-1"]
		return r.Reconnects >= 1 && r.Readings > before+2
	}, 30*time.Second, 200*time.Millisecond, "the replugged probe is reopened and read again")
	human := mustCLI(t, cfg, "probe", "status")
	assert.True(t, strings.Contains(human, "up pH"), "status shows the identified circuit:\n%s", human)
}

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/bench/internal/benchline"
	"github.com/purehealth/purehealth/bench/internal/harness"
)

func TestProbeOptionsValidate(t *testing.T) {
	ok := probeOptions{serial: 50, coap: 50, perSonde: 5, interval: time.Second, dur: 10 * time.Second}
	tests := []struct {
		name   string
		change func(*probeOptions)
		want   string
	}{
		{"defaults", func(*probeOptions) {}, ""},
		{"serial only", func(p *probeOptions) { p.coap = 0 }, ""},
		{"no probes", func(p *probeOptions) { p.serial, p.coap = 0, 0 }, "add up to 1..1000"},
		{"negative", func(p *probeOptions) { p.serial = -1 }, "must not be negative"},
		{"sonde too big", func(p *probeOptions) { p.perSonde = 9 }, "--probe-per-sonde 9 must be 1..8"},
		{"interval", func(p *probeOptions) { p.interval = 10 * time.Millisecond }, "--probe-interval 10ms must be 100ms..1m"},
		{"short run", func(p *probeOptions) { p.dur = time.Second }, "--probe-time 1s must be at least 2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.change(&p)
			err := errors.Join(p.validate()...)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestProbeDefaults(t *testing.T) {
	for quick, want := range map[bool]time.Duration{true: 10 * time.Second, false: 30 * time.Second} {
		p := probeOptions{}
		p.defaults(quick)
		assert.Equal(t, want, p.dur, "quick %v", quick)
	}
}

func TestProbeNamesAndBudget(t *testing.T) {
	p := probeOptions{serial: 50, coap: 50, interval: time.Second}
	cpu, rss := p.names()
	assert.Equal(t, "agent_probes_cpu_50_serial_50_coap", cpu)
	assert.Equal(t, "agent_probes_rss_50_serial_50_coap", rss)
	assert.InDelta(t, probeCPUBudget, p.cpuBudget(), 1e-9, "the budget is stated for 100 readings/s")
	p = probeOptions{serial: 10, coap: 10, interval: 2 * time.Second}
	assert.InDelta(t, probeCPUBudget/10, p.cpuBudget(), 1e-9, "and scales with the readings per second")
}

func TestStationScenario(t *testing.T) {
	p := probeOptions{serial: 5, coap: 12, perSonde: 5, interval: 1500 * time.Millisecond}
	doc := string(p.stationScenario("MH-PUNE-001", "/w"))
	assert.Contains(t, doc, "station: MH-PUNE-001\nseed: 1\nspeed: 1\n")
	assert.Equal(t, 5, strings.Count(doc, "kind: serial"))
	assert.Contains(t, doc, `  - {name: ezo-000, kind: serial, param: ph, link: "/w/tty-000"}`)
	assert.Contains(t, doc, `  - {name: ezo-004, kind: serial, param: ph, link: "/w/tty-004"}`, "the circuits take turns")
	assert.Equal(t, 3, strings.Count(doc, "kind: coap"), "12 resources in sondes of 5")
	assert.Contains(t, doc, `  - {name: sonde-00, kind: coap, listen: "127.0.0.1:0", params: [do, temp, ph, turbidity, conductivity], interval: 1.5s}`)
	assert.Contains(t, doc, `  - {name: sonde-02, kind: coap, listen: "127.0.0.1:0", params: [do, temp], interval: 1.5s}`)
}

func TestAgentProbes(t *testing.T) {
	p := probeOptions{interval: time.Second}
	got := p.agentProbes([]harness.Endpoint{
		{Probe: "sonde-00", Kind: "coap", Params: []string{"do"}, Where: "coap://127.0.0.1:4000/do"},
		{Probe: "ezo-000", Kind: "serial", Params: []string{"ph"}, Where: "/w/tty-000", Device: "/dev/pts/3"},
	})
	assert.Equal(t, []harness.AgentProbe{
		{Name: "sonde-00-do", Kind: "coap", Param: "do", URL: "coap://127.0.0.1:4000/do", Observe: true, Interval: time.Second},
		{Name: "ezo-000", Kind: "serial", Param: "ph", Device: "/w/tty-000", Interval: time.Second},
	}, got, "serial probes by their link, CoAP resources observed")
}

// TestProbesEndToEnd runs the probe comparison at a tiny size against the built programs:
// two BENCH lines, every check passed.
func TestProbesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real programs for several seconds")
	}
	bin, err := filepath.Abs("../../../bin")
	require.NoError(t, err)
	for _, n := range []string{"ph-agent", "ph-sim"} {
		if _, err := os.Stat(filepath.Join(bin, n)); err != nil {
			t.Skipf("%s not built (make build): %v", n, err)
		}
	}
	if err := exec.Command(filepath.Join(bin, "ph-sim"), "station", "--help").Run(); err != nil {
		t.Skipf("bin/ph-sim has no station command (make build): %v", err)
	}
	var out bytes.Buffer
	b := &bench{out: &out, opts: options{bin: bin, work: t.TempDir(), station: "MH-PUNE-001",
		probes: probeOptions{serial: 2, coap: 3, perSonde: 2, interval: time.Second, dur: 2 * time.Second}}}
	b.probes(t.Context())
	require.Empty(t, b.failures, "output:\n%s", &out)
	require.Len(t, b.lines, 2, "output:\n%s", &out)
	cpu, rss := b.lines[0], b.lines[1]
	assert.Equal(t, "agent_probes_cpu_2_serial_3_coap", cpu.Name)
	assert.Equal(t, "agent_probes_rss_2_serial_3_coap", rss.Name)
	assert.InDelta(t, probeCPUBudget*5/100, cpu.Peer, 1e-9)
	assert.Equal(t, float64(probeRSSBudgetMB), rss.Peer)
	// A few probes for two seconds may use less CPU than one clock tick of /proc; the
	// readings check above is what shows the run did work.
	assert.Positive(t, rss.Ours, "%s measured something", rss.Name)
	for _, l := range b.lines {
		assert.Equal(t, benchline.Goal{Op: benchline.AtMost, Value: 1}, l.Goal)
		require.NoError(t, l.Validate())
	}
	assert.Contains(t, out.String(), "all 5 probes online and reporting")
	assert.Contains(t, out.String(), "checks: ok")
}

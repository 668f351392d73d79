package main

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/bench/internal/benchline"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/internal/testtool"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, o options)
		wantErr string
	}{
		{
			name: "full defaults",
			check: func(t *testing.T, o options) {
				assert.Equal(t, 200, o.sensors)
				assert.Equal(t, 500, o.count)
				assert.Equal(t, 5, o.reps)
				assert.Equal(t, 5*time.Second, o.fsyncDur)
				assert.Equal(t, 30*time.Second, o.rssDur)
				assert.Equal(t, 5*time.Millisecond, o.slowDisk.fsync)
				assert.True(t, o.runs("throughput") && o.runs("rss") && o.runs(onlySlowDisk))
			},
		},
		{
			name: "quick defaults",
			args: []string{"--quick"},
			check: func(t *testing.T, o options) {
				assert.Equal(t, 100, o.count)
				assert.Equal(t, 1, o.reps)
				assert.Equal(t, 2*time.Second, o.fsyncDur)
				assert.Equal(t, 10*time.Second, o.rssDur)
			},
		},
		{
			name: "explicit values win over quick",
			args: []string{"--quick", "--count", "7", "--reps", "2", "--only", " rss "},
			check: func(t *testing.T, o options) {
				assert.Equal(t, 7, o.count)
				assert.Equal(t, 2, o.reps)
				assert.True(t, o.runs("rss"))
				assert.False(t, o.runs("throughput"))
			},
		},
		{name: "unknown comparison", args: []string{"--only", "speed"}, wantErr: `unknown comparison "speed"`},
		{name: "no sensors", args: []string{"--sensors", "0"}, wantErr: "--sensors"},
		{name: "short fsync", args: []string{"--fsync-time", "10ms"}, wantErr: "--fsync-time"},
		{name: "slow disk too fast", args: []string{"--slowdisk-fsync", "1us"}, wantErr: "--slowdisk-fsync"},
		{name: "NaN rate", args: []string{"--rss-rate", "NaN"}, wantErr: "--rss-rate"},
		{name: "stray argument", args: []string{"now"}, wantErr: `unexpected argument "now"`},
		{name: "unknown flag", args: []string{"--fast"}, wantErr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseOptions(tt.args, &stderr)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, errUsage)
				assert.ErrorContains(t, err, tt.wantErr)
				assert.Equal(t, 2, exitCode(err))
				return
			}
			require.NoError(t, err)
			tt.check(t, o)
		})
	}
}

func TestMedianAndSpread(t *testing.T) {
	tests := []struct {
		in     []float64
		median float64
		spread string
	}{
		{nil, math.NaN(), "none"},
		{[]float64{5}, 5, "5"},
		{[]float64{9, 1, 5}, 5, "5 (1–9)"},
		{[]float64{4, 1, 2, 3}, 2.5, "2 (1–4)"},
	}
	for _, tt := range tests {
		if math.IsNaN(tt.median) {
			assert.True(t, math.IsNaN(median(tt.in)))
		} else {
			assert.InDelta(t, tt.median, median(tt.in), 1e-9, "median of %v", tt.in)
		}
		assert.Equal(t, tt.spread, spread(tt.in))
	}
}

func TestChecks(t *testing.T) {
	var c checks
	c.that(true, "acked <= sent (%d, %d)", 1, 2)
	assert.True(t, c.ok())
	assert.Equal(t, []string{"acked <= sent"}, c.passed, "passed checks are listed without their numbers")
	c.that(false, "stored >= acked (%d, %d)", 1, 2)
	assert.False(t, c.ok())
	assert.Equal(t, []string{"stored >= acked (1, 2)"}, c.failed, "failed checks keep their numbers")
}

// TestRunEndToEnd runs every benchmark at a tiny size against the built programs and checks
// the contract: one valid BENCH line per comparison, and exit status 0.
func TestRunEndToEnd(t *testing.T) {
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
	_, mosqErr := os.Stat("/usr/sbin/mosquitto")
	_, pgErr := pgtest.Tool("psql")
	_, cloudErr := os.Stat(filepath.Join(bin, "ph-cloud"))

	var stdout, stderr bytes.Buffer
	err = run(t.Context(), []string{"--bin", bin, "--work", t.TempDir(), "--quick",
		"--sensors", "4", "--inflight", "2", "--count", "20", "--fsync-time", "1s",
		"--rss-sensors", "4", "--rss-rate", "5", "--rss-time", "2s",
		"--ingest-rows", "400", "--ingest-stations", "2", "--ingest-batch", "100",
		"--drain-readings", "300", "--idle-time", "2s",
		"--fanout-clients", "40", "--fanout-rate", "50", "--fanout-time", "2s",
		"--probe-serial", "2", "--probe-coap", "3", "--probe-per-sonde", "2", "--probe-time", "2s",
		"--latency-rate", "200", "--latency-sensors", "4", "--latency-time", "2s", "--latency-floor-samples", "10",
		"--query-spacing", "6h", "--query-reps", "10",
		"--analytics-days", "14"}, &stdout, &stderr)
	require.NoError(t, err, "stderr:\n%s\nstdout:\n%s", &stderr, &stdout)

	out := stdout.String()
	lines := map[string]benchline.Line{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "BENCH ") {
			continue
		}
		l, err := benchline.Parse(sc.Text())
		require.NoError(t, err, "line %q", sc.Text())
		assert.NotContains(t, lines, l.Name, "one line per comparison")
		lines[l.Name] = l
	}
	want := []string{nameVsFsync, nameVsNoFsync, "agent_rss_4_sensors",
		"agent_probes_cpu_2_serial_3_coap", "agent_probes_rss_2_serial_3_coap",
		nameForecastMASE, nameForecastCoverage, nameForecastRound,
		nameDetectPrecision, nameDetectRecall, nameDetectPlume, nameDetectDrift}
	if mosqErr == nil {
		want = append(want, nameVsMosquitto)
	}
	// The slow disk needs FUSE: where mounting is not allowed, the run says it skipped it.
	if testtool.Required() || !strings.Contains(out, "skipped: "+nameSlowDisk) {
		want = append(want, nameSlowDisk)
	}
	if pgErr == nil && cloudErr == nil {
		want = append(want, nameIngest, nameCopyFrom, nameDrain, nameLiveLatency,
			nameFanoutLatency, nameFanoutRSS, nameFanoutCPU, nameSensorToWS, nameQuery)
	}
	assert.ElementsMatch(t, want, keys(lines))
	for _, l := range lines {
		if l.Name == "agent_probes_cpu_2_serial_3_coap" {
			continue // a tiny probe run can stay under one /proc clock tick of CPU
		}
		assert.Positive(t, l.Ours, "%s measured something", l.Name)
	}
	assert.Equal(t, 50.0, lines["agent_rss_4_sensors"].Peer)
	assert.Equal(t, benchline.Goal{Op: benchline.AtLeast, Value: 50}, lines[nameVsFsync].Goal)
	assert.Contains(t, out, "checks: ok", "the sanity checks ran")
	assert.NotContains(t, out, "FAILED")
}

func keys(m map[string]benchline.Line) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/bench/internal/benchline"
	"github.com/purehealth/purehealth/internal/pgtest"
)

func TestLatencyOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    *latencyOptions
		wantErr string
	}{
		{name: "full defaults", want: &latencyOptions{rate: 1000, sensors: 10, length: 20 * time.Second,
			interval: 200 * time.Millisecond, liveReadings: 2000, samples: 200}},
		{name: "quick defaults", args: []string{"--quick"}, want: &latencyOptions{rate: 1000, sensors: 10, length: 8 * time.Second,
			interval: 200 * time.Millisecond, liveReadings: 2000, samples: 100}},
		{name: "explicit values win over quick", args: []string{"--quick", "--latency-rate", "50", "--latency-sensors", "2",
			"--latency-time", "3s", "--latency-interval", "1s", "--latency-live-readings", "200", "--latency-floor-samples", "10"},
			want: &latencyOptions{rate: 50, sensors: 2, length: 3 * time.Second, interval: time.Second, liveReadings: 200, samples: 10}},
		{name: "no rate", args: []string{"--latency-rate", "0"}, wantErr: "--latency-rate"},
		{name: "NaN rate", args: []string{"--latency-rate", "NaN"}, wantErr: "--latency-rate"},
		{name: "no sensors", args: []string{"--latency-sensors", "0"}, wantErr: "--latency-sensors"},
		{name: "short run", args: []string{"--latency-time", "1s"}, wantErr: "--latency-time"},
		{name: "interval below the agent's bound", args: []string{"--latency-interval", "50ms"}, wantErr: "--latency-interval"},
		{name: "no live readings", args: []string{"--latency-live-readings", "0"}, wantErr: "--latency-live-readings"},
		{name: "too few samples", args: []string{"--latency-floor-samples", "5"}, wantErr: "--latency-floor-samples"},
		{name: "more values than a sensor has", args: []string{"--latency-sensors", "1", "--latency-time", "20s"},
			wantErr: "would publish 20000 readings a sensor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseOptions(tt.args, &stderr)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, errUsage)
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, *tt.want, o.latency)
			assert.True(t, o.runs(onlyLatency), "latency runs by default")
		})
	}
	o, err := parseOptions([]string{"--only", "latency"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, []string{onlyLatency}, o.selected())
}

func TestLatencyPlanPayloads(t *testing.T) {
	p := latencyPlan{sensors: 3, count: 10, rate: 1000}
	at := time.Date(2025, 11, 13, 12, 0, 0, 123456789, time.UTC)
	for k := range p.count {
		var got struct {
			Value     float64 `json:"value"`
			Unit      string  `json:"unit"`
			Timestamp string  `json:"timestamp"`
			Sensor    string  `json:"sensor"`
		}
		require.NoError(t, json.Unmarshal(p.payload(k, at), &got), "payload of reading %d: %s", k, p.payload(k, at))
		assert.Equal(t, "pH", got.Unit)
		assert.Equal(t, "2025-11-13T12:00:00.123456789Z", got.Timestamp)
		assert.Equal(t, fmt.Sprintf("lat-%02d", k%3), got.Sensor)
		back, ok := p.reading(got.Sensor, got.Value)
		require.True(t, ok, "reading %d (%s %v) is recognised", k, got.Sensor, got.Value)
		assert.Equal(t, k, back)
	}
	assert.Equal(t, 4, p.perSensor())
	assert.Equal(t, 9*time.Millisecond, p.due(9))
}

func TestLatencyPlanRefusesOthers(t *testing.T) {
	p := latencyPlan{sensors: 3, count: 10, rate: 1000}
	tests := []struct {
		sensor string
		value  float64
	}{
		{"phbench-floor", 7.2},
		{"lat-1", 7},        // not the name the plan gives sensor 1
		{"lat-03", 7},       // no fourth sensor
		{"lat--1", 7},       // negative
		{"lat-01", 7.00005}, // between two values
		{"lat-01", 6.9999},  // below the first
		{"lat-01", 7.0003},  // reading 10: beyond the count
		{"lat-01", 8.0000},  // beyond what any sensor publishes
		{"LAT-01", 7.0},     // names are exact
		{"lat-01x", 7.0},    // trailing garbage
		{"lat-00", 7.0000 - 1e-3},
	}
	for _, tt := range tests {
		_, ok := p.reading(tt.sensor, tt.value)
		assert.False(t, ok, "%s %v is not a reading of the plan", tt.sensor, tt.value)
	}
}

// liveReadingMessage is a reading message as the fan-out sends it.
func liveReadingMessage(id int64, seq uint64, sensor string, value float64) []byte {
	return fmt.Appendf(nil, `{"type":"reading","id":%d,"station":"MH-PUNE-001","time":"2025-11-13T12:00:00Z",`+
		`"data":{"seq":%d,"time":"2025-11-13T12:00:00Z","param":"ph","value":%v,"unit":"pH","quality":"good","source":"sensor","sensor":%q}}`,
		id, seq, value, sensor)
}

func TestLatencyTracker(t *testing.T) {
	p := latencyPlan{sensors: 2, count: 6, rate: 100}
	msg := func(id int64, seq uint64, k int) []byte {
		return liveReadingMessage(id, seq, p.sensorName(k%p.sensors), p.value(k))
	}
	tests := []struct {
		name string
		msgs [][]byte
		want func(t *testing.T, tr *latencyTracker)
	}{
		{"all in order", [][]byte{msg(1, 1, 0), msg(2, 2, 1), msg(3, 3, 2), msg(4, 4, 3), msg(5, 5, 4), msg(6, 6, 5)},
			func(t *testing.T, tr *latencyTracker) {
				assert.Equal(t, 6, tr.distinct)
				assert.Zero(t, tr.missing())
				assert.Zero(t, tr.duplicates+tr.outOfOrder+tr.idBackward+tr.other+tr.bad)
				assert.Equal(t, uint64(5), tr.seq[4])
				assert.Equal(t, int64(5), tr.event[4])
			}},
		{"sensors interleaved differently is still in order", [][]byte{msg(1, 2, 1), msg(2, 1, 0), msg(3, 4, 3), msg(4, 3, 2)},
			func(t *testing.T, tr *latencyTracker) {
				assert.Equal(t, 4, tr.distinct)
				assert.Equal(t, 2, tr.missing())
				assert.Zero(t, tr.outOfOrder)
			}},
		{"a sensor's older reading after its newer one", [][]byte{msg(1, 3, 2), msg(2, 1, 0), msg(3, 5, 4)},
			func(t *testing.T, tr *latencyTracker) {
				assert.Equal(t, 1, tr.outOfOrder)
				assert.Equal(t, 3, tr.distinct)
			}},
		{"duplicates are counted once", [][]byte{msg(1, 1, 0), msg(2, 1, 0), msg(3, 2, 1)},
			func(t *testing.T, tr *latencyTracker) {
				assert.Equal(t, 2, tr.distinct)
				assert.Equal(t, 1, tr.duplicates)
				assert.Equal(t, int32(2), tr.times[0])
			}},
		{"ids must grow", [][]byte{msg(5, 1, 0), msg(4, 2, 1)},
			func(t *testing.T, tr *latencyTracker) { assert.Equal(t, 1, tr.idBackward) }},
		{"other readings, other types and garbage", [][]byte{
			liveReadingMessage(1, 1, "phbench-floor", 7.2),
			[]byte(`{"type":"wqi","id":2,"station":"MH-PUNE-001","data":{}}`),
			[]byte(`{"type":"status","id":3,"data":{"subscribed":["MH-PUNE-001"]}}`),
			[]byte(`not json`),
			[]byte(`{"type":"reading","id":4,"data":{"seq":0}}`),
		}, func(t *testing.T, tr *latencyTracker) {
			assert.Equal(t, 1, tr.other)
			assert.Equal(t, map[string]int{"reading": 1, "wqi": 1, "status": 1}, tr.types)
			assert.Equal(t, 2, tr.bad)
			require.Error(t, tr.firstBad)
			assert.Zero(t, tr.distinct)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newLatencyTracker(p)
			for i, m := range tt.msgs {
				tr.observe(m, time.Duration(i+1)*time.Millisecond)
			}
			tt.want(t, tr)
		})
	}
}

func TestQuantileAndFloor(t *testing.T) {
	ds := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	assert.Equal(t, time.Duration(5), quantile(ds, 0.5))
	assert.Equal(t, time.Duration(10), quantile(ds, 0.99))
	assert.Equal(t, time.Duration(1), quantile(ds, 0.01))
	assert.Zero(t, quantile(nil, 0.5))

	f := latencyFloor{parts: []floorPart{
		{name: "a", value: time.Millisecond},
		{name: "b", value: 2 * time.Millisecond, info: true},
		{name: "c", value: 200 * time.Millisecond},
	}}
	assert.Equal(t, 201*time.Millisecond, f.total(), "parts for information are not counted")
}

func FuzzParseLiveMessage(f *testing.F) {
	f.Add(liveReadingMessage(7, 3, "lat-01", 7.0003))
	f.Add([]byte(`{"type":"status","id":1,"data":{"subscribed":["*"]}}`))
	f.Add([]byte(`{"type":"reading","data":null}`))
	f.Add([]byte(`{"type":"reading","data":{"seq":-1}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, r, err := parseLiveMessage(b)
		if err != nil {
			assert.Nil(t, r)
			return
		}
		assert.NotEmpty(t, m.Type)
		if r != nil {
			assert.Equal(t, "reading", m.Type)
			assert.NotZero(t, r.Seq)
			assert.NotEmpty(t, r.Sensor)
		}
		p := latencyPlan{sensors: 3, count: 100, rate: 10}
		newLatencyTracker(p).observe(b, time.Millisecond) // never panics
	})
}

// TestLatencyEndToEnd runs the comparison at a small size against the built programs.
func TestLatencyEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real programs for several seconds")
	}
	bin, err := filepath.Abs("../../../bin")
	require.NoError(t, err)
	for _, n := range []string{"ph-agent", "ph-cloud"} {
		if _, err := os.Stat(filepath.Join(bin, n)); err != nil {
			t.Skipf("%s not built (make build): %v", n, err)
		}
	}
	if _, err := pgtest.Tool("psql"); err != nil {
		t.Skipf("no PostgreSQL: %v", err)
	}
	var out bytes.Buffer
	b := &bench{out: &out, opts: options{bin: bin, work: t.TempDir(), station: "MH-PUNE-001", fsyncDur: time.Second,
		latency: latencyOptions{rate: 200, sensors: 4, length: 2 * time.Second, interval: 200 * time.Millisecond,
			liveReadings: 2000, samples: 10}}}
	b.latency(t.Context())
	require.Empty(t, b.failures, "output:\n%s", &out)
	require.Len(t, b.lines, 1, "output:\n%s", &out)
	l := b.lines[0]
	require.NoError(t, l.Validate())
	assert.Equal(t, nameSensorToWS, l.Name)
	assert.Equal(t, benchline.Goal{Op: benchline.AtMost, Value: 1}, l.Goal)
	assert.Positive(t, l.Ours)
	assert.Greater(t, l.Peer, 70.0, "the floor counts the uplink linger (50 ms) and the slack (20 ms)")
	assert.Contains(t, out.String(), "the client received 400 of them")
	assert.Contains(t, out.String(), "checks: ok")
}

func TestStalls(t *testing.T) {
	ms := time.Millisecond
	// Readings published every 10 ms; 2..4 and 23 acknowledged late, more than the gap
	// (100 ms) apart.
	pub := publishResult{pub: make([]time.Duration, 25), ack: make([]time.Duration, 25)}
	for k := range pub.pub {
		pub.pub[k] = time.Duration(k) * 10 * ms
		pub.ack[k] = pub.pub[k] + ms
	}
	pub.ack[2], pub.ack[3], pub.ack[4] = 120*ms, 121*ms, 122*ms
	pub.ack[23] = 450 * ms
	pub.ack[24] = 0 // not acknowledged: not a stall
	disk := []flushSample{{at: 10 * ms, took: 90 * ms}, {at: 150 * ms, took: 300 * ms}, {at: 500 * ms, took: 900 * ms}}

	got := stalls(pub, disk, 50*ms)
	require.Len(t, got, 2)
	assert.Equal(t, stall{from: 230 * ms, to: 450 * ms, worst: 220 * ms, readings: 1, worstFlush: 300 * ms}, got[0], "worst first")
	assert.Equal(t, stall{from: 20 * ms, to: 122 * ms, worst: 100 * ms, readings: 3, worstFlush: 90 * ms}, got[1])
	assert.Empty(t, stalls(pub, disk, time.Second))
}

func TestWatchDisk(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Millisecond)
	defer cancel()
	origin := time.Now()
	samples, err := watchDisk(ctx, dir, origin, 20*time.Millisecond)
	require.NoError(t, err)
	require.NotEmpty(t, samples)
	for i, s := range samples {
		assert.Positive(t, s.took, "sample %d", i)
		if i > 0 {
			assert.Greater(t, s.at, samples[i-1].at, "samples in order")
		}
	}
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, left, "the watch removes its file")
}

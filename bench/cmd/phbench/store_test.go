package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStoreOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, o options)
		wantErr string
	}{
		{
			name: "full defaults",
			check: func(t *testing.T, o options) {
				s := o.store
				assert.Equal(t, 400_000, s.ingestRows)
				assert.Equal(t, 4, s.ingestStations)
				assert.Equal(t, 1000, s.ingestBatch)
				assert.Equal(t, 5, s.ingestReps)
				assert.Equal(t, 1_000_000, s.drainReadings)
				assert.Equal(t, time.Second, s.drainSpacing)
				assert.Equal(t, 100*time.Millisecond, s.probeEvery)
				assert.Equal(t, 30*time.Second, s.idleTime)
				assert.True(t, o.runs(onlyIngest) && o.runs(onlyDrain), "every comparison runs by default")
			},
		},
		{
			name: "quick defaults",
			args: []string{"--quick"},
			check: func(t *testing.T, o options) {
				assert.Equal(t, 100_000, o.store.ingestRows)
				assert.Equal(t, 1, o.store.ingestReps)
				assert.Equal(t, 100_000, o.store.drainReadings)
				assert.Equal(t, 10*time.Second, o.store.idleTime)
			},
		},
		{
			name: "only drain, burst timestamps, bigger batches",
			args: []string{"--quick", "--only", "drain", "--drain-spacing", "0", "--drain-batch-max", "2000", "--drain-readings", "5000"},
			check: func(t *testing.T, o options) {
				assert.True(t, o.runs(onlyDrain))
				assert.False(t, o.runs(onlyIngest) || o.runs("throughput") || o.runs("rss"))
				assert.Equal(t, time.Duration(0), o.store.drainSpacing)
				assert.Equal(t, 2000, o.store.drainBatchMax)
				assert.Equal(t, 5000, o.store.drainReadings)
			},
		},
		{
			name: "server settings",
			args: []string{"--pg-setting", "jit=off", "--pg-setting", "work_mem=64MB"},
			check: func(t *testing.T, o options) {
				assert.Equal(t, settings{"jit=off", "work_mem=64MB"}, o.store.pgSettings)
			},
		},
		{name: "setting without a value", args: []string{"--pg-setting", "jit"}, wantErr: "name=value"},
		{name: "fewer rows than stations", args: []string{"--ingest-rows", "3", "--ingest-stations", "4"}, wantErr: "--ingest-rows"},
		{name: "batch beyond the wire limit", args: []string{"--ingest-batch", "50001"}, wantErr: "--ingest-batch"},
		{name: "negative spacing", args: []string{"--drain-spacing", "-1s"}, wantErr: "--drain-spacing"},
		{name: "probe too fast", args: []string{"--probe-every", "1ms"}, wantErr: "--probe-every"},
		{name: "idle too short", args: []string{"--idle-time", "1s"}, wantErr: "--idle-time"},
		{name: "negative batch max", args: []string{"--drain-batch-max", "-1"}, wantErr: "--drain-batch-max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseOptions(tt.args, &stderr)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, errUsage)
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, o)
		})
	}
}

func TestParseCopyTag(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{name: "psql output", in: "COPY 100000\n", want: 100000},
		{name: "with a notice before", in: "NOTICE: something\nCOPY 7\n", want: 7},
		{name: "zero rows", in: "COPY 0", want: 0},
		{name: "nothing", in: "", wantErr: true},
		{name: "two tags", in: "COPY 1\nCOPY 2\n", wantErr: true},
		{name: "not a number", in: "COPY x\n", wantErr: true},
		{name: "tag inside a line", in: "xCOPY 5\n", wantErr: true},
		{name: "too large", in: "COPY 99999999999999999999\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCopyTag([]byte(tt.in))
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func FuzzParseCopyTag(f *testing.F) {
	f.Add("COPY 100000\n")
	f.Add("NOTICE: x\nCOPY 0")
	f.Add("COPY 1\nCOPY 2")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseCopyTag([]byte(s))
		if err != nil {
			return
		}
		assert.GreaterOrEqual(t, n, int64(0))
		assert.Contains(t, s, "COPY ")
	})
}

func TestCPUMeter(t *testing.T) {
	m := &cpuMeter{}
	calls := 0
	m.add("a", func() (time.Duration, error) { calls++; return time.Duration(calls) * time.Second, nil })
	m.add("b", func() (time.Duration, error) { return 0, assert.AnError })
	from := m.snapshot()
	got := m.format(from, m.snapshot(), 2*time.Second, 1000)
	assert.Equal(t, "cpu: a 1.00 s, b ? = 1.00 s in 2.00 s wall (0.50 of the machine's cores); 1000.0 µs cpu per row", got)
}

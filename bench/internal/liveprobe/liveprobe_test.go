package liveprobe

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPercentile(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name      string
		latencies []time.Duration
		q         float64
		want      time.Duration
	}{
		{name: "none", q: 0.5, want: 0},
		{name: "one", latencies: []time.Duration{7 * ms}, q: 0.99, want: 7 * ms},
		{name: "median of four is the second", latencies: []time.Duration{4 * ms, 1 * ms, 3 * ms, 2 * ms}, q: 0.5, want: 2 * ms},
		{name: "p99 of 100 is the 99th", latencies: series(100), q: 0.99, want: 99 * ms},
		{name: "p99 of 10 is the largest", latencies: series(10), q: 0.99, want: 10 * ms},
		{name: "q at 1 is the largest", latencies: series(5), q: 1, want: 5 * ms},
		{name: "tiny q is the smallest", latencies: series(5), q: 0.0001, want: 1 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Result{Latencies: tt.latencies}
			assert.Equal(t, tt.want, r.Percentile(tt.q))
		})
	}
}

func TestMax(t *testing.T) {
	assert.Equal(t, time.Duration(0), Result{}.Max())
	lat := []time.Duration{3, 9, 1}
	assert.Equal(t, time.Duration(9), Result{Latencies: lat}.Max())
	assert.Equal(t, []time.Duration{3, 9, 1}, lat, "Max and Percentile leave the order alone")
}

// series is 1 ms, 2 ms, ..., n ms in reverse order.
func series(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(n-i) * time.Millisecond
	}
	return out
}

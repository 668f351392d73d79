package backoff

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCeilingDoublesToCap(t *testing.T) {
	b := New(100*time.Millisecond, time.Second, Full)
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		assert.Equal(t, w*time.Millisecond, b.Ceiling(i+1), "failure %d", i+1)
	}
	assert.Equal(t, time.Second, b.Ceiling(1000), "no overflow after many failures")
}

func TestJitterBounds(t *testing.T) {
	lowest := func(n int64) int64 { return 0 }
	highest := func(n int64) int64 { return n - 1 }
	tests := []struct {
		name   string
		jitter Jitter
		r      func(int64) int64
		want   []time.Duration // waits after failures 1, 2, 3
	}{
		{"full lowest keeps MinWait", Full, lowest, []time.Duration{MinWait, MinWait, MinWait}},
		{"full highest is the ceiling", Full, highest, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
		{"equal lowest is half the ceiling", Equal, lowest, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}},
		{"equal highest is the ceiling", Equal, highest, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New(time.Second, time.Minute, tt.jitter).WithRand(tt.r)
			for i, w := range tt.want {
				assert.Equal(t, w, b.Next(), "failure %d", i+1)
			}
			assert.Equal(t, 3, b.Failures())
			b.Reset()
			assert.Equal(t, 0, b.Failures())
		})
	}
}

func TestAfterDrawsWithoutCounting(t *testing.T) {
	highest := func(n int64) int64 { return n - 1 }
	b := New(time.Second, time.Minute, Equal).WithRand(highest)
	assert.Equal(t, time.Second, b.After(1))
	assert.Equal(t, 8*time.Second, b.After(4))
	assert.Equal(t, time.Minute, b.After(100), "capped")
	assert.Equal(t, time.Second, b.After(0), "n below 1 counts as the first failure")
	assert.Equal(t, 0, b.Failures(), "After records no failure")
	lowest := New(time.Second, time.Minute, Equal).WithRand(func(int64) int64 { return 0 })
	assert.Equal(t, 4*time.Second, lowest.After(4), "equal jitter: at least half the ceiling")
}

func TestNextAfterHonoursHint(t *testing.T) {
	b := New(time.Second, time.Minute, Full).WithRand(func(int64) int64 { return 0 })
	assert.Equal(t, 30*time.Second, b.NextAfter(30*time.Second), "the server's hint wins over a shorter wait")
	assert.Equal(t, MinWait, b.NextAfter(0), "no hint: the backoff's own wait")
	assert.Equal(t, MaxRetryAfter, b.NextAfter(1000*time.Hour), "a hint is capped")
}

func TestAtCap(t *testing.T) {
	b := New(time.Second, time.Minute, Full).WithRand(func(int64) int64 { return 0 })
	assert.Equal(t, 30*time.Second, b.AtCap())
	assert.Equal(t, 1, b.Failures())
}

func TestNewDefaults(t *testing.T) {
	b := New(0, 0, Full)
	assert.Equal(t, time.Second, b.Ceiling(5), "base 0 means 1s and max below base means base")
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{"99999999999", MaxRetryAfter},
		{"86400", MaxRetryAfter},
		{"99999999999999999999", 0}, // beyond int64: nonsense, not a day's wait
		{"1e3", 0},
		{"Tue, 01 Dec 2026 12:00:30 GMT", 30 * time.Second},
		{"Tue, 01 Dec 2026 11:00:00 GMT", 0},
		{"Thu, 03 Dec 2026 12:00:00 GMT", MaxRetryAfter},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ParseRetryAfter(tt.in, now), "Retry-After %q", tt.in)
	}
}

func TestParseRetryAfterMillis(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"1500", 1500 * time.Millisecond},
		{"", 0},
		{"x", 0},
		{"Tue, 01 Dec 2026 12:00:30 GMT", 0},
		{"99999999999", MaxRetryAfter},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ParseRetryAfterMillis(tt.in), "retry-after %q", tt.in)
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"7", "Tue, 01 Dec 2026 12:00:30 GMT", "", "-1", "1e9"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		for _, d := range []time.Duration{ParseRetryAfter(s, now), ParseRetryAfterMillis(s)} {
			if d < 0 || d > MaxRetryAfter {
				t.Fatalf("%q gave %v, outside [0, %v]", s, d, MaxRetryAfter)
			}
		}
	})
}

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		require.NoError(t, Sleep(t.Context(), 3*time.Second))
		assert.Equal(t, 3*time.Second, time.Since(start))

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start = time.Now()
		assert.ErrorIs(t, Sleep(ctx, time.Hour), context.DeadlineExceeded)
		assert.Equal(t, time.Second, time.Since(start), "a cancelled sleep ends with its context")
	})
}

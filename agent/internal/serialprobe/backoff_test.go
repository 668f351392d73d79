package serialprobe

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The delays are computed, never slept: with the jitter pinned to its extremes, each wait
// lies in the upper half of a ceiling that doubles from min up to max.
func TestBackoff(t *testing.T) {
	lowest := func(int64) int64 { return 0 }
	highest := func(n int64) int64 { return n - 1 }
	tests := []struct {
		name   string
		int63n func(int64) int64
		want   []time.Duration
	}{
		{"lowest jitter", lowest, []time.Duration{
			500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
			15 * time.Second, 15 * time.Second, 15 * time.Second}},
		{"highest jitter", highest, []time.Duration{
			time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
			30 * time.Second, 30 * time.Second, 30 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := backoff{min: time.Second, max: 30 * time.Second, int63n: tt.int63n}
			var got []time.Duration
			for range tt.want {
				got = append(got, b.next())
			}
			assert.Equal(t, tt.want, got)
			b.reset()
			assert.Equal(t, tt.want[0], b.next(), "a connection that worked starts the backoff over")
		})
	}
	t.Run("never zero, never above max, after many failures", func(t *testing.T) {
		b := backoff{min: time.Millisecond, max: 30 * time.Second, int63n: lowest}
		for range 200 {
			d := b.next()
			assert.Positive(t, d)
			assert.LessOrEqual(t, d, 30*time.Second)
		}
	})
}

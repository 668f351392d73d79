package spool

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAutonomyHours(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name   string
		st     Stats
		rate   float64
		want   float64
		wantOK bool
	}{
		{"measured cost", Stats{MaxBytes: 100 * mib, UsedBytes: 10 * mib, BytesPerReading: 100}, 1,
			(0.9*100*mib - 10*mib) / 100 / 3600, true},
		{"fresh buffer: estimated cost", Stats{MaxBytes: 100 * mib}, 2, 0.9 * 100 * mib / 120 / 2 / 3600, true},
		{"past the watermark", Stats{MaxBytes: 100 * mib, UsedBytes: 95 * mib, BytesPerReading: 100}, 1, 0, true},
		{"nothing arriving", Stats{MaxBytes: 100 * mib}, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ok := tt.st.AutonomyHours(tt.rate)
			assert.Equal(t, tt.wantOK, ok)
			assert.InDelta(t, tt.want, h, 1e-9)
		})
	}
}

package pipeline

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRate(t *testing.T) {
	var p Pipeline
	t0 := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	assert.Zero(t, p.Rate(), "no estimate before two samples")
	p.accepted.Add(1000) // readings before the first sample do not count
	p.SampleRate(t0)
	assert.Zero(t, p.Rate())

	// A steady 12 readings a second: each 5 s sample moves the estimate 1/12 of the way.
	want := 0.0
	for i := 1; i <= 24; i++ {
		p.accepted.Add(60)
		p.SampleRate(t0.Add(time.Duration(i) * 5 * time.Second))
		want += (12 - want) * 5.0 / 60
		assert.InDelta(t, want, p.Rate(), 1e-9, "sample %d", i)
	}
	assert.InDelta(t, 12, p.Rate(), 1.5, "two minutes of samples come close to the rate")

	// A gap of more than a minute replaces the estimate; silence brings it to zero.
	p.SampleRate(t0.Add(10 * time.Minute))
	assert.Zero(t, p.Rate())
	p.SampleRate(t0.Add(10 * time.Minute)) // no time passed: no change, no division by zero
	assert.Zero(t, p.Rate())
}

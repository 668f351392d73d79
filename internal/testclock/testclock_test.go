package testclock_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/purehealth/purehealth/internal/testclock"
)

func TestClockMovesOnlyWhenTold(t *testing.T) {
	t0 := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	c := testclock.New(t0)
	assert.Equal(t, t0, c.Now())
	c.Advance(90 * time.Second)
	assert.Equal(t, t0.Add(90*time.Second), c.Now())
	c.Set(t0.Add(-time.Hour))
	assert.Equal(t, t0.Add(-time.Hour), c.Now())

	// Read from other goroutines while it moves (go test -race).
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_ = c.Now()
			}
		})
	}
	for range 100 {
		c.Advance(time.Millisecond)
	}
	wg.Wait()
	assert.Equal(t, t0.Add(-time.Hour+100*time.Millisecond), c.Now())
}

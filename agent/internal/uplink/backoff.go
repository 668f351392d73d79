package uplink

import (
	"math/rand/v2"
	"time"
)

// backoff computes the waits between failed passes: exponential with full jitter (the
// wait is drawn uniformly from [0, ceiling], the ceiling doubling from base up to max), so
// that a fleet of stations coming back after a cloud outage does not retry in step. Its
// zero value is not usable; it is not safe for concurrent use.
type backoff struct {
	base, max time.Duration
	n         int               // failures since the last reset
	rand      func(int64) int64 // uniform in [0, n); rand.Int64N unless a test sets it
}

// minWait keeps a jittered wait from being so close to zero that a failing cloud is
// hammered in a loop.
const minWait = 50 * time.Millisecond

func newBackoff(base, max time.Duration) *backoff {
	return &backoff{base: base, max: max, rand: rand.Int64N}
}

// ceiling is the largest wait after the n-th consecutive failure (n from 1).
func (b *backoff) ceiling(n int) time.Duration {
	c := b.base
	for i := 1; i < n && c < b.max; i++ {
		c *= 2
	}
	return min(c, b.max)
}

// next records a failure and returns the wait before the next attempt.
func (b *backoff) next() time.Duration {
	b.n++
	c := b.ceiling(b.n)
	return max(time.Duration(b.rand(int64(c)+1)), min(minWait, c))
}

// atCap records a failure that no quick retry can fix (the cloud refused the token) and
// returns a wait near the cap: drawn from [max/2, max].
func (b *backoff) atCap() time.Duration {
	b.n++
	half := b.max / 2
	return half + time.Duration(b.rand(int64(b.max-half)+1))
}

// reset forgets the failures after a success.
func (b *backoff) reset() { b.n = 0 }

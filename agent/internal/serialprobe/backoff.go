package serialprobe

import "time"

// backoff spaces out attempts to reopen a port: the ceiling doubles from min to max with
// each failure, and each wait is drawn from the upper half of the ceiling ("equal jitter"),
// so probes that lost power together do not retry in step, and no wait is ever zero.
type backoff struct {
	min, max time.Duration
	failures int
	// int63n returns a number in [0, n); rand.Int64N in production.
	int63n func(n int64) int64
}

// next returns the wait before the next attempt and counts a failure.
func (b *backoff) next() time.Duration {
	ceiling := b.max
	if b.failures < 62 && b.min<<b.failures < b.max && b.min<<b.failures > 0 {
		ceiling = b.min << b.failures
	}
	b.failures++
	half := ceiling / 2
	return ceiling - half + time.Duration(b.int63n(int64(half)+1))
}

// reset starts over after a connection that worked.
func (b *backoff) reset() { b.failures = 0 }

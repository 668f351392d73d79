// Package backoff spaces out retries: exponential waits with jitter, capped, honouring a
// server's Retry-After, and a sleep that ends with its context.
//
// One Backoff belongs to one retry loop (it is not safe for concurrent use). The ceiling
// doubles from Base with each consecutive failure up to Max; the wait is drawn below that
// ceiling according to the Jitter, so that a fleet of stations that failed together (a
// cloud outage, a power cut at a pumping station) does not retry in step. Reset after a
// success.
package backoff

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Jitter says how a wait is drawn below the ceiling.
type Jitter int

const (
	// Full draws from [0, ceiling]: the widest spread, for many clients of one server.
	Full Jitter = iota
	// Equal draws from [ceiling/2, ceiling]: never much shorter than the ceiling, for a
	// single peer that needs time to recover (a replugged probe).
	Equal
)

// MinWait keeps a fully jittered wait from being so close to zero that a failing peer is
// hammered in a loop.
const MinWait = 50 * time.Millisecond

// MaxRetryAfter caps a server's Retry-After so that a broken proxy cannot park a client
// for a year.
const MaxRetryAfter = time.Hour

// Backoff computes the waits between failed attempts. Build it with New.
type Backoff struct {
	base, max time.Duration
	jitter    Jitter
	failures  int
	rand      func(n int64) int64 // uniform in [0, n)
}

// New returns a Backoff whose ceiling doubles from base up to max. base ≤ 0 means 1s;
// max < base means base.
func New(base, max time.Duration, jitter Jitter) *Backoff {
	if base <= 0 {
		base = time.Second
	}
	return &Backoff{base: base, max: maxDur(max, base), jitter: jitter, rand: rand.Int64N}
}

// WithRand replaces the random source (for tests): r(n) must return a number in [0, n).
func (b *Backoff) WithRand(r func(n int64) int64) *Backoff {
	b.rand = r
	return b
}

// Ceiling is the largest wait after the n-th consecutive failure (n from 1).
func (b *Backoff) Ceiling(n int) time.Duration {
	c := b.base
	for i := 1; i < n && c < b.max; i++ {
		c *= 2
	}
	return min(c, b.max)
}

// Next records a failure and returns the wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	b.failures++
	return b.draw(b.Ceiling(b.failures))
}

// After returns the wait after the n-th consecutive failure (n from 1) and records
// nothing: for a retry loop that keeps its failure count elsewhere, such as in a database
// row so that the count survives restarts and is shared by replicas. With the default
// random source it is safe for concurrent use.
func (b *Backoff) After(n int) time.Duration {
	return b.draw(b.Ceiling(max(n, 1)))
}

// NextAfter is Next for a failure that came with a server's hint (Retry-After, 0 if
// none): the wait is at least the hint, capped at MaxRetryAfter.
func (b *Backoff) NextAfter(hint time.Duration) time.Duration {
	return max(b.Next(), min(hint, MaxRetryAfter))
}

// AtCap records a failure that no quick retry can fix (a refused credential) and returns
// a wait near the cap, drawn from [max/2, max].
func (b *Backoff) AtCap() time.Duration {
	b.failures++
	half := b.max / 2
	return half + time.Duration(b.rand(int64(b.max-half)+1))
}

// Failures is the number of failures since the last Reset.
func (b *Backoff) Failures() int { return b.failures }

// Reset forgets the failures after a success.
func (b *Backoff) Reset() { b.failures = 0 }

func (b *Backoff) draw(ceiling time.Duration) time.Duration {
	switch b.jitter {
	case Equal:
		half := ceiling / 2
		return ceiling - half + time.Duration(b.rand(int64(half)+1))
	default:
		return max(time.Duration(b.rand(int64(ceiling)+1)), min(MinWait, ceiling))
	}
}

// Sleep waits for d or until ctx ends, whichever is first, and returns ctx.Err() in the
// second case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ParseRetryAfter reads a Retry-After header as HTTP defines it (RFC 9110 §10.2.3):
// delay-seconds or an HTTP date. Nonsense, a negative delay or a date in the past mean no
// hint (0); a hint is capped at MaxRetryAfter.
func ParseRetryAfter(h string, now time.Time) time.Duration {
	return parseDelay(h, now, time.Second)
}

// ParseRetryAfterMillis reads a Retry-After header that counts milliseconds, as the
// Copernicus Data Space / Sentinel Hub APIs send it, with the same caps as ParseRetryAfter.
func ParseRetryAfterMillis(h string) time.Duration {
	return parseDelay(h, time.Time{}, time.Millisecond)
}

func parseDelay(h string, now time.Time, unit time.Duration) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n >= int64(MaxRetryAfter/unit) {
			return MaxRetryAfter
		}
		return time.Duration(n) * unit
	}
	if unit == time.Second {
		if t, err := http.ParseTime(h); err == nil {
			return min(max(t.Sub(now), 0), MaxRetryAfter)
		}
	}
	return 0
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

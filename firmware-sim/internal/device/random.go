package device

import (
	"hash/fnv"
	"math"
	"time"
)

// The randomness here is counter-based: a value is a hash of (seed, what, when), never the
// next draw of a stateful generator. That is what makes a Model a pure function of time:
// asking for the same instant twice, or instants out of order, or from many goroutines,
// always gives the same answer.

// mix is the SplitMix64 finalizer: a bijection that scrambles its input well enough for
// simulation noise.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// key combines parts into one well-scrambled 64-bit key. Order matters.
func key(parts ...uint64) uint64 {
	h := uint64(0x9e3779b97f4a7c15)
	for _, p := range parts {
		h = mix((h ^ p) + 0x9e3779b97f4a7c15)
	}
	return h
}

// strKey turns a name into a key part.
func strKey(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s)) // never fails
	return h.Sum64()
}

// unit maps a key to a uniform number in [0, 1).
func unit(h uint64) float64 { return float64(mix(h)>>11) / (1 << 53) }

// gauss maps a key to a standard normal number (Box–Muller).
func gauss(h uint64) float64 {
	u1 := unit(h ^ 0x5851f42d4c957f2d)
	u2 := unit(h ^ 0x14057b7ef767814f)
	if u1 < 1e-300 {
		u1 = 1e-300
	}
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// floorDiv divides rounding towards minus infinity, so times before 1970 behave too.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// smooth is a random process with unit variance at its knots, one knot every period,
// interpolated with a cosine so it has no corners: the day-to-day wandering of a river.
func smooth(k uint64, t time.Time, period time.Duration) float64 {
	ns := t.UnixNano()
	n := floorDiv(ns, int64(period))
	frac := float64(ns-n*int64(period)) / float64(period)
	a := gauss(key(k, uint64(n)))
	b := gauss(key(k, uint64(n+1)))
	s := (1 - math.Cos(math.Pi*frac)) / 2
	return a + (b-a)*s
}

// instant turns a time into a key part, to nanosecond precision.
func instant(t time.Time) uint64 { return uint64(t.UnixNano()) }

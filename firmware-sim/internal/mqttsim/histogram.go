package mqttsim

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram counts latencies in microseconds in log-linear buckets: exact below 64 µs, then
// 32 buckets per power of two (at most 1.6 % error). It is safe for concurrent use and
// never allocates, so recording costs the same on the millionth publish as on the first.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64 // µs
}

const (
	histSub     = 32                      // buckets per power of two
	histLinear  = 2 * histSub             // 0–63 µs: one bucket per microsecond
	histBuckets = histLinear + 40*histSub // up to 2^45 µs (about a year)
	histTop     = uint64(1)<<45 - 1       // larger values count as this
)

func bucketOf(us uint64) int {
	if us < histLinear {
		return int(us)
	}
	us = min(us, histTop)
	shift := bits.Len64(us) - 6 // us>>shift is in [32, 63]
	return histLinear + (shift-1)*histSub + int(us>>shift) - histSub
}

// bucketRange returns the first value of bucket i and its width.
func bucketRange(i int) (low, width uint64) {
	if i < histLinear {
		return uint64(i), 1
	}
	j := i - histLinear
	shift := j/histSub + 1
	return uint64(j%histSub+histSub) << shift, 1 << shift
}

func (h *histogram) record(d time.Duration) {
	us := max(d.Microseconds(), 0)
	h.counts[bucketOf(uint64(us))].Add(1)
	h.n.Add(1)
	for {
		old := h.max.Load()
		if us <= old || h.max.CompareAndSwap(old, us) {
			return
		}
	}
}

// quantile returns the q-quantile (0 < q ≤ 1) in milliseconds: the middle of the bucket
// holding the rank ⌈q·n⌉ value, never above the largest value seen (which is exact, and is
// the answer for the top rank). NaN when empty.
func (h *histogram) quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	if rank == n {
		return h.maxMS()
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			low, width := bucketRange(i)
			v := float64(low) + float64(width-1)/2
			return math.Min(v, float64(h.max.Load())) / 1000
		}
	}
	return float64(h.max.Load()) / 1000
}

// maxMS is the largest latency recorded, in milliseconds.
func (h *histogram) maxMS() float64 { return float64(h.max.Load()) / 1000 }

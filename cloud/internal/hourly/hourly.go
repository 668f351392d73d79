// Package hourly turns the irregular readings of one station's parameter into a regular
// series of hourly values, the common ground of the forecaster (package forecast) and the
// anomaly detector (package anomaly).
//
// Stations report at whatever step their probes have (seconds for a sonde, hours for an
// EZO circuit polled slowly, days for a lab sample), with gaps when a link is down and
// duplicates when a batch is sent again. Regularise bins them by the UTC hour, takes the
// median of each hour (one spike inside an hour does not move it), leaves hours without a
// reading as NaN, and then drops hours that are isolated outliers against their
// neighbours (a Hampel filter: Hampel 1974; Pearson 2002, "Outliers in process modeling and
// identification", IEEE Trans. Control Syst. Technol. 10:55–63), because one wrong hour
// would otherwise be learnt by a forecaster as part of the daily cycle.
//
// Transform says on which scale a parameter's variation is additive: counts and
// concentrations that span orders of magnitude (fecal coliform, turbidity, BOD,
// chlorophyll-a) vary by factors, so both packages model and score their logarithm.
//
// Everything here is pure: no I/O, no clock, no goroutines; every function is safe for
// concurrent use and leaves its arguments unchanged.
package hourly

import (
	"math"
	"slices"
	"time"
)

// Point is one reading: when, and its value in the parameter's canonical unit.
type Point struct {
	Time  time.Time
	Value float64
}

// Series is a regular hourly series. Values[i] is the median of the readings in the hour
// that starts at Start + i hours (UTC), NaN where there is none. The zero value is an
// empty series.
type Series struct {
	Start  time.Time
	Values []float64
}

// Len is the number of hours in the series.
func (s Series) Len() int { return len(s.Values) }

// At is the start of hour i.
func (s Series) At(i int) time.Time { return s.Start.Add(time.Duration(i) * time.Hour) }

// Observed counts the hours that have a value.
func (s Series) Observed() int {
	n := 0
	for _, v := range s.Values {
		if !math.IsNaN(v) {
			n++
		}
	}
	return n
}

// Defaults of Options.
const (
	// DefaultMaxHours keeps four weeks: enough for a daily season to be learnt many times
	// over, short enough that last month's river does not speak for today's.
	DefaultMaxHours = 28 * 24
	// DefaultOutlierZ is the Hampel filter's threshold in robust standard deviations: only
	// blatant outliers go, since a real short event is information.
	DefaultOutlierZ = 5
	// outlierHalfWidth is the Hampel window's half width in hours: with 2, an excursion of
	// three hours or more is kept (it holds the window's median), one or two hours go.
	outlierHalfWidth = 2
)

// Options tune Regularise. The zero value means the defaults.
type Options struct {
	// End, when not zero, ends the series: readings at or after End are ignored and the
	// last hour is the one that holds the instant just before End, even when it has no
	// reading (the caller wants to see a silence). Zero means the hour of the newest
	// reading.
	End time.Time
	// MaxHours bounds the series to its newest MaxHours hours (default DefaultMaxHours).
	// Older readings are ignored, so memory is bounded whatever the span of the input.
	MaxHours int
	// OutlierZ is the Hampel threshold (default DefaultOutlierZ); negative turns the
	// filter off.
	OutlierZ float64
}

func (o Options) withDefaults() Options {
	if o.MaxHours <= 0 {
		o.MaxHours = DefaultMaxHours
	}
	if o.OutlierZ == 0 {
		o.OutlierZ = DefaultOutlierZ
	}
	return o
}

// Stats says what Regularise did with the readings it was given.
type Stats struct {
	Readings  int // given
	NonFinite int // NaN or ±Inf: ignored
	Outside   int // before the window of MaxHours, or at or after End: ignored
	Used      int // binned
	Hours     int // length of the series
	Observed  int // hours with a value, after the outlier filter
	Outliers  int // hours dropped as outliers
	// LongestGap is the longest run of hours without a value inside the series.
	LongestGap int
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Regularise bins points by UTC hour (see the package comment). points may be in any
// order and hold duplicates. The series runs from the hour of the oldest reading kept to
// the hour of the newest (or to End); it is empty when no reading is usable.
func Regularise(points []Point, opts Options) (Series, Stats) {
	opts = opts.withDefaults()
	st := Stats{Readings: len(points)}
	var last int64
	have := !opts.End.IsZero()
	if have {
		last = ceilHour(opts.End) - 1
	} else {
		for _, p := range points {
			if b := hourOf(p.Time); finite(p.Value) && (!have || b > last) {
				last, have = b, true
			}
		}
	}
	if !have {
		st.NonFinite = len(points)
		return Series{}, st
	}
	first := last - int64(opts.MaxHours) + 1
	inside := func(p Point) bool {
		b := hourOf(p.Time)
		return b >= first && b <= last && (opts.End.IsZero() || p.Time.Before(opts.End))
	}
	// Count per hour first, so the values are placed without growing anything.
	counts := make([]int, opts.MaxHours)
	lo := last
	for _, p := range points {
		if !finite(p.Value) {
			st.NonFinite++
			continue
		}
		if !inside(p) {
			st.Outside++
			continue
		}
		b := hourOf(p.Time)
		counts[b-first]++
		st.Used++
		lo = min(lo, b)
	}
	if st.Used == 0 {
		return Series{}, st
	}
	offsets := make([]int, len(counts)+1)
	for i, c := range counts {
		offsets[i+1] = offsets[i] + c
	}
	vals := make([]float64, st.Used)
	fill := slices.Clone(offsets[:len(counts)])
	for _, p := range points {
		if finite(p.Value) && inside(p) {
			b := hourOf(p.Time)
			vals[fill[b-first]] = p.Value
			fill[b-first]++
		}
	}
	s := Series{Start: time.Unix(lo*3600, 0).UTC(), Values: make([]float64, last-lo+1)}
	for i := range s.Values {
		j := int(lo-first) + i
		s.Values[i] = Median(vals[offsets[j]:offsets[j+1]]) // NaN for an empty hour
	}
	if opts.OutlierZ > 0 {
		st.Outliers = hampel(s.Values, outlierHalfWidth, opts.OutlierZ)
	}
	st.Hours = len(s.Values)
	st.Observed = s.Observed()
	st.LongestGap = longestGap(s.Values)
	return s, st
}

// hourOf is the number of the UTC hour that holds t (hours since 1970, rounding down).
func hourOf(t time.Time) int64 {
	sec := t.Unix()
	h := sec / 3600
	if sec%3600 != 0 && sec < 0 {
		h--
	}
	return h
}

// ceilHour is the number of the first hour that starts at or after t.
func ceilHour(t time.Time) int64 {
	h := hourOf(t)
	if time.Unix(h*3600, 0).Before(t) {
		h++
	}
	return h
}

// hampel replaces with NaN every value that lies more than z robust standard deviations
// from the median of the observed values within ±half hours (itself included), and
// returns how many it replaced. The robust standard deviation is 1.4826·MAD of the window,
// but never less than the series' own noise level (noiseScale), so a window of nearly
// equal values does not make a small change an outlier. Windows with fewer than four
// values judge nothing.
func hampel(vs []float64, half int, z float64) int {
	floor := NoiseScale(vs)
	out := slices.Clone(vs)
	win := make([]float64, 0, 2*half+1)
	n := 0
	for i, v := range vs {
		if math.IsNaN(v) {
			continue
		}
		win = win[:0]
		for j := max(0, i-half); j <= min(len(vs)-1, i+half); j++ {
			if !math.IsNaN(vs[j]) {
				win = append(win, vs[j])
			}
		}
		if len(win) < 4 {
			continue
		}
		med, mad := MedianMAD(win)
		scale := max(1.4826*mad, floor)
		if scale > 0 && math.Abs(v-med) > z*scale {
			out[i] = math.NaN()
			n++
		}
	}
	copy(vs, out)
	return n
}

// NoiseScale estimates the step-to-step noise of a series robustly: 1.4826·MAD of the
// differences between consecutive values (NaN ones skipped), divided by √2 (the
// difference of two independent errors has √2 times their spread); 0 with fewer than
// three differences. A trend or cycle adds its slope to it, which only makes a test that
// divides by it more cautious.
func NoiseScale(vs []float64) float64 {
	var d []float64
	for i := 1; i < len(vs); i++ {
		if !math.IsNaN(vs[i]) && !math.IsNaN(vs[i-1]) {
			d = append(d, vs[i]-vs[i-1])
		}
	}
	if len(d) < 3 {
		return 0
	}
	_, mad := MedianMAD(d)
	return 1.4826 * mad / math.Sqrt2
}

func longestGap(vs []float64) int {
	longest, run := 0, 0
	for _, v := range vs {
		if math.IsNaN(v) {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}

// Median returns the median of xs, sorting xs in place; NaN when xs is empty.
func Median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// MedianMAD returns the median of xs and the median absolute deviation from it, without
// changing xs; NaN for both when xs is empty.
func MedianMAD(xs []float64) (median, mad float64) {
	buf := slices.Clone(xs)
	median = Median(buf)
	for i, x := range xs {
		buf[i] = math.Abs(x - median)
	}
	return median, Median(buf)
}

// Quantiles returns the qs-quantiles (each 0 ≤ q ≤ 1) of xs, interpolating linearly
// between order statistics (Hyndman & Fan 1996, "Sample quantiles in statistical
// packages", type 7, the default of R and NumPy); NaN for each when xs is empty. It
// reorders xs: selection instead of a full sort, since a few quantiles of thousands of
// forecast errors are wanted for every series on every round.
func Quantiles(xs []float64, qs ...float64) []float64 {
	out := make([]float64, len(qs))
	n := len(xs)
	done := 0 // xs[:done] holds the done smallest values, in some order
	for i, q := range qs {
		if n == 0 {
			out[i] = math.NaN()
			continue
		}
		h := min(max(q, 0), 1) * float64(n-1)
		lo := int(math.Floor(h))
		var v float64
		if lo < done {
			v = nth(xs[:done], lo)
		} else {
			// Ascending qs (the usual call) search only what is left above the last one.
			v = nth(xs[done:], lo-done)
			done = lo + 1
		}
		if frac := h - float64(lo); frac > 0 && lo+1 < n {
			// Every value after position lo is at least v: the next order statistic is
			// their minimum.
			next := slices.Min(xs[lo+1:])
			v += frac * (next - v)
		}
		out[i] = v
	}
	return out
}

// nth reorders xs so that xs[k] is the value a sort would put there, everything before it
// no greater and everything after it no smaller, and returns xs[k]. Hoare's selection with
// a median-of-three pivot and a three-way partition, so runs of equal values (a constant
// series' errors are all zero) cost no more than distinct ones.
func nth(xs []float64, k int) float64 {
	lo, hi := 0, len(xs)-1
	for hi > lo {
		a, b, c := xs[lo], xs[lo+(hi-lo)/2], xs[hi]
		pivot := max(min(a, b), min(max(a, b), c))
		// xs[lo:lt] < pivot, xs[lt:i] == pivot, xs[gt+1:hi+1] > pivot.
		lt, i, gt := lo, lo, hi
		for i <= gt {
			switch v := xs[i]; {
			case v < pivot:
				xs[lt], xs[i] = xs[i], xs[lt]
				lt++
				i++
			case v > pivot:
				xs[gt], xs[i] = xs[i], xs[gt]
				gt--
			default:
				i++
			}
		}
		switch {
		case k < lt:
			hi = lt - 1
		case k > gt:
			lo = gt + 1
		default:
			return xs[k]
		}
	}
	return xs[k]
}

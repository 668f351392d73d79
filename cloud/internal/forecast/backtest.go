package forecast

import (
	"cmp"
	"math"
	"slices"

	"github.com/purehealth/purehealth/cloud/internal/hourly"
)

// Candidate is one method's rolling-origin backtest.
type Candidate struct {
	Model string
	// MASE is the method's mean absolute error over the backtest divided by seasonal
	// naive's over the same (origin, horizon) pairs (science §6): below 1 beats it.
	MASE float64
	// Coverage80 and Coverage95 are the shares of actual values inside the method's 80 %
	// and 95 % intervals.
	Coverage80, Coverage95 float64
	// Points is how many (origin, horizon) pairs were scored.
	Points int
	// Params are the fitted parameters, in words.
	Params string
	// Err says why the method could not be backtested; the other fields are then zero.
	Err error
}

// The backtest's and the intervals' sample sizes.
const (
	// minCalibration is how many errors a horizon's interval needs. A horizon with fewer
	// borrows those of its neighbours (±1 h, ±2 h, …): errors two horizons apart are
	// nearly the same draws anyway, since each origin's errors are strongly correlated.
	minCalibration = 100
	// maxOrigins bounds the origins whose errors calibrate the intervals (see calibrate).
	maxOrigins = 240
	// minBacktestPoints is the least a forecast's skill may rest on.
	minBacktestPoints = 24
)

// intervals are, per horizon, where the 2.5 %, 10 %, 90 % and 97.5 % quantiles of the
// forecast errors lie relative to the point forecast, on the transformed scale.
//
// Prediction intervals here are empirical: quantiles of the model's own multi-step errors
// over the history it was fitted to (Williams & Goodman 1971, "A simple method for the
// construction of empirical confidence limits for economic forecasts", JASA 66:752–754;
// FPP §5.5 "bootstrapped residuals" is the same idea). Not ETS's variance formulas (FPP
// §8.7), because those assume the model is right and its errors Gaussian, and river data
// breaks both: pollution events give heavy, one-sided tails (DO drops, coliform jumps),
// and the formulas exist for ETS but not in the same form for every method we compare.
// Empirical quantiles are asymmetric where the errors are, are the same procedure for every
// method, and survive the log transform (quantiles map through any increasing function).
// Their known weakness — errors in the sample the model was fitted to are a little smaller
// than on new data — is measured, not assumed away: the backtest scores intervals
// calibrated on the training part only, against hours the model never saw.
type intervals struct {
	lo95, lo80, hi80, hi95 []float64
}

// calibrate collects p's errors at every horizon 1…h over y (origins from p's warm-up
// on) and returns their quantiles. ok is false when y holds too few errors even pooling
// every horizon.
func calibrate(p predictor, y []float64, h int) (intervals, bool) {
	// Errors from neighbouring origins are nearly the same draw (they share all but an
	// hour of their targets), so beyond maxOrigins origins every stride-th one is kept:
	// the quantiles barely move, and this is half the cost of a forecast.
	stride := max(1, (len(y)-p.warmup())/maxOrigins)
	errs := make([][]float64, h)
	for k := range errs {
		errs[k] = make([]float64, 0, len(y)/stride+1)
	}
	p.run(y, p.warmup(), h, func(t int, fc []float64) {
		if (t-p.warmup())%stride != 0 {
			return
		}
		for k, f := range fc {
			i := t + k + 1
			if i >= len(y) {
				break
			}
			if !math.IsNaN(y[i]) && !math.IsNaN(f) {
				errs[k] = append(errs[k], y[i]-f)
			}
		}
	})
	iv := intervals{lo95: make([]float64, h), lo80: make([]float64, h), hi80: make([]float64, h), hi95: make([]float64, h)}
	var pool []float64
	for k := range h {
		pool = append(pool[:0], errs[k]...)
		for w := 1; len(pool) < minCalibration && (k-w >= 0 || k+w < h); w++ {
			if k-w >= 0 {
				pool = append(pool, errs[k-w]...)
			}
			if k+w < h {
				pool = append(pool, errs[k+w]...)
			}
		}
		if len(pool) < minCalibration/4 {
			return intervals{}, false
		}
		q := hourly.Quantiles(pool, 0.025, 0.10, 0.90, 0.975)
		iv.lo95[k], iv.lo80[k], iv.hi80[k], iv.hi95[k] = q[0], q[1], q[2], q[3]
	}
	return iv, true
}

// band is the interval around point forecast f at horizon index k, on the transformed
// scale. The point lies inside the 80 % interval and that inside the 95 % one even when
// the errors were biased, so a chart never draws a forecast outside its own band.
func (iv intervals) band(k int, f float64) (lo95, lo80, hi80, hi95 float64) {
	lo80 = min(f+iv.lo80[k], f)
	hi80 = max(f+iv.hi80[k], f)
	lo95 = min(f+iv.lo95[k], lo80)
	hi95 = max(f+iv.hi95[k], hi80)
	return lo95, lo80, hi80, hi95
}

// backtest scores each method by rolling-origin evaluation (Tashman 2000, "Out-of-sample
// tests of forecasting accuracy: an analysis and review", Int. J. Forecasting 16:437–450;
// FPP §5.10): each is fitted to y[:s], s = len(y) − eval, once; its states then roll
// forward hour by hour through the evaluation period with those parameters, and from every
// origin t ≥ s−1 its forecasts of the next h hours are compared with what came. No
// forecast sees a value after its origin; parameters and intervals see only the training
// part. Refitting at every origin would cost a fit per hour for a difference that, with
// weeks of training data, is small.
//
// MASE divides by seasonal naive's absolute errors at the same (origin, horizon) pairs. For
// h ≤ 24 that forecast of y[i] is y[i−24] from any origin, so the denominator is Hyndman &
// Koehler's (2006) seasonal MASE scale taken over the evaluated hours instead of the
// training sample; seasonal naive itself scores exactly 1. Errors are measured in the
// parameter's own unit (after undoing tr).
//
// Caveat: the method finally chosen is the one with the lowest MASE here, so its reported
// MASE is a little optimistic (a minimum over four noisy estimates); with thousands of
// scored pairs the difference is small, and the benchmark measures skill on data no choice
// has seen.
func backtest(methods []method, y []float64, eval, h int, tr hourly.Transform) []Candidate {
	n := len(y)
	s := n - eval
	// Seasonal naive's forecasts from every evaluated origin, the denominator of MASE.
	sn := make([][]float64, 0, eval)
	seasonalNaive{}.run(y, s-1, h, func(_ int, fc []float64) { sn = append(sn, slices.Clone(fc)) })

	out := make([]Candidate, 0, len(methods))
	for _, m := range methods {
		c := Candidate{Model: m.name()}
		p, err := m.fit(y[:s])
		if err != nil {
			c.Err = err
			out = append(out, c)
			continue
		}
		c.Params = p.describe()
		iv, ok := calibrate(p, y[:s], h)
		if !ok {
			c.Err = errTooFewErrors
			out = append(out, c)
			continue
		}
		var absM, absSN float64
		var in80, in95 int
		p.run(y, s-1, h, func(t int, fc []float64) {
			snfc := sn[t-(s-1)]
			for k, f := range fc {
				i := t + k + 1
				if i >= n {
					break
				}
				if math.IsNaN(y[i]) || math.IsNaN(f) || math.IsNaN(snfc[k]) {
					continue
				}
				actual := tr.Invert(y[i])
				absM += math.Abs(actual - tr.Invert(f))
				absSN += math.Abs(actual - tr.Invert(snfc[k]))
				lo95, lo80, hi80, hi95 := iv.band(k, f)
				if y[i] >= lo80 && y[i] <= hi80 {
					in80++
				}
				if y[i] >= lo95 && y[i] <= hi95 {
					in95++
				}
				c.Points++
			}
		})
		if c.Points == 0 {
			c.Err = errNoBacktest
			out = append(out, c)
			continue
		}
		switch {
		case absSN > 0:
			c.MASE = absM / absSN
		case absM == 0:
			c.MASE = 1 // a constant series: every method is as good as seasonal naive
		default:
			c.MASE = math.Inf(1)
		}
		c.Coverage80 = float64(in80) / float64(c.Points)
		c.Coverage95 = float64(in95) / float64(c.Points)
		out = append(out, c)
	}
	return out
}

// rank orders the candidates scored on enough points by MASE, ties to the earlier
// (simpler) method.
func rank(cs []Candidate) []Candidate {
	var out []Candidate
	for _, c := range cs {
		if c.Err == nil && c.Points >= minBacktestPoints && !math.IsInf(c.MASE, 0) && !math.IsNaN(c.MASE) {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b Candidate) int { return cmp.Compare(a.MASE, b.MASE) })
	return out
}

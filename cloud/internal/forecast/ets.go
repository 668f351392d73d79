package forecast

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/optimize"
)

// ets is additive Holt-Winters in its state-space form with additive errors, as in
// Hyndman & Athanasopoulos, Forecasting: Principles and Practice (3rd ed.), ch. 8 (§8.3,
// §8.5 table of ETS models), with a season of m = 24 hours:
//
//	ŷ[t]  = ℓ[t−1] + φ·b[t−1] + s[t−m]          one-step forecast
//	ε[t]  = y[t] − ŷ[t]
//	ℓ[t]  = ℓ[t−1] + φ·b[t−1] + α·ε[t]           level
//	b[t]  = φ·b[t−1] + β·ε[t]                    damped trend (ETS(A,Ad,A) only)
//	s[t]  = s[t−m] + γ·ε[t]                      season
//	ŷ[T+h|T] = ℓ[T] + (φ + φ² + … + φʰ)·b[T] + s[T+h−m(k+1)],  k = ⌊(h−1)/m⌋
//
// ETS(A,N,A) is the same without b. A missing y[t] has ε[t] = 0: the states move on by
// their own forecast and the hour adds nothing to the likelihood, which is how the
// state-space form treats missing observations (Hyndman, Koehler, Ord & Snyder 2008,
// Forecasting with Exponential Smoothing, §12.1).
//
// Fitting: the smoothing parameters maximise the Gaussian likelihood, which with additive
// errors and the variance concentrated out is minimising n·ln(Σε²) over the n observed
// hours (FPP §8.6). The parameters are kept in FPP's usual region 0 < α < 1, 0 < β < α
// (narrowed to α/5, see betaShare), 0 < γ < 1 − α, 0.8 ≤ φ ≤ 0.98 by a logistic map from
// unconstrained numbers, which gonum's Nelder–Mead searches. The initial states are not searched (that would add 26
// dimensions for little gain over a few weeks of data): they come from a classical
// decomposition of the first days, the heuristic of Hyndman et al. (2008, §2.6.1).
type ets struct{ damped bool }

func (e ets) name() string {
	if e.damped {
		return ModelETSAAdA
	}
	return ModelETSANA
}

// etsFit is a fitted ETS model: its parameters and its states before the first hour.
type etsFit struct {
	damped                  bool
	alpha, beta, gamma, phi float64
	level0, trend0          float64
	season0                 [period]float64
}

// Bounds of the search (FPP §8.6) and how hard to search.
const (
	paramEps = 1e-4 // keeps α, β, γ off the edges, where the filter stops learning
	// betaShare narrows FPP's 0 < β < α to 0 < β < α/5. With β near α the trend moves
	// as fast as the level, and on hourly river data it then learns the last hours of a
	// pollution event as a trend and extrapolates it: on the log scale of coliform counts
	// a jump became a hundredfold rise within a day. A trend that changes a fifth as fast
	// as the level still follows a river that is really rising.
	betaShare  = 0.2
	phiMin     = 0.8
	phiMax     = 0.98
	simplex    = 0.6 // initial simplex size on the logistic scale
	maxEvals   = 120 // per dimension; Nelder–Mead converges in far fewer on these surfaces
	convergeBy = 1e-6
)

// errTooSparse is returned when a series cannot seed the initial states.
var errTooSparse = errors.New("too few observed hours to fit exponential smoothing")

func logistic(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
func logit(p float64) float64    { return math.Log(p / (1 - p)) }

// params maps the unconstrained search vector to a model with init's states.
func (e ets) params(x []float64, init etsFit) etsFit {
	p := init
	p.alpha = paramEps + (1-2*paramEps)*logistic(x[0])
	p.gamma = (1 - p.alpha) * (paramEps + (1-2*paramEps)*logistic(x[1]))
	if e.damped {
		p.beta = p.alpha * betaShare * (paramEps + (1-2*paramEps)*logistic(x[2]))
		p.phi = phiMin + (phiMax-phiMin)*logistic(x[3])
	}
	return p
}

// start is where the search begins: a fairly adaptive level (water quality wanders from
// day to day), a slowly changing season and a weak, well damped trend.
func (e ets) start() []float64 {
	x := []float64{logit(0.5), logit(0.1)}
	if e.damped {
		x = append(x, logit(0.05), logit((0.9-phiMin)/(phiMax-phiMin)))
	}
	return x
}

func (e ets) fit(y []float64) (predictor, error) {
	init, nobs, ok := initialStates(y, e.damped)
	if !ok {
		return nil, errTooSparse
	}
	x0 := e.start()
	objective := func(x []float64) float64 {
		p := e.params(x, init)
		sse := p.filter(y, len(y), 0, nil)
		if math.IsNaN(sse) || math.IsInf(sse, 0) {
			return math.MaxFloat64
		}
		// n·ln(SSE/n): the concentrated −2 log-likelihood up to a constant. The floor keeps
		// a perfectly fitted (constant) series finite.
		return float64(nobs) * math.Log(max(sse, 1e-300)/float64(nobs))
	}
	res, err := optimize.Minimize(optimize.Problem{Func: objective}, x0, &optimize.Settings{
		FuncEvaluations: maxEvals * len(x0),
		Converger:       &optimize.FunctionConverge{Absolute: convergeBy, Relative: convergeBy, Iterations: 10 * len(x0)},
	}, &optimize.NelderMead{SimplexSize: simplex})
	if res == nil {
		return nil, fmt.Errorf("fit %s: %w", e.name(), err)
	}
	// An evaluation limit reached is still the best point found; any other failure with a
	// usable point is too (Nelder–Mead has no gradient that could go wrong).
	p := e.params(res.X, init)
	return &p, nil
}

// initialStates seeds ℓ, b and s from the first (up to four) days: each usable day's mean
// (a day needs half its hours observed) and the average deviation of each hour from its
// day's mean; the trend is the change of the daily means per hour. It also returns the
// number of observed hours in y.
func initialStates(y []float64, damped bool) (etsFit, int, bool) {
	nobs := 0
	for _, v := range y {
		if !math.IsNaN(v) {
			nobs++
		}
	}
	var p etsFit
	p.damped = damped
	p.phi = 1
	if nobs < 2*period {
		return p, nobs, false
	}
	days := min(len(y)/period, 4)
	var (
		sum       [period]float64
		cnt       [period]int
		firstMean = math.NaN()
		firstDay  int
		lastMean  float64
		lastDay   = -1
	)
	for d := range days {
		day := y[d*period : (d+1)*period]
		var s float64
		n := 0
		for _, v := range day {
			if !math.IsNaN(v) {
				s += v
				n++
			}
		}
		if n < period/2 {
			continue
		}
		mean := s / float64(n)
		for j, v := range day {
			if !math.IsNaN(v) {
				sum[j] += v - mean
				cnt[j]++
			}
		}
		if math.IsNaN(firstMean) {
			firstMean, firstDay = mean, d
		}
		lastMean, lastDay = mean, d
	}
	if math.IsNaN(firstMean) {
		// No day is half observed at the start: start flat at the first value and let the
		// filter learn the season.
		for _, v := range y {
			if !math.IsNaN(v) {
				p.level0 = v
				break
			}
		}
		return p, nobs, true
	}
	var mean float64
	for j := range p.season0 {
		if cnt[j] > 0 {
			p.season0[j] = sum[j] / float64(cnt[j])
		}
		mean += p.season0[j]
	}
	for j := range p.season0 {
		p.season0[j] -= mean / period // the season sums to zero
	}
	p.level0 = firstMean
	if damped && lastDay > firstDay {
		p.trend0 = (lastMean - firstMean) / float64(period*(lastDay-firstDay))
	}
	return p, nobs, true
}

// filter runs the model over y and returns the sum of squared one-step errors over the
// observed hours. With visit set it also forecasts h hours from every origin ≥ from.
func (p *etsFit) filter(y []float64, from, h int, visit func(int, []float64)) float64 {
	level, trend := p.level0, p.trend0
	season := p.season0
	if !p.damped {
		trend = 0
	}
	var fc []float64
	if visit != nil {
		fc = make([]float64, h)
	}
	var sse float64
	for t, v := range y {
		slot := t % period
		damp := p.phi * trend
		e := 0.0
		if !math.IsNaN(v) {
			e = v - (level + damp + season[slot])
			sse += e * e
		}
		level += damp + p.alpha*e
		if p.damped {
			trend = damp + p.beta*e
		}
		season[slot] += p.gamma * e
		if visit == nil || t < from {
			continue
		}
		phiSum, phiK := 0.0, 1.0
		for k := range fc {
			phiK *= p.phi
			phiSum += phiK
			fc[k] = level + phiSum*trend + season[(t+k+1)%period]
		}
		visit(t, fc)
	}
	return sse
}

func (p *etsFit) run(y []float64, from, h int, visit func(int, []float64)) {
	p.filter(y, from, h, visit)
}

func (p *etsFit) warmup() int { return period - 1 }

func (p *etsFit) describe() string {
	if p.damped {
		return fmt.Sprintf("α=%.3f β=%.4f γ=%.3f φ=%.3f", p.alpha, p.beta, p.gamma, p.phi)
	}
	return fmt.Sprintf("α=%.3f γ=%.3f", p.alpha, p.gamma)
}

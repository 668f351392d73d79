package forecast

import "math"

// period is the daily season in hourly steps.
const period = 24

// method is a way to forecast: seasonal naive, drift, or exponential smoothing. fit
// estimates its parameters from y (hourly values on the transformed scale, NaN where
// missing) and returns a predictor with those parameters fixed.
type method interface {
	name() string
	fit(y []float64) (predictor, error)
}

// predictor is a method with its parameters fixed. run filters y from its start and,
// after taking in y[t] for every origin t ≥ from, calls visit with the point forecasts of
// y[t+1] … y[t+h] (NaN where the method has none, e.g. a seasonal naive forecast for an
// hour of the day never observed). fc is reused between calls.
type predictor interface {
	run(y []float64, from, h int, visit func(origin int, fc []float64))
	// warmup is the first origin whose forecasts the calibration of intervals may use:
	// before it the states have not seen a whole day.
	warmup() int
	// describe states the fitted parameters, for people.
	describe() string
}

// Model names (the contract's "model" field).
const (
	ModelSeasonalNaive = "seasonal_naive"
	ModelDrift         = "drift"
	ModelETSANA        = "ets_ana"  // Holt-Winters without trend: ETS(A,N,A)
	ModelETSAAdA       = "ets_aada" // damped-trend Holt-Winters: ETS(A,Ad,A)
)

// seasonalNaive forecasts each hour by the same hour of the latest day observed
// (Hyndman & Athanasopoulos, Forecasting: Principles and Practice, 3rd ed., §5.2):
// ŷ[T+h] = y[T+h−24k] for the smallest k ≥ 1 with that value observed up to T.
type seasonalNaive struct{}

func (seasonalNaive) name() string                     { return ModelSeasonalNaive }
func (seasonalNaive) fit([]float64) (predictor, error) { return seasonalNaive{}, nil }
func (seasonalNaive) warmup() int                      { return period - 1 }
func (seasonalNaive) describe() string                 { return "the same hour of the day before" }
func (seasonalNaive) run(y []float64, from, h int, visit func(int, []float64)) {
	var last [period]float64
	for i := range last {
		last[i] = math.NaN()
	}
	fc := make([]float64, h)
	for t, v := range y {
		if !math.IsNaN(v) {
			last[t%period] = v
		}
		if t < from {
			continue
		}
		for k := range fc {
			fc[k] = last[(t+k+1)%period]
		}
		visit(t, fc)
	}
}

// drift extends the line from the first to the latest observation (FPP §5.2):
// ŷ[T+h] = y[T] + h·(y[T] − y[1])/(T − 1), with T the latest observed hour.
type drift struct{}

func (drift) name() string                     { return ModelDrift }
func (drift) fit([]float64) (predictor, error) { return drift{}, nil }
func (drift) warmup() int                      { return period - 1 }
func (drift) describe() string                 { return "the straight line through the first and the latest value" }
func (drift) run(y []float64, from, h int, visit func(int, []float64)) {
	first, last := -1, -1
	fc := make([]float64, h)
	for t, v := range y {
		if !math.IsNaN(v) {
			if first < 0 {
				first = t
			}
			last = t
		}
		if t < from {
			continue
		}
		slope := 0.0
		if last > first {
			slope = (y[last] - y[first]) / float64(last-first)
		}
		for k := range fc {
			if last < 0 {
				fc[k] = math.NaN()
				continue
			}
			fc[k] = y[last] + float64(t+k+1-last)*slope
		}
		visit(t, fc)
	}
}

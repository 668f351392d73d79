package forecast

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/hourly"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Forecast is the contract object of design §5a: the body of
// GET /v1/stations/{id}/forecast and the data of a WebSocket "prediction" message.
type Forecast struct {
	Station  string    `json:"station"`
	Param    string    `json:"param"`
	IssuedAt time.Time `json:"issued_at"`
	Model    string    `json:"model"`
	Skill    Skill     `json:"skill"`
	Points   []Point   `json:"points"`
}

// Skill is how the chosen model did in its rolling-origin backtest.
type Skill struct {
	MASE           float64 `json:"mase"`
	Coverage80     float64 `json:"coverage80"`
	Coverage95     float64 `json:"coverage95"`
	BacktestPoints int     `json:"backtest_points"`
}

// Point is the forecast of one hour: Time is the start of the hour (UTC) and Value the
// forecast of that hour's median reading, with its 80 % and 95 % prediction intervals.
type Point struct {
	Time  time.Time `json:"time"`
	Value float64   `json:"value"`
	Lo80  float64   `json:"lo80"`
	Hi80  float64   `json:"hi80"`
	Lo95  float64   `json:"lo95"`
	Hi95  float64   `json:"hi95"`
}

// Reading is one value of the series to forecast. Only good readings are used; an empty
// Quality counts as good, for series that have no grade of their own (the WQI, which is
// computed from good readings only).
type Reading struct {
	Time    time.Time
	Value   float64
	Quality telemetry.Quality
}

// Input is one series to forecast.
type Input struct {
	Station string
	// Param is a canonical parameter or "wqi".
	Param    string
	Readings []Reading
	// IssuedAt is when the forecast is made. The series ends at the start of its hour
	// (later readings are ignored) and the first forecast point is that hour. Required.
	IssuedAt time.Time
}

// Defaults of Options.
const (
	DefaultHorizon = 24 // hours
	// DefaultMaxStale: with no good reading for longer, the river may have changed in ways
	// no model of the past can say.
	DefaultMaxStale = 6 * time.Hour
	// DefaultMaxGap: a longer silence splits the history; only the part after it is used
	// (a probe replaced, a station moved, a season turned).
	DefaultMaxGap = 72 * time.Hour
	maxHorizon    = 7 * 24
)

// History needed (hours spanned by the series used).
const (
	// minHistory: one day to look back on, one to calibrate the intervals, one to backtest.
	minHistory  = 3 * period
	minObserved = 2 * period
	// etsHistory: exponential smoothing needs days to learn the season before a backtest
	// of a day or more can judge it.
	etsHistory = 7 * period
	// The evaluation period is a quarter of the history, from one day to one week.
	minEval = period
	maxEval = 7 * period
)

// Options tune Make. The zero value means the defaults.
type Options struct {
	Horizon  int           // hours ahead (default 24, at most 168)
	MaxHours int           // newest hours of history used (default hourly.DefaultMaxHours)
	MaxStale time.Duration // default DefaultMaxStale
	MaxGap   time.Duration // default DefaultMaxGap
}

func (o Options) withDefaults() Options {
	if o.Horizon <= 0 {
		o.Horizon = DefaultHorizon
	}
	o.Horizon = min(o.Horizon, maxHorizon)
	if o.MaxHours <= 0 {
		o.MaxHours = hourly.DefaultMaxHours
	}
	if o.MaxStale <= 0 {
		o.MaxStale = DefaultMaxStale
	}
	if o.MaxGap <= 0 {
		o.MaxGap = DefaultMaxGap
	}
	return o
}

// Why no forecast was made; match with errors.Is. The error's text says more.
var (
	ErrNoData       = errors.New("no good readings")
	ErrTooShort     = errors.New("too little history")
	ErrStale        = errors.New("no recent good reading")
	ErrInvalid      = errors.New("invalid forecast input")
	errTooFewErrors = errors.New("too few forecast errors to calibrate its intervals")
	errNoBacktest   = errors.New("no backtest point: the evaluation hours have no values")
)

// Result is a forecast and how it came about.
type Result struct {
	Forecast Forecast
	// Why says in one sentence why this model was chosen.
	Why string
	// Candidates are every method's backtest, in the order they were tried.
	Candidates []Candidate
	// Series says what became of the readings; NotGood counts those left out for their
	// quality.
	Series  hourly.Stats
	NotGood int
	// From is the start of the history used (later than the first reading after a long
	// gap).
	From time.Time
}

// Make forecasts one series (see the package comment). An error wrapping ErrNoData,
// ErrTooShort or ErrStale says why there is no forecast, in words fit for an operator;
// ErrInvalid is a caller's mistake. Make is a pure function of its arguments.
func Make(in Input, opts Options) (Result, error) {
	opts = opts.withDefaults()
	if in.Param == "" || in.IssuedAt.IsZero() {
		return Result{}, fmt.Errorf("%w: param and issued_at are required", ErrInvalid)
	}
	var res Result
	pts := make([]hourly.Point, 0, len(in.Readings))
	for _, r := range in.Readings {
		if r.Quality != telemetry.Good && r.Quality != "" {
			res.NotGood++
			continue
		}
		pts = append(pts, hourly.Point{Time: r.Time, Value: r.Value})
	}
	end := in.IssuedAt.Truncate(time.Hour)
	series, st := hourly.Regularise(pts, hourly.Options{End: end, MaxHours: opts.MaxHours})
	res.Series = st
	if st.Observed == 0 {
		if res.NotGood > 0 {
			return res, fmt.Errorf("%w: none of %d readings in the last %d days is graded good",
				ErrNoData, len(in.Readings), opts.MaxHours/24)
		}
		return res, fmt.Errorf("%w in the last %d days", ErrNoData, opts.MaxHours/24)
	}
	tr := hourly.TransformFor(in.Param)
	y := tr.ApplyAll(series.Values)
	start := series.Start

	// After a long silence only the part since counts.
	maxGap := int(opts.MaxGap / time.Hour)
	if cut := afterLastGap(y, maxGap); cut > 0 {
		y = y[cut:]
		start = start.Add(time.Duration(cut) * time.Hour)
	}
	res.From = start
	if stale := trailingGap(y); stale > int(opts.MaxStale/time.Hour) {
		return res, fmt.Errorf("%w: the latest is from %s, %d h before the forecast hour",
			ErrStale, start.Add(time.Duration(len(y)-stale-1)*time.Hour).Format("2006-01-02 15:04 MST"), stale)
	}
	observed := 0
	for _, v := range y {
		if !math.IsNaN(v) {
			observed++
		}
	}
	if len(y) < minHistory || observed < minObserved {
		return res, fmt.Errorf("%w: %d hourly values over %s; a forecast needs %d over at least %d days",
			ErrTooShort, observed, days(len(y)), minObserved, minHistory/24)
	}

	methods := []method{seasonalNaive{}, drift{}}
	if len(y) >= etsHistory {
		methods = append(methods, ets{}, ets{damped: true})
	}
	eval := min(max(len(y)/4, minEval), maxEval)
	res.Candidates = backtest(methods, y, eval, opts.Horizon, tr)
	ranked := rank(res.Candidates)
	if len(ranked) == 0 {
		return res, fmt.Errorf("%w: no method could be backtested on %s (%s)", ErrTooShort, days(len(y)),
			candidateErrors(res.Candidates))
	}
	lo, hi := bounds(in.Param)
	clamp := func(x float64) float64 { return round(min(max(tr.Invert(x), lo), hi)) }
	var passed []string // better candidates not believed, and why
	for _, chosen := range ranked {
		var m method
		for _, c := range methods {
			if c.name() == chosen.Model {
				m = c
			}
		}
		p, err := m.fit(y)
		if err != nil {
			passed = append(passed, fmt.Sprintf("%s could not be refitted (%v)", chosen.Model, err))
			continue
		}
		iv, ok := calibrate(p, y, opts.Horizon)
		if !ok {
			passed = append(passed, fmt.Sprintf("%s: %v", chosen.Model, errTooFewErrors))
			continue
		}
		var path []float64
		p.run(y, len(y)-1, opts.Horizon, func(_ int, fc []float64) { path = slices.Clone(fc) })
		if why := implausible(y, path); why != "" {
			passed = append(passed, chosen.Model+" "+why)
			continue
		}
		f := Forecast{
			Station: in.Station, Param: in.Param, IssuedAt: in.IssuedAt.UTC(), Model: chosen.Model,
			Skill: Skill{MASE: round(chosen.MASE), Coverage80: round(chosen.Coverage80),
				Coverage95: round(chosen.Coverage95), BacktestPoints: chosen.Points},
			Points: make([]Point, 0, opts.Horizon),
		}
		for k, v := range path {
			lo95, lo80, hi80, hi95 := iv.band(k, v)
			f.Points = append(f.Points, Point{Time: end.Add(time.Duration(k) * time.Hour).UTC(),
				Value: clamp(v), Lo80: clamp(lo80), Hi80: clamp(hi80), Lo95: clamp(lo95), Hi95: clamp(hi95)})
		}
		res.Forecast = f
		res.Why = why(chosen, res.Candidates, len(y), eval, passed)
		return res, nil
	}
	return res, fmt.Errorf("%w: no method gives a believable forecast: %s", ErrTooShort, strings.Join(passed, "; "))
}

// plausibleWeek is how much recent history bounds a believable forecast.
const plausibleWeek = 7 * period

// implausible says why a forecast path (transformed scale) is not believed, or "". A
// forecast must have a value for every hour (seasonal naive has none for an hour of the
// day never observed since the last long gap), and must stay within the range the series
// spanned over its last week, widened on either side by the width of the band it mostly
// kept to (its 5th to 95th percentile). A method that fitted the backtest well can still
// extrapolate what it learnt from the last hours of a pollution event into values the
// river has not shown, and a forecast that far from everything the last week has seen is
// the model's artefact, not the river's.
func implausible(y, path []float64) string {
	recent := make([]float64, 0, plausibleWeek)
	for _, v := range y[max(0, len(y)-plausibleWeek):] {
		if !math.IsNaN(v) {
			recent = append(recent, v)
		}
	}
	q := hourly.Quantiles(recent, 0.05, 0.95, 0, 1)
	width := q[1] - q[0]
	for _, v := range path {
		switch {
		case math.IsNaN(v):
			return "has no forecast for some hours (never observed at that time of day)"
		case v < q[2]-width || v > q[3]+width:
			return "goes far beyond anything the last week showed (not believed)"
		}
	}
	return ""
}

// afterLastGap returns the index after the last run of more than maxGap missing hours,
// or 0 when there is none.
func afterLastGap(y []float64, maxGap int) int {
	run, cut := 0, 0
	for i, v := range y {
		if math.IsNaN(v) {
			run++
			continue
		}
		if run > maxGap {
			cut = i
		}
		run = 0
	}
	return cut
}

// trailingGap counts the missing hours at the end of y.
func trailingGap(y []float64) int {
	n := 0
	for i := len(y) - 1; i >= 0 && math.IsNaN(y[i]); i-- {
		n++
	}
	return n
}

// bounds are what a forecast of param may say: its physical range (a 95 % interval below
// zero for DO would be nonsense), [0, 100] for the WQI.
func bounds(param string) (lo, hi float64) {
	if info, ok := telemetry.Info(telemetry.Param(param)); ok {
		return info.Physical.Min, info.Physical.Max
	}
	if param == "wqi" {
		return 0, 100
	}
	return math.Inf(-1), math.Inf(1)
}

// round keeps four decimals: more than any probe resolves, and stable in golden files.
func round(x float64) float64 { return math.Round(x*1e4) / 1e4 }

func days(hours int) string { return fmt.Sprintf("%.1f days", float64(hours)/24) }

func candidateErrors(cs []Candidate) string {
	var parts []string
	for _, c := range cs {
		switch {
		case c.Err != nil:
			parts = append(parts, c.Model+": "+c.Err.Error())
		case c.Points < minBacktestPoints:
			parts = append(parts, fmt.Sprintf("%s: %d backtest points, %d needed", c.Model, c.Points, minBacktestPoints))
		}
	}
	return strings.Join(parts, "; ")
}

// why explains the choice in one sentence.
func why(chosen Candidate, cs []Candidate, hours, eval int, passed []string) string {
	var others []string
	for _, c := range cs {
		switch {
		case c.Model == chosen.Model:
		case c.Err != nil:
			others = append(others, c.Model+" not scored ("+c.Err.Error()+")")
		default:
			others = append(others, fmt.Sprintf("%s %.2f", c.Model, c.MASE))
		}
	}
	s := fmt.Sprintf("%s has the lowest MASE (%.2f) in a backtest over the last %s of %s of history",
		chosen.Model, chosen.MASE, days(eval), days(hours))
	if len(passed) > 0 {
		s = fmt.Sprintf("%s has the lowest MASE (%.2f) of the believable forecasts in a backtest over the last %s of %s of history",
			chosen.Model, chosen.MASE, days(eval), days(hours))
	}
	if len(others) > 0 {
		s += "; " + strings.Join(others, ", ")
	}
	if len(passed) > 0 {
		s += "; passed over: " + strings.Join(passed, ", ")
	}
	if hours < etsHistory {
		s += fmt.Sprintf("; exponential smoothing needs %d days of history", etsHistory/24)
	}
	return s + "."
}

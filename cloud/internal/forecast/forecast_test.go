package forecast

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// synth samples f every step (jittered by up to jitter) from start for the given span,
// adding Gaussian noise of sd; keep decides which instants have a reading.
type synth struct {
	span, step, jitter time.Duration
	f                  func(hours float64) float64
	sd                 float64
	keep               func(t time.Time) bool
	seed               uint64
}

func (s synth) readings() []Reading {
	r := rand.New(rand.NewPCG(s.seed, 99))
	var out []Reading
	for t := start; t.Before(start.Add(s.span)); t = t.Add(s.step) {
		at := t
		if s.jitter > 0 {
			at = t.Add(time.Duration(r.Int64N(int64(s.jitter))))
		}
		if s.keep != nil && !s.keep(at) {
			continue
		}
		h := at.Sub(start).Hours()
		out = append(out, Reading{Time: at, Value: s.f(h) + s.sd*r.NormFloat64(), Quality: telemetry.Good})
	}
	return out
}

func daily(mean, amp float64) func(float64) float64 {
	return func(h float64) float64 { return mean + amp*math.Sin(2*math.Pi*h/24) }
}

func make1(t *testing.T, param string, rs []Reading, issued time.Time) Result {
	t.Helper()
	res, err := Make(Input{Station: "MH-TEST-001", Param: param, Readings: rs, IssuedAt: issued}, Options{})
	require.NoError(t, err)
	return res
}

func checkShape(t *testing.T, f Forecast, issued time.Time) {
	t.Helper()
	require.Len(t, f.Points, DefaultHorizon)
	first := issued.Truncate(time.Hour)
	for k, p := range f.Points {
		assert.Equal(t, first.Add(time.Duration(k)*time.Hour), p.Time, "point %d is hourly from the issue hour", k)
		assert.True(t, p.Lo95 <= p.Lo80 && p.Lo80 <= p.Value && p.Value <= p.Hi80 && p.Hi80 <= p.Hi95,
			"point %d: bands nest around the forecast: %+v", k, p)
	}
}

func TestSinusoidBeatsSeasonalNaive(t *testing.T) {
	// A daily cycle plus noise, read every 5 minutes for four weeks: exponential smoothing
	// learns the cycle, so it must beat "the same hour yesterday", which carries yesterday's
	// noise as well as today's.
	rs := synth{span: 28 * 24 * time.Hour, step: 5 * time.Minute, f: daily(6, 1.2), sd: 0.3, seed: 1}.readings()
	issued := start.Add(28*24*time.Hour + 10*time.Minute)
	res := make1(t, "do", rs, issued)
	f := res.Forecast
	checkShape(t, f, issued)
	assert.Contains(t, []string{ModelETSANA, ModelETSAAdA}, f.Model, res.Why)
	assert.Less(t, f.Skill.MASE, 0.85, "beats seasonal naive clearly: %s", res.Why)
	assert.InDelta(t, 0.80, f.Skill.Coverage80, 0.1, "80 %% interval coverage")
	assert.InDelta(t, 0.95, f.Skill.Coverage95, 0.05, "95 %% interval coverage")
	assert.Greater(t, f.Skill.BacktestPoints, 1000)
	// The forecast follows the cycle: hour k of the next day is near 6 + 1.2·sin.
	for _, p := range f.Points {
		h := p.Time.Sub(start).Hours() + 0.5 // a point is its hour's median, mid-hour
		assert.InDelta(t, daily(6, 1.2)(h), p.Value, 0.15, "at %s", p.Time)
		assert.Less(t, p.Hi80-p.Lo80, 0.6, "a tight band for a clean cycle")
	}
	assert.Equal(t, "MH-TEST-001", f.Station)
	assert.Equal(t, "do", f.Param)
	assert.Equal(t, issued, f.IssuedAt)
	require.Len(t, res.Candidates, 4)
	for _, c := range res.Candidates {
		require.NoError(t, c.Err, c.Model)
		assert.Equal(t, f.Skill.BacktestPoints, c.Points, "every method is scored on the same pairs")
	}
	assert.InDelta(t, 1, res.Candidates[0].MASE, 1e-12, "seasonal naive against itself")
	assert.Greater(t, res.Candidates[1].MASE, 1.0, "drift ignores the cycle")
}

func TestIrregularSeries(t *testing.T) {
	// Readings at random intervals of 1 to 40 minutes.
	r := rand.New(rand.NewPCG(5, 5))
	var rs []Reading
	for at := start; at.Before(start.Add(21 * 24 * time.Hour)); at = at.Add(time.Minute + time.Duration(r.Int64N(int64(39*time.Minute)))) {
		h := at.Sub(start).Hours()
		rs = append(rs, Reading{Time: at, Value: 7.4 + 0.2*math.Sin(2*math.Pi*h/24) + 0.03*r.NormFloat64(), Quality: telemetry.Good})
	}
	r.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] }) // any order
	issued := start.Add(21 * 24 * time.Hour)
	res := make1(t, "ph", rs, issued)
	checkShape(t, res.Forecast, issued)
	assert.Less(t, res.Forecast.Skill.MASE, 0.9, res.Why)
}

func TestGappySeries(t *testing.T) {
	// Three weeks with a fifth of the hours missing at random and a 30-hour outage.
	r := rand.New(rand.NewPCG(7, 7))
	missing := map[int]bool{}
	for h := range 21 * 24 {
		random := h > 0 && (h < 298 || h > 332) && r.Float64() < 0.2
		if random || (h >= 300 && h < 330) {
			missing[h] = true
		}
	}
	rs := synth{span: 21 * 24 * time.Hour, step: 10 * time.Minute, f: daily(26, 1), sd: 0.1, seed: 2,
		keep: func(at time.Time) bool { return !missing[int(at.Sub(start).Hours())] }}.readings()
	issued := start.Add(21 * 24 * time.Hour)
	res := make1(t, "temp", rs, issued)
	checkShape(t, res.Forecast, issued)
	assert.Equal(t, 30, res.Series.LongestGap)
	assert.Less(t, res.Forecast.Skill.MASE, 0.95, res.Why)
	assert.Equal(t, start, res.From, "a 30-hour gap does not split the history")
}

func TestLongGapSplitsHistory(t *testing.T) {
	// Ten days, four days of silence, then eight days at another level (a new probe).
	rs := synth{span: 22 * 24 * time.Hour, step: 15 * time.Minute, sd: 0.05, seed: 3,
		f: func(h float64) float64 {
			if h >= 14*24 {
				return 9 + math.Sin(2*math.Pi*h/24)
			}
			return 5 + math.Sin(2*math.Pi*h/24)
		},
		keep: func(at time.Time) bool { h := at.Sub(start).Hours(); return h < 10*24 || h >= 14*24 },
	}.readings()
	issued := start.Add(22 * 24 * time.Hour)
	res := make1(t, "do", rs, issued)
	assert.Equal(t, start.Add(14*24*time.Hour), res.From, "only the history after the silence counts")
	checkShape(t, res.Forecast, issued)
	for _, p := range res.Forecast.Points {
		assert.InDelta(t, 9, p.Value, 1.3, "the new level")
	}
}

func TestShortHistory(t *testing.T) {
	tests := []struct {
		name    string
		days    float64
		err     error
		msg     string
		methods []string
	}{
		{name: "a day and a half: no forecast", days: 1.5, err: ErrTooShort,
			msg: "too little history: 36 hourly values over 1.5 days; a forecast needs 48 over at least 3 days"},
		{name: "four days: the baselines only", days: 4, methods: []string{ModelSeasonalNaive, ModelDrift}},
		{name: "seven days: exponential smoothing too", days: 7,
			methods: []string{ModelSeasonalNaive, ModelDrift, ModelETSANA, ModelETSAAdA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			span := time.Duration(tt.days * 24 * float64(time.Hour))
			rs := synth{span: span, step: 20 * time.Minute, f: daily(7.5, 0.3), sd: 0.05, seed: 4}.readings()
			res, err := Make(Input{Param: "ph", Readings: rs, IssuedAt: start.Add(span)}, Options{})
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				assert.EqualError(t, err, tt.msg)
				assert.Empty(t, res.Forecast.Points)
				return
			}
			require.NoError(t, err)
			checkShape(t, res.Forecast, start.Add(span))
			var got []string
			for _, c := range res.Candidates {
				got = append(got, c.Model)
			}
			assert.Equal(t, tt.methods, got)
			if len(tt.methods) == 2 {
				assert.Contains(t, res.Why, "exponential smoothing needs 7 days of history")
			}
			assert.GreaterOrEqual(t, res.Forecast.Skill.BacktestPoints, minBacktestPoints)
		})
	}
}

func TestNoForecast(t *testing.T) {
	good := synth{span: 10 * 24 * time.Hour, step: 30 * time.Minute, f: daily(5, 1), sd: 0.1, seed: 5}.readings()
	suspect := slices.Clone(good)
	for i := range suspect {
		suspect[i].Quality = telemetry.Suspect
	}
	tests := []struct {
		name   string
		in     Input
		err    error
		errMsg string
	}{
		{"no readings", Input{Param: "do", IssuedAt: start}, ErrNoData, "no good readings in the last 28 days"},
		{"only suspect readings", Input{Param: "do", Readings: suspect, IssuedAt: start.Add(10 * 24 * time.Hour)}, ErrNoData,
			"no good readings: none of 480 readings in the last 28 days is graded good"},
		{"stale", Input{Param: "do", Readings: good, IssuedAt: start.Add(10*24*time.Hour + 9*time.Hour)}, ErrStale,
			"no recent good reading: the latest is from 2026-01-10 23:00 UTC, 9 h before the forecast hour"},
		{"no issue time", Input{Param: "do", Readings: good}, ErrInvalid, "invalid forecast input: param and issued_at are required"},
		{"no param", Input{Readings: good, IssuedAt: start}, ErrInvalid, "invalid forecast input: param and issued_at are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Make(tt.in, Options{})
			require.ErrorIs(t, err, tt.err)
			assert.EqualError(t, err, tt.errMsg)
		})
	}
}

func TestOnlyGoodReadingsFeedTheForecast(t *testing.T) {
	rs := synth{span: 10 * 24 * time.Hour, step: 15 * time.Minute, f: daily(5, 1), sd: 0.05, seed: 6}.readings()
	// Wild values graded suspect and bad: had they been used, the forecast would show them.
	for i := 0; i < len(rs); i += 3 {
		rs[i].Value = 24
		rs[i].Quality = telemetry.Suspect
		if i%2 == 0 {
			rs[i].Quality = telemetry.Bad
		}
	}
	res := make1(t, "do", rs, start.Add(10*24*time.Hour))
	assert.Equal(t, (len(rs)+2)/3, res.NotGood)
	for _, p := range res.Forecast.Points {
		assert.Less(t, p.Hi95, 7.0)
	}
}

func TestLogScaleForCounts(t *testing.T) {
	// Fecal coliform: a daily cycle by a factor of three around 10⁴, log-normal noise.
	r := rand.New(rand.NewPCG(8, 8))
	var rs []Reading
	for at := start; at.Before(start.Add(14 * 24 * time.Hour)); at = at.Add(30 * time.Minute) {
		h := at.Sub(start).Hours()
		v := 1e4 * math.Exp(1.1*math.Sin(2*math.Pi*h/24)+0.3*r.NormFloat64())
		rs = append(rs, Reading{Time: at, Value: math.Round(v), Quality: telemetry.Good})
	}
	res := make1(t, "fc", rs, start.Add(14*24*time.Hour))
	checkShape(t, res.Forecast, start.Add(14*24*time.Hour))
	for _, p := range res.Forecast.Points {
		assert.Positive(t, p.Lo95, "a count's interval stays above zero")
		assert.Greater(t, p.Hi80-p.Value, p.Value-p.Lo80, "on the log scale the band is wider upwards")
	}
}

func TestClampedToPhysicalRange(t *testing.T) {
	// DO near zero at night: the band must not reach below 0 mg/L.
	rs := synth{span: 10 * 24 * time.Hour, step: 15 * time.Minute, f: daily(0.6, 0.6), sd: 0.3, seed: 9}.readings()
	for i := range rs {
		rs[i].Value = max(rs[i].Value, 0)
	}
	res := make1(t, "do", rs, start.Add(10*24*time.Hour))
	for _, p := range res.Forecast.Points {
		assert.GreaterOrEqual(t, p.Lo95, 0.0)
	}
}

func TestJSONIsTheContractShape(t *testing.T) {
	rs := synth{span: 8 * 24 * time.Hour, step: 30 * time.Minute, f: daily(5, 1), sd: 0.1, seed: 10}.readings()
	f := make1(t, "do", rs, start.Add(8*24*time.Hour)).Forecast
	data, err := json.Marshal(f)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	assert.Equal(t, []string{"issued_at", "model", "param", "points", "skill", "station"}, keys(m))
	assert.Equal(t, []string{"backtest_points", "coverage80", "coverage95", "mase"}, keys(m["skill"].(map[string]any)))
	pts := m["points"].([]any)
	require.Len(t, pts, 24)
	assert.Equal(t, []string{"hi80", "hi95", "lo80", "lo95", "time", "value"}, keys(pts[0].(map[string]any)))
	assert.Equal(t, "2026-01-09T00:00:00Z", pts[0].(map[string]any)["time"])
	assert.Equal(t, "2026-01-09T00:00:00Z", m["issued_at"])
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestSeasonalNaiveWorked(t *testing.T) {
	y := make([]float64, 30)
	for i := range y {
		y[i] = float64(i)
	}
	y[5] = math.NaN()
	var got [][]float64
	seasonalNaive{}.run(y, 28, 3, func(_ int, fc []float64) { got = append(got, slices.Clone(fc)) })
	// From origin 28: hours 29, 30, 31 are the same hours of the day before: 5 (missing:
	// never observed, NaN), 6, 7.
	require.Len(t, got, 2)
	assert.True(t, math.IsNaN(got[0][0]))
	assert.Equal(t, []float64{6, 7}, got[0][1:])
	// From origin 29 (y[29] observed): 6, 7, 8.
	assert.Equal(t, []float64{6, 7, 8}, got[1])
}

func TestDriftWorked(t *testing.T) {
	// FPP §5.2: ŷ[T+h] = y[T] + h·(y[T] − y[1])/(T − 1). From 1 to 7 over 3 steps: slope 2.
	y := []float64{1, math.NaN(), 4, 7, math.NaN()}
	var got [][]float64
	drift{}.run(y, 3, 2, func(_ int, fc []float64) { got = append(got, slices.Clone(fc)) })
	assert.Equal(t, [][]float64{{9, 11}, {11, 13}}, got, "from origin 4 the line runs on from the last value")
}

// TestETSRecoversItsParameters simulates ETS(A,N,A) and checks that the likelihood fit
// finds parameters close to those that made the data.
func TestETSRecoversItsParameters(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	const alpha, gamma, sigma = 0.3, 0.15, 0.2
	level := 5.0
	var season [period]float64
	for j := range season {
		season[j] = math.Sin(2 * math.Pi * float64(j) / period)
	}
	y := make([]float64, 60*period)
	for i := range y {
		e := sigma * r.NormFloat64()
		y[i] = level + season[i%period] + e
		level += alpha * e
		season[i%period] += gamma * e
	}
	p, err := ets{}.fit(y)
	require.NoError(t, err)
	fit := p.(*etsFit)
	assert.InDelta(t, alpha, fit.alpha, 0.06)
	assert.InDelta(t, gamma, fit.gamma, 0.06)
	// The one-step errors of the fitted model are about the noise that made the data.
	sse := fit.filter(y[10*period:], len(y), 0, nil)
	assert.InDelta(t, sigma, math.Sqrt(sse/float64(len(y)-10*period)), 0.05)
}

func TestETSUpdateWorked(t *testing.T) {
	// One step of ETS(A,Ad,A) by hand: ℓ=10, b=1, φ=0.9, s=2, y=14 → ŷ=10+0.9+2=12.9,
	// ε=1.1; ℓ'=10.9+0.5·1.1=11.45; b'=0.9+0.1·1.1=1.01; s'=2+0.2·1.1=2.22.
	// Forecast one step: 11.45 + 0.9·1.01 + s[slot 1] (=0) = 12.359;
	// two steps: 11.45 + (0.9+0.81)·1.01 + 0 = 13.1771.
	p := etsFit{damped: true, alpha: 0.5, beta: 0.1, gamma: 0.2, phi: 0.9, level0: 10, trend0: 1}
	p.season0[0] = 2
	var got []float64
	sse := p.filter([]float64{14}, 0, 2, func(_ int, fc []float64) { got = slices.Clone(fc) })
	assert.InDelta(t, 1.21, sse, 1e-12)
	assert.InDelta(t, 12.359, got[0], 1e-12)
	assert.InDelta(t, 13.1771, got[1], 1e-12)
}

func TestMissingHoursAddNothingToTheLikelihood(t *testing.T) {
	p := etsFit{alpha: 0.5, gamma: 0.2, phi: 1, level0: 10}
	assert.Zero(t, p.filter([]float64{math.NaN(), math.NaN()}, 0, 0, nil))
	assert.InDelta(t, 4, p.filter([]float64{math.NaN(), 12}, 0, 0, nil), 1e-12, "the states carried the level on")
}

func TestErrorsAreMatchable(t *testing.T) {
	_, err := Make(Input{Param: "do", IssuedAt: start}, Options{})
	assert.True(t, errors.Is(err, ErrNoData))
	assert.False(t, errors.Is(err, ErrTooShort))
}

package device

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

var year2025 = time.Date(2025, 1, 1, 0, 0, 0, 0, IST)

// hourly returns the value of p every hour from `from` for n hours.
func hourly(m *Model, p telemetry.Param, from time.Time, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = m.Value(p, from.Add(time.Duration(i)*time.Hour))
	}
	return out
}

func percentile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(math.Round(q*float64(len(s)-1)))]
}

func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

func geomean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += math.Log(x)
	}
	return math.Exp(sum / float64(len(xs)))
}

func TestValuesStayInPlausibleRange(t *testing.T) {
	for _, st := range Stations() {
		for _, seed := range []int64{1, 42} {
			m := New(st, seed)
			for _, p := range telemetry.Params() {
				t.Run(fmt.Sprintf("%s/seed%d/%s", st.ID, seed, p), func(t *testing.T) {
					info, ok := telemetry.Info(p)
					require.True(t, ok)
					// Every 2 h 7 min for two years: all hours of the day, both monsoons.
					for i := range 2 * 365 * 24 * 60 / 127 {
						v := m.Value(p, year2025.Add(time.Duration(i)*127*time.Minute))
						if !info.Plausible.Contains(v) || math.IsNaN(v) {
							require.Failf(t, "value outside the plausible range",
								"hour %d: %v not in [%v, %v]", i, v, info.Plausible.Min, info.Plausible.Max)
						}
					}
				})
			}
		}
	}
}

// The year's 5th and 95th percentiles per station, against what the monitoring reports show
// for these stretches (with the station's events and monsoon included).
func TestStationBaselines(t *testing.T) {
	type bounds struct{ lo, hi float64 } // p5 ≥ lo and p95 ≤ hi
	tests := []struct {
		station string
		want    map[telemetry.Param]bounds
	}{
		{"MH-PUNE-001", map[telemetry.Param]bounds{
			telemetry.DO: {1.5, 5.5}, telemetry.BOD: {8, 32}, telemetry.FC: {1e4, 1e6},
			telemetry.PH: {7.2, 7.9}, telemetry.Temp: {23, 31},
		}},
		{"MH-PUNE-002", map[telemetry.Param]bounds{
			telemetry.DO: {1, 5}, telemetry.BOD: {8, 40}, telemetry.FC: {1e4, 2e6},
			telemetry.PH: {7.1, 7.8}, telemetry.Temp: {23, 31},
		}},
		{"MH-NASHIK-001", map[telemetry.Param]bounds{
			telemetry.DO: {4, 7.5}, telemetry.BOD: {3, 15}, telemetry.FC: {3e3, 3e5},
			telemetry.PH: {7.3, 8.2}, telemetry.Temp: {21, 31},
		}},
		{"MH-SANGLI-001", map[telemetry.Param]bounds{
			telemetry.DO: {5, 8}, telemetry.BOD: {1.5, 8}, telemetry.FC: {500, 5e4},
			telemetry.PH: {7.4, 8.3}, telemetry.Temp: {21, 31},
		}},
		{"MH-KOLHAPUR-001", map[telemetry.Param]bounds{
			telemetry.DO: {3, 7}, telemetry.BOD: {5, 20}, telemetry.FC: {1e4, 5e5},
			telemetry.PH: {7.2, 8}, telemetry.Temp: {21, 31},
		}},
	}
	for _, tt := range tests {
		st, ok := Lookup(tt.station)
		require.True(t, ok, tt.station)
		m := New(st, 7)
		for p, b := range tt.want {
			t.Run(tt.station+"/"+string(p), func(t *testing.T) {
				vs := hourly(m, p, year2025, 365*24)
				assert.GreaterOrEqual(t, percentile(vs, 0.05), b.lo, "5th percentile")
				assert.LessOrEqual(t, percentile(vs, 0.95), b.hi, "95th percentile")
			})
		}
	}
}

func TestMonsoonVersusDrySeason(t *testing.T) {
	// ratio bounds of the July mean to the February mean
	tests := []struct {
		param  telemetry.Param
		lo, hi float64
	}{
		{telemetry.Turbidity, 3, math.Inf(1)},
		{telemetry.FC, 1.5, math.Inf(1)},
		{telemetry.TDS, 0, 0.75},
		{telemetry.Conductivity, 0, 0.75},
		{telemetry.BOD, 0, 0.95},
		{telemetry.DO, 1.02, math.Inf(1)},
	}
	for _, st := range Stations() {
		m := New(st, 3)
		for _, tt := range tests {
			t.Run(st.ID+"/"+string(tt.param), func(t *testing.T) {
				center := mean
				if tt.param == telemetry.FC {
					center = geomean // counts spread over orders of magnitude
				}
				feb := center(hourly(m, tt.param, time.Date(2025, 2, 1, 0, 0, 0, 0, IST), 28*24))
				jul := center(hourly(m, tt.param, time.Date(2025, 7, 1, 0, 0, 0, 0, IST), 31*24))
				ratio := jul / feb
				assert.Truef(t, ratio >= tt.lo && ratio <= tt.hi,
					"July/February mean = %.3f (jul %.2f, feb %.2f), want in [%v, %v]",
					ratio, jul, feb, tt.lo, tt.hi)
			})
		}
	}
}

// The hydrology follows the monsoon: a river in spate, a gauge that rises with it, and a
// year's rain of the order the IMD normals give for each district (Pune about 700 mm,
// Nashik 700, Sangli 550, Kolhapur 1100; June–September brings most of it).
func TestHydrology(t *testing.T) {
	rain := map[string][2]float64{
		"MH-PUNE-001": {450, 1100}, "MH-PUNE-002": {450, 1100}, "MH-NASHIK-001": {450, 1100},
		"MH-SANGLI-001": {250, 700}, "MH-KOLHAPUR-001": {700, 1600},
	}
	for _, st := range Stations() {
		t.Run(st.ID, func(t *testing.T) {
			m := New(st, 5)
			feb := mean(hourly(m, telemetry.Discharge, time.Date(2025, 2, 1, 0, 0, 0, 0, IST), 28*24))
			jul := mean(hourly(m, telemetry.Discharge, time.Date(2025, 7, 1, 0, 0, 0, 0, IST), 31*24))
			assert.Greater(t, jul/feb, 10.0, "July/February discharge (jul %.1f, feb %.1f)", jul, feb)
			lvFeb := mean(hourly(m, telemetry.WaterLevel, time.Date(2025, 2, 1, 0, 0, 0, 0, IST), 28*24))
			lvJul := mean(hourly(m, telemetry.WaterLevel, time.Date(2025, 7, 1, 0, 0, 0, 0, IST), 31*24))
			assert.Greater(t, lvJul-lvFeb, 1.0, "the gauge rises in the monsoon (jul %.2f, feb %.2f)", lvJul, lvFeb)
			assert.InDelta(t, st.Profile.GaugeZero+1, lvFeb, 1.5, "dry-season level near the gauge zero")
			var year, monsoonRain float64
			for day := range 365 {
				at := time.Date(2025, 1, 1, 12, 0, 0, 0, IST).AddDate(0, 0, day)
				r := m.Value(telemetry.Rainfall, at)
				require.GreaterOrEqual(t, r, 0.0)
				// The same day's total whatever the hour.
				require.Equal(t, r, m.Value(telemetry.Rainfall, at.Add(-11*time.Hour)), "%v", at)
				year += r
				if at.Month() >= time.June && at.Month() <= time.September {
					monsoonRain += r
				}
			}
			want := rain[st.ID]
			assert.True(t, year >= want[0] && year <= want[1], "annual rain %.0f mm, want %v", year, want)
			may := mean(hourly(m, telemetry.AirTemp, time.Date(2025, 5, 1, 0, 0, 0, 0, IST), 31*24))
			dec := mean(hourly(m, telemetry.AirTemp, time.Date(2025, 12, 1, 0, 0, 0, 0, IST), 31*24))
			assert.Greater(t, may-dec, 4.0, "air: May %.1f °C, December %.1f °C", may, dec)
			assert.Greater(t, monsoonRain/year, 0.7, "share of the rain in June–September")
		})
	}
}

func TestMonsoonIntensity(t *testing.T) {
	tests := []struct {
		date time.Time
		want float64
	}{
		{time.Date(2025, 2, 10, 12, 0, 0, 0, IST), 0},
		{time.Date(2025, 5, 31, 12, 0, 0, 0, IST), 0},
		{time.Date(2025, 7, 15, 12, 0, 0, 0, IST), 1},
		{time.Date(2025, 9, 1, 12, 0, 0, 0, IST), 1},
		{time.Date(2025, 11, 1, 12, 0, 0, 0, IST), 0},
	}
	for _, tt := range tests {
		t.Run(tt.date.Format("Jan 2"), func(t *testing.T) {
			doy := float64(tt.date.YearDay()-1) + 0.5
			assert.InDelta(t, tt.want, monsoon(doy), 1e-12)
		})
	}
	t.Run("ramps are monotonic", func(t *testing.T) {
		for doy := 150.0; doy < 184; doy++ {
			assert.LessOrEqual(t, monsoon(doy), monsoon(doy+1), "onset at day %v", doy)
		}
		for doy := 256.0; doy < 290; doy++ {
			assert.GreaterOrEqual(t, monsoon(doy), monsoon(doy+1), "withdrawal at day %v", doy)
		}
	})
}

// Temperature and DO follow the sun: averaged over a dry month, by hour of the day in IST,
// they peak mid-afternoon and bottom out before dawn.
func TestDiurnalCycle(t *testing.T) {
	for _, st := range Stations() {
		for _, p := range []telemetry.Param{telemetry.Temp, telemetry.DO, telemetry.PH, telemetry.AirTemp} {
			t.Run(st.ID+"/"+string(p), func(t *testing.T) {
				m := New(st, 11)
				var byHour [24]float64
				from := time.Date(2025, 2, 1, 0, 0, 0, 0, IST)
				for day := range 28 {
					for h := range 24 {
						at := from.AddDate(0, 0, day).Add(time.Duration(h) * time.Hour)
						byHour[at.In(IST).Hour()] += m.Value(p, at)
					}
				}
				peak := slices.Index(byHour[:], slices.Max(byHour[:]))
				low := slices.Index(byHour[:], slices.Min(byHour[:]))
				assert.True(t, peak >= 14 && peak <= 16, "peak at %02d:00 IST, want 14–16", peak)
				assert.True(t, low >= 2 && low <= 4, "low at %02d:00 IST, want 02–04", low)
			})
		}
	}
}

func TestDeterministic(t *testing.T) {
	st, _ := Lookup("MH-PUNE-001")
	times := []time.Time{
		time.Date(2025, 3, 4, 5, 6, 7, 891011, time.UTC),
		time.Date(2019, 8, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 0, 0, time.UTC),
	}
	for _, p := range telemetry.Params() {
		t.Run(string(p), func(t *testing.T) {
			a, b := New(st, 5), New(st, 5)
			for _, at := range times {
				want := a.Value(p, at)
				// Asking again, in another order, from another model value, in another zone.
				assert.Equal(t, want, b.Value(p, at.In(IST)), "same seed at %v", at)
				assert.Equal(t, want, a.Value(p, at), "second call at %v", at)
			}
			other := New(st, 6)
			differ, from, step, want := 0, times[0], time.Minute, 90
			if p == telemetry.Rainfall {
				// One value a day, and dry days are zero whatever the seed: compare the
				// monsoon's days.
				from, step, want = time.Date(2025, 7, 1, 12, 0, 0, 0, IST), 24*time.Hour, 50
			}
			for i := range 100 {
				at := from.Add(time.Duration(i) * step)
				if other.Value(p, at) != a.Value(p, at) {
					differ++
				}
			}
			assert.Greater(t, differ, want, "another seed should give another series")
		})
	}
}

func TestExactValueForSeed(t *testing.T) {
	// A change in the model changes every simulated series, benchmarks included: make it
	// deliberate. Update these numbers when the model is meant to change.
	st, _ := Lookup("MH-PUNE-001")
	m := New(st, 1)
	at := time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)
	got := map[telemetry.Param]float64{}
	for _, p := range telemetry.Params() {
		got[p] = Round(p, m.Value(p, at))
	}
	assert.Equal(t, goldenPune, got)
}

func TestPollutionEvents(t *testing.T) {
	st, _ := Lookup("MH-PUNE-001")
	m := New(st, 9)
	// The dry season, where events show clearly.
	from, to := time.Date(2025, 1, 1, 0, 0, 0, 0, IST), time.Date(2025, 5, 1, 0, 0, 0, 0, IST)
	events := m.Events(from, to)
	require.GreaterOrEqual(t, len(events), 8, "Pune should see several events in four months")
	require.LessOrEqual(t, len(events), 30)

	inEvent := func(at time.Time) bool { return m.eventIntensity(at) > 0 }
	var ratios = map[telemetry.Param][]float64{}
	for _, e := range events {
		assert.True(t, e.End.After(e.Start))
		assert.LessOrEqual(t, e.End.Sub(e.Start), 10*time.Hour)
		assert.True(t, e.Severity >= 0.4 && e.Severity <= 1, "severity %v", e.Severity)
		if e.End.Sub(e.Start) < 2*time.Hour {
			continue
		}
		mid := e.Start.Add(e.End.Sub(e.Start) / 2)
		// The same hour of a nearby day without an event is the reference.
		var ref time.Time
		for _, d := range []int{-2, 2, -3, 3, -4, 4} {
			c := mid.AddDate(0, 0, d)
			if !inEvent(c) && !inEvent(c.Add(-3*time.Hour)) && !inEvent(c.Add(3*time.Hour)) {
				ref = c
				break
			}
		}
		if ref.IsZero() {
			continue
		}
		for _, p := range []telemetry.Param{telemetry.DO, telemetry.BOD, telemetry.FC} {
			ratios[p] = append(ratios[p], m.Value(p, mid)/m.Value(p, ref))
		}
	}
	require.NotEmpty(t, ratios[telemetry.DO])
	assert.Less(t, mean(ratios[telemetry.DO]), 0.8, "DO drops during events")
	assert.Greater(t, mean(ratios[telemetry.BOD]), 1.5, "BOD jumps during events")
	assert.Greater(t, mean(ratios[telemetry.FC]), 3.0, "FC jumps during events")

	t.Run("intensity shape", func(t *testing.T) {
		e := Event{Start: from, End: from.Add(3 * time.Hour), Severity: 0.8}
		assert.Zero(t, e.intensity(from.Add(-time.Second)))
		assert.InDelta(t, 0.4, e.intensity(from.Add(15*time.Minute)), 1e-9, "half way up the ramp")
		assert.InDelta(t, 0.8, e.intensity(from.Add(2*time.Hour)), 1e-9, "full effect")
		assert.InDelta(t, 0.8*math.Exp(-1), e.intensity(e.End.Add(eventDecay)), 1e-9, "washing out")
		assert.Zero(t, e.intensity(e.End.Add(eventTail+time.Minute)), "over")
	})
}

func TestDOStaysBelowSupersaturation(t *testing.T) {
	for _, st := range Stations() {
		m := New(st, 1)
		for i := range 365 * 24 {
			at := year2025.Add(time.Duration(i) * time.Hour)
			do, temp := m.Value(telemetry.DO, at), m.Value(telemetry.Temp, at)
			// The temperature reading has its own noise: allow a little slack.
			if do > 1.37*doSaturation(temp) {
				require.Failf(t, "DO above 135 % saturation", "%s at %v: DO %.2f, temp %.2f", st.ID, at, do, temp)
			}
		}
	}
}

func TestDOSaturationCheckValues(t *testing.T) {
	// ../shared/science.md check values at 1 atm.
	for tempC, want := range map[float64]float64{0: 14.6208, 10: 11.2879, 20: 9.0924, 25: 8.2635, 30: 7.5588, 35: 6.9493} {
		assert.InDelta(t, want, doSaturation(tempC), 5e-4, "%v °C", tempC)
	}
}

func TestUnsupportedParamIsNaN(t *testing.T) {
	m := New(ForStation("MH-PUNE-001"), 1)
	assert.True(t, math.IsNaN(m.Value("salinity", year2025)))
	assert.False(t, Supported("salinity"))
	for _, p := range telemetry.Params() {
		assert.True(t, Supported(p), p)
	}
}

func TestForStation(t *testing.T) {
	tests := []struct {
		id      string
		generic bool
	}{
		{"MH-PUNE-001", false},
		{"MH-PUNE-002", false},
		{"MH-NASHIK-001", false},
		{"MH-SANGLI-001", false},
		{"MH-KOLHAPUR-001", false},
		{"MH-TEST-999", true},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			st := ForStation(tt.id)
			assert.Equal(t, tt.id, st.ID)
			assert.Equal(t, tt.generic, Generic(tt.id))
			assert.NotEmpty(t, st.Name)
			assert.Positive(t, st.Profile.DO)
		})
	}
	t.Run("Stations returns a copy", func(t *testing.T) {
		s := Stations()
		s[0].ID = "changed"
		assert.Equal(t, "MH-PUNE-001", Stations()[0].ID)
	})
}

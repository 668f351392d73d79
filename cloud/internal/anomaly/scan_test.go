package anomaly

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/hourly"
)

var t0 = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)

// river is a station's clean DO: a daily cycle, a slow wander (a smooth random walk of
// the daily mean, knots a day and a half apart, as rivers change with flow and weather)
// and reading noise, every 5 minutes for the given days. change adds to the true value;
// read replaces a reading.
type river struct {
	days   int
	seed   uint64
	mean   float64
	change func(h float64) float64
	read   func(i int, h, v float64) (float64, bool)
}

func (r river) points() []hourly.Point {
	rng := rand.New(rand.NewPCG(r.seed, 7))
	mean := r.mean
	if mean == 0 {
		mean = 6
	}
	knots := make([]float64, r.days+2)
	for i := range knots {
		knots[i] = 0.15 * rng.NormFloat64()
	}
	wander := func(h float64) float64 {
		k, f := math.Modf(h / 36)
		s := (1 - math.Cos(math.Pi*f)) / 2
		return knots[int(k)] + (knots[int(k)+1]-knots[int(k)])*s
	}
	var out []hourly.Point
	for i := 0; i < r.days*24*12; i++ {
		h := float64(i) / 12
		v := mean + 1.0*math.Sin(2*math.Pi*(h-9)/24) + wander(h) + 0.05*rng.NormFloat64()
		if r.change != nil {
			v += r.change(h)
		}
		v = math.Round(v*100) / 100
		if r.read != nil {
			var ok bool
			if v, ok = r.read(i, h, v); !ok {
				continue
			}
		}
		out = append(out, hourly.Point{Time: t0.Add(time.Duration(i) * 5 * time.Minute), Value: v})
	}
	return out
}

func scan(t *testing.T, r river) Scan {
	t.Helper()
	return ScanSeries(Series{Station: "S", Param: "do", Points: r.points()}, Options{})
}

func kinds(eps []Episode) []Kind {
	var out []Kind
	for _, e := range eps {
		out = append(out, e.Kind)
	}
	return out
}

func TestCleanSeriesHasNoEpisodes(t *testing.T) {
	for seed := range uint64(5) {
		s := scan(t, river{days: 14, seed: seed})
		assert.Empty(t, s.Episodes, "seed %d: %+v", seed, kinds(s.Episodes))
		assert.Empty(t, s.Flags, "seed %d", seed)
	}
}

func TestSingleStationKinds(t *testing.T) {
	day := func(d float64) float64 { return d * 24 }
	tests := []struct {
		name  string
		r     river
		kind  Kind
		sign  int
		start time.Time
	}{
		{name: "a four-hour dip is a deviation",
			r: river{days: 12, seed: 1, change: func(h float64) float64 {
				if h >= day(10)+2 && h < day(10)+6 {
					return -2
				}
				return 0
			}},
			kind: KindDeviation, sign: -1, start: t0.Add(10*24*time.Hour + 2*time.Hour)},
		{name: "a step that holds is a level shift",
			r: river{days: 12, seed: 2, change: func(h float64) float64 {
				if h >= day(10) {
					return 1.5
				}
				return 0
			}},
			kind: KindLevelShift, sign: 1, start: t0.Add(10 * 24 * time.Hour)},
		{name: "a steady walk away is a drift",
			r: river{days: 14, seed: 3, change: func(h float64) float64 {
				if h >= day(11) {
					return -0.08 * (h - day(11))
				}
				return 0
			}},
			kind: KindDrift, sign: -1},
		{name: "a slow walk away, too slow for the fast channel, is a drift too",
			r: river{days: 14, seed: 6, change: func(h float64) float64 {
				if h >= day(10) {
					return -0.025 * (h - day(10))
				}
				return 0
			}},
			kind: KindDrift, sign: -1},
		{name: "the same reading for hours is stuck",
			r: river{days: 12, seed: 4, read: func(i int, h, v float64) (float64, bool) {
				if h >= day(10)+1 && h < day(10)+4 {
					return 6.12, true
				}
				return v, true
			}},
			kind: KindStuck, start: t0.Add(10*24*time.Hour + time.Hour)},
		{name: "readings that jump away and back are spikes",
			r: river{days: 12, seed: 5, read: func(i int, h, v float64) (float64, bool) {
				if h >= day(10) && i%40 == 0 {
					return v + 4, true
				}
				return v, true
			}},
			kind: KindSpike},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := scan(t, tt.r)
			require.Len(t, s.Episodes, 1, "%v", kinds(s.Episodes))
			e := s.Episodes[0]
			assert.Equal(t, tt.kind, e.Kind)
			if tt.kind != KindSpike && tt.kind != KindStuck {
				assert.Equal(t, tt.sign, e.Sign)
			}
			if !tt.start.IsZero() {
				assert.Equal(t, tt.start, e.Start)
			}
			assert.NotEmpty(t, s.Flags)
			for _, f := range s.Flags {
				assert.False(t, f.Time.Before(t0.Add(9*24*time.Hour)), "flag at %s", f.Time)
			}
		})
	}
}

// asHourly gives the readings before the last rawDays days as hourly means (Series.Hourly),
// as a caller reading an hourly rollup does, and keeps the rest as readings.
func asHourly(pts []hourly.Point, rawDays int) Series {
	cut := pts[len(pts)-1].Time.Truncate(24 * time.Hour).Add(-time.Duration(rawDays-1) * 24 * time.Hour)
	s := Series{Station: "S", Param: "do"}
	sums := map[time.Time]float64{}
	var hours []time.Time
	counts := map[time.Time]int{}
	for _, p := range pts {
		if !p.Time.Before(cut) {
			s.Points = append(s.Points, p)
			continue
		}
		h := p.Time.Truncate(time.Hour)
		if counts[h] == 0 {
			hours = append(hours, h)
		}
		sums[h] += p.Value
		counts[h]++
	}
	for _, h := range hours {
		s.Hourly = append(s.Hourly, HourValue{Time: h, Value: sums[h] / float64(counts[h]), Count: counts[h]})
	}
	return s
}

// TestHourlyHistoryJudgesAsReadings: weeks of history as hourly values and the last days
// as readings find what the readings alone find.
func TestHourlyHistoryJudgesAsReadings(t *testing.T) {
	for seed := range uint64(3) {
		s := ScanSeries(asHourly(river{days: 14, seed: seed}.points(), 2), Options{})
		assert.Empty(t, s.Episodes, "clean seed %d: %v", seed, kinds(s.Episodes))
		assert.Empty(t, s.Flags, "clean seed %d", seed)
	}
	day := 24.0
	tests := []struct {
		name string
		r    river
		kind Kind
	}{
		{"dip", river{days: 12, seed: 1, change: func(h float64) float64 {
			if h >= 10*day+2 && h < 10*day+6 {
				return -2
			}
			return 0
		}}, KindDeviation},
		{"stuck", river{days: 12, seed: 4, read: func(i int, h, v float64) (float64, bool) {
			if h >= 10*day+1 && h < 10*day+4 {
				return 6.12, true
			}
			return v, true
		}}, KindStuck},
		{"spikes", river{days: 12, seed: 5, read: func(i int, h, v float64) (float64, bool) {
			if h >= 10*day && i%40 == 0 {
				return v + 4, true
			}
			return v, true
		}}, KindSpike},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pts := tt.r.points()
			whole := ScanSeries(Series{Station: "S", Param: "do", Points: pts}, Options{})
			split := ScanSeries(asHourly(pts, 3), Options{})
			require.Len(t, split.Episodes, 1, "%v", kinds(split.Episodes))
			require.Len(t, whole.Episodes, 1)
			assert.Equal(t, tt.kind, split.Episodes[0].Kind)
			assert.Equal(t, whole.Episodes[0].Start, split.Episodes[0].Start)
			assert.Equal(t, whole.Episodes[0].End, split.Episodes[0].End)
		})
	}
}

// TestFreshCoarseSeriesHasNoSpikes: a few minutes of a probe that repeats its value but
// for a step of its last digits has no reading-to-reading noise to speak of; the steps
// are not spikes.
func TestFreshCoarseSeriesHasNoSpikes(t *testing.T) {
	var pts []hourly.Point
	for i := range 40 {
		// Float noise in the last bits (a unit conversion, two sensors of one value)...
		v := 7.66 + float64(i%2)*1e-15
		if i%9 == 4 {
			v = 7.64 // ... and a step of the probe's last digit
		}
		pts = append(pts, hourly.Point{Time: t0.Add(time.Duration(i) * 10 * time.Second), Value: v})
	}
	s := ScanSeries(Series{Station: "S", Param: "ph", Points: pts}, Options{})
	assert.Empty(t, s.Episodes, "%v", kinds(s.Episodes))
	assert.Empty(t, s.Flags)
}

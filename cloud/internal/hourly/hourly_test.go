package hourly

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func at(h, m int) time.Time { return t0.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }

func TestRegularise(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name      string
		points    []Point
		opts      Options
		start     time.Time
		want      []float64
		wantStats Stats
	}{
		{
			name: "irregular, unsorted, duplicated: the median of each hour",
			points: []Point{
				{at(1, 50), 7}, {at(0, 5), 1}, {at(0, 40), 3}, {at(0, 20), 2}, {at(1, 10), 5},
				{at(0, 20), 2}, {at(3, 59), 9},
			},
			start: at(0, 0),
			// hour 0: 1,2,2,3 → 2; hour 1: 5,7 → 6; hour 2: none; hour 3: 9
			want:      []float64{2, 6, nan, 9},
			wantStats: Stats{Readings: 7, Used: 7, Hours: 4, Observed: 3, LongestGap: 1},
		},
		{
			name:      "non-finite values are ignored",
			points:    []Point{{at(0, 0), math.NaN()}, {at(0, 1), 4}, {at(1, 0), math.Inf(1)}},
			start:     at(0, 0),
			want:      []float64{4},
			wantStats: Stats{Readings: 3, NonFinite: 2, Used: 1, Hours: 1, Observed: 1},
		},
		{
			name:   "End keeps the silence before it and drops what is after",
			points: []Point{{at(0, 30), 1}, {at(1, 30), 2}, {at(5, 0), 99}},
			opts:   Options{End: at(4, 0)},
			start:  at(0, 0),
			want:   []float64{1, 2, nan, nan},
			wantStats: Stats{Readings: 3, Outside: 1, Used: 2, Hours: 4, Observed: 2,
				LongestGap: 2},
		},
		{
			name:      "End inside an hour keeps that hour",
			points:    []Point{{at(0, 30), 1}, {at(1, 10), 2}, {at(1, 30), 3}},
			opts:      Options{End: at(1, 20)},
			start:     at(0, 0),
			want:      []float64{1, 2},
			wantStats: Stats{Readings: 3, Outside: 1, Used: 2, Hours: 2, Observed: 2},
		},
		{
			name:      "MaxHours keeps the newest hours",
			points:    []Point{{at(0, 0), 1}, {at(1, 0), 2}, {at(2, 0), 3}, {at(3, 0), 4}},
			opts:      Options{MaxHours: 2},
			start:     at(2, 0),
			want:      []float64{3, 4},
			wantStats: Stats{Readings: 4, Outside: 2, Used: 2, Hours: 2, Observed: 2},
		},
		{
			name:      "nothing usable",
			points:    []Point{{at(0, 0), math.NaN()}},
			wantStats: Stats{Readings: 1, NonFinite: 1},
		},
		{name: "no points"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.points)
			s, st := Regularise(tt.points, tt.opts)
			assert.Equal(t, fmt.Sprint(in), fmt.Sprint(tt.points), "the input is not changed")
			assert.Equal(t, tt.wantStats, st)
			require.Equal(t, len(tt.want), s.Len())
			if len(tt.want) > 0 {
				assert.Equal(t, tt.start, s.Start)
			}
			for i, w := range tt.want {
				if math.IsNaN(w) {
					assert.True(t, math.IsNaN(s.Values[i]), "hour %d: want no value, got %v", i, s.Values[i])
				} else {
					assert.Equal(t, w, s.Values[i], "hour %d", i)
				}
			}
		})
	}
}

func TestRegulariseBoundsMemoryByMaxHours(t *testing.T) {
	// Readings fifty years apart must not make a fifty-year series.
	pts := []Point{{time.Date(1976, 1, 1, 0, 0, 0, 0, time.UTC), 1}, {t0, 2}}
	s, st := Regularise(pts, Options{})
	assert.Equal(t, 1, s.Len())
	assert.Equal(t, 1, st.Outside)
}

func TestRegulariseBeforeEpoch(t *testing.T) {
	// Hours before 1970 round down too.
	base := time.Date(1969, 12, 31, 22, 0, 0, 0, time.UTC)
	s, _ := Regularise([]Point{{base.Add(10 * time.Minute), 1}, {base.Add(70 * time.Minute), 2}}, Options{})
	assert.Equal(t, base, s.Start)
	assert.Equal(t, []float64{1, 2}, s.Values)
}

func TestOutlierFilter(t *testing.T) {
	// A smooth daily cycle with small noise, hourly.
	r := rand.New(rand.NewPCG(3, 4))
	base := func(i int) float64 { return 6 + math.Sin(2*math.Pi*float64(i)/24) + 0.03*r.NormFloat64() }
	var pts []Point
	vals := make([]float64, 96)
	for i := range vals {
		vals[i] = base(i)
	}
	vals[30] += 4              // an isolated wrong hour
	for i := 50; i < 54; i++ { // a four-hour excursion: real, kept
		vals[i] -= 3
	}
	for i := 70; i < 96; i++ { // a step that stays: kept
		vals[i] += 2
	}
	for i, v := range vals {
		pts = append(pts, Point{at(i, 30), v})
	}
	s, st := Regularise(pts, Options{})
	assert.Equal(t, 1, st.Outliers)
	assert.True(t, math.IsNaN(s.Values[30]), "the isolated hour goes")
	for i := 50; i < 54; i++ {
		assert.Equal(t, vals[i], s.Values[i], "the excursion stays, hour %d", i)
	}
	for i := 68; i < 73; i++ {
		assert.Equal(t, vals[i], s.Values[i], "the step stays, hour %d", i)
	}
	_, st = Regularise(pts, Options{OutlierZ: -1})
	assert.Zero(t, st.Outliers, "a negative threshold turns the filter off")
}

func TestMedianMAD(t *testing.T) {
	tests := []struct {
		xs          []float64
		median, mad float64
	}{
		{[]float64{1, 2, 3, 4, 100}, 3, 1},
		{[]float64{4, 1, 3, 2}, 2.5, 1},
		{[]float64{5}, 5, 0},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.xs)
		m, d := MedianMAD(tt.xs)
		assert.Equal(t, tt.median, m, "%v", tt.xs)
		assert.Equal(t, tt.mad, d, "%v", tt.xs)
		assert.Equal(t, in, tt.xs, "MedianMAD leaves its input alone")
	}
	m, d := MedianMAD(nil)
	assert.True(t, math.IsNaN(m) && math.IsNaN(d))
}

func TestQuantiles(t *testing.T) {
	// Hyndman & Fan type 7 on 1…10: h = q·9.
	xs := []float64{7, 3, 10, 1, 9, 2, 8, 4, 6, 5}
	got := Quantiles(slices.Clone(xs), 0.025, 0.1, 0.5, 0.9, 0.975, 0, 1)
	want := []float64{1.225, 1.9, 5.5, 9.1, 9.775, 1, 10}
	for i := range want {
		assert.InDelta(t, want[i], got[i], 1e-12, "quantile %d", i)
	}
	assert.True(t, math.IsNaN(Quantiles(nil, 0.5)[0]))

	// Against sorting, on random data with ties and in any order of qs.
	r := rand.New(rand.NewPCG(1, 1))
	for trial := range 200 {
		n := 1 + r.IntN(300)
		data := make([]float64, n)
		for i := range data {
			data[i] = math.Round(r.NormFloat64() * 3) // many ties
		}
		sorted := slices.Sorted(slices.Values(data))
		qs := []float64{r.Float64(), r.Float64(), 0.025, 0.975, r.Float64()}
		got := Quantiles(slices.Clone(data), qs...)
		for i, q := range qs {
			h := q * float64(n-1)
			lo := int(math.Floor(h))
			want := sorted[lo]
			if lo+1 < n {
				want += (h - float64(lo)) * (sorted[lo+1] - sorted[lo])
			}
			require.InDelta(t, want, got[i], 1e-9, "trial %d, n %d, q %v", trial, n, q)
		}
	}
}

func TestTransform(t *testing.T) {
	fc := TransformFor("fc")
	assert.True(t, fc.Log)
	assert.InDelta(t, math.Log(101), fc.Apply(100), 1e-12)
	assert.InDelta(t, 100, fc.Invert(fc.Apply(100)), 1e-9)
	assert.InDelta(t, 0, fc.Invert(fc.Apply(0)), 1e-12, "zero is finite on the log scale")
	for _, p := range []string{"do", "ph", "temp", "tds", "conductivity", "wqi"} {
		assert.False(t, TransformFor(p).Log, p)
		assert.Equal(t, 7.5, TransformFor(p).Apply(7.5), p)
	}
	for _, p := range []string{"turbidity", "bod", "chla"} {
		assert.True(t, TransformFor(p).Log, p)
	}
	got := fc.ApplyAll([]float64{0, math.NaN()})
	assert.Equal(t, 0.0, got[0])
	assert.True(t, math.IsNaN(got[1]))
}

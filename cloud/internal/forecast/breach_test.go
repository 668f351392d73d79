package forecast

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/criteria"
	"github.com/purehealth/purehealth/shared/telemetry"
)

var ist = time.FixedZone("IST", 5*3600+30*60)

// doForecast is a night's DO forecast from 21:30 IST (16:00 UTC): it sags towards dawn.
func doForecast() Forecast {
	issued := time.Date(2026, 1, 10, 16, 0, 0, 0, time.UTC)
	vals := [][3]float64{ // value, lo80, hi80
		{5.2, 4.8, 5.6}, {4.9, 4.5, 5.3}, {4.6, 4.2, 5.0}, {4.4, 4.05, 4.8},
		{4.2, 3.7, 4.7}, {3.9, 3.1, 4.6}, {3.8, 3.0, 4.5}, {4.3, 3.6, 5.0}, {5.0, 4.4, 5.5},
	}
	f := Forecast{Station: "MH-PUNE-001", Param: "do", IssuedAt: issued, Model: ModelETSANA}
	for k, v := range vals {
		f.Points = append(f.Points, Point{Time: issued.Add(time.Duration(k) * time.Hour),
			Value: v[0], Lo80: v[1], Hi80: v[2], Lo95: v[1] - 0.3, Hi95: v[2] + 0.3})
	}
	return f
}

func TestBreaches(t *testing.T) {
	f := doForecast()
	tests := []struct {
		name   string
		class  criteria.Class
		want   bool
		first  time.Time
		worst  time.Time
		likely bool
		msg    string
	}{
		// Class C: DO ≥ 4. The 80 % interval first reaches below 4 at 20:00 UTC (01:30 IST,
		// lo80 3.7); the furthest at 22:00 UTC (3.0); the point forecast itself goes below
		// (3.9, 3.8).
		{name: "class C, DO 4", class: criteria.ClassC, want: true,
			first: time.Date(2026, 1, 10, 20, 0, 0, 0, time.UTC), worst: time.Date(2026, 1, 10, 22, 0, 0, 0, time.UTC),
			likely: true, msg: "DO is forecast to fall below 4 mg/L around 01:30; 80 % interval 3.7–4.7"},
		// Class B: DO ≥ 5: lo80 4.8 already at the first hour; the point forecast 4.9 at
		// the second.
		{name: "class B, DO 5", class: criteria.ClassB, want: true,
			first: time.Date(2026, 1, 10, 16, 0, 0, 0, time.UTC), worst: time.Date(2026, 1, 10, 22, 0, 0, 0, time.UTC),
			likely: true, msg: "DO is forecast to fall below 5 mg/L around 21:30; 80 % interval 4.8–5.6"},
		// Class E has no DO criterion.
		{name: "class E: no DO limit", class: criteria.ClassE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := Breaches(f, criteria.DesignatedBestUse(tt.class))
			if !tt.want {
				assert.Empty(t, bs)
				return
			}
			require.Len(t, bs, 1, "only the DO limit applies to a DO forecast")
			b := bs[0]
			assert.Equal(t, telemetry.DO, b.Limit.Param)
			assert.Equal(t, tt.first, b.First.Time)
			assert.Equal(t, tt.worst, b.Worst.Time)
			assert.Equal(t, tt.likely, b.Likely)
			assert.Equal(t, tt.msg, b.Message(ist))
		})
	}
}

func TestCheckMaxAndUnlikely(t *testing.T) {
	issued := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	f := Forecast{Param: "ph", Points: []Point{
		{Time: issued, Value: 8.1, Lo80: 7.9, Hi80: 8.3},
		{Time: issued.Add(time.Hour), Value: 8.3, Lo80: 8.1, Hi80: 8.56},
		{Time: issued.Add(2 * time.Hour), Value: 8.2, Lo80: 8.0, Hi80: 8.49},
	}}
	limits := criteria.DesignatedBestUse(criteria.ClassB) // pH 6.5–8.5
	bs := Breaches(f, limits)
	require.Len(t, bs, 1)
	b := bs[0]
	assert.Equal(t, criteria.Max, b.Limit.Bound)
	assert.False(t, b.Likely, "only the upper bound crosses: less than an even chance")
	assert.Equal(t, "pH is forecast to rise above 8.5 around 01:00; 80 % interval 8.1–8.6", b.Message(nil))

	// Nothing crosses: no warning (an upper bound equal to the limit is not beyond it).
	f.Points[1].Hi80 = 8.5
	assert.Empty(t, Breaches(f, limits))
}

func TestBreachMessageForColiform(t *testing.T) {
	issued := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	f := Forecast{Param: "fc", Points: []Point{{Time: issued, Value: 400, Lo80: 250, Hi80: 650}}}
	bs := Breaches(f, criteria.DesignatedBestUse(criteria.ClassB))
	require.Len(t, bs, 1)
	assert.Equal(t, "Fecal coliform is forecast to rise above 500 MPN/100mL around 00:00; 80 % interval 250–650 "+
		"(the limit is for total coliform, which is never below fecal coliform, so it is certainly exceeded)", bs[0].Message(nil))
}

func TestFormatNear(t *testing.T) {
	tests := []struct {
		v, limit float64
		want     string
	}{
		{3.1, 4, "3.1"},
		{3.96, 4, "3.96"},
		{6.46, 6.5, "6.46"},
		{6.5, 6.5, "6.5"},
		{2300.4, 500, "2300"},
		{499.6, 500, "499.6"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, formatNear(tt.v, tt.limit), "%v against %v", tt.v, tt.limit)
	}
}

func TestFormatInterval(t *testing.T) {
	tests := []struct {
		lo, hi, limit float64
		want          string
	}{
		{3.1, 4.6, 4, "3.1–4.6"},
		{2.46, 2.53, 5, "2.46–2.53"},
		{2.5, 2.5, 5, "2.5–2.5"},
		{2.501, 2.504, 5, "2.501–2.504"},
		{250, 650, 500, "250–650"},
	}
	for _, tt := range tests {
		lo, hi := formatInterval(tt.lo, tt.hi, tt.limit)
		assert.Equal(t, tt.want, lo+"–"+hi, "%v–%v against %v", tt.lo, tt.hi, tt.limit)
	}
}

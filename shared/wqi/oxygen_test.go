package wqi_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/wqi"
)

func TestSaturation(t *testing.T) {
	// Check values printed in APHA 4500-O / science.md §1, to 4 decimals.
	tests := []struct {
		tempC, pressureAtm float64
		want               float64
	}{
		{0, 1, 14.6208},
		{10, 1, 11.2879},
		{20, 1, 9.0924},
		{25, 1, 8.2635},
		{30, 1, 7.5588},
		{35, 1, 6.9493},
		{25, 0.935, 7.7093}, // Pune, about 560 m
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			got := wqi.Saturation(tt.tempC, tt.pressureAtm)
			assert.InDelta(t, tt.want, got, 0.00005, "C*(%v °C, %v atm)", tt.tempC, tt.pressureAtm)
		})
	}
}

func TestSaturationPressureCorrection(t *testing.T) {
	// At 1 atm the correction factor is exactly 1, at every temperature.
	for _, tempC := range []float64{0, 12.5, 25, 40} {
		at1 := wqi.Saturation(tempC, 1)
		nearly1 := wqi.Saturation(tempC, 1-1e-12)
		assert.InDelta(t, at1, nearly1, 1e-9, "correction must be continuous at 1 atm (%v °C)", tempC)
	}
	// Lower pressure, less oxygen; roughly in proportion to the pressure.
	prev := math.Inf(1)
	for _, p := range []float64{1.05, 1, 0.95, 0.9, 0.8, 0.6} {
		c := wqi.Saturation(20, p)
		assert.Less(t, c, prev, "C* must fall with pressure (p=%v)", p)
		assert.InEpsilon(t, 9.0924*p, c, 0.02, "C* roughly proportional to pressure (p=%v)", p)
		prev = c
	}
}

func TestPressureAtElevation(t *testing.T) {
	tests := []struct {
		name   string
		meters float64
		want   float64
		delta  float64
	}{
		{"sea level", 0, 1, 0},
		{"Pune", 560, 0.935, 0.0005},
		{"1000 m", 1000, 0.8870, 0.0005},   // standard atmosphere table: 89.87 kPa
		{"Dead Sea", -430, 1.0522, 0.0005}, // below sea level, above 1 atm
		{"beyond the model", 50000, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.InDelta(t, tt.want, wqi.PressureAtElevation(tt.meters), tt.delta)
		})
	}
}

func TestDOSaturationPct(t *testing.T) {
	tests := []struct {
		name            string
		doMgL           float64
		tempC, pressure float64
		method          wqi.DOMethod
		want            float64
	}{
		{"benson-krause at saturation", 8.2635, 25, 1, wqi.BensonKrause, 100},
		{"benson-krause 7 mg/L at 25 °C", 7, 25, 1, wqi.BensonKrause, 100 * 7 / 8.263457},
		{"benson-krause at Pune pressure", 7, 25, 0.935, wqi.BensonKrause, 100 * 7 / 7.709329},
		{"zero value is benson-krause", 7, 25, 1, "", 100 * 7 / 8.263457},
		{"benson-krause cold water", 7, 10, 1, wqi.BensonKrause, 100 * 7 / 11.287947},
		// MPCB ignores temperature and pressure: DO / 6.5 mg/L.
		{"mpcb", 6.5, 25, 1, wqi.MPCB, 100},
		{"mpcb ignores temperature", 3.25, 5, 1, wqi.MPCB, 50},
		{"mpcb ignores pressure", 13, 25, 0.7, wqi.MPCB, 200},
		{"zero DO", 0, 25, 1, wqi.BensonKrause, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wqi.DOSaturationPct(tt.doMgL, tt.tempC, tt.pressure, tt.method)
			assert.InDelta(t, tt.want, got, 0.001)
		})
	}
}

func TestParseDOMethod(t *testing.T) {
	tests := []struct {
		in      string
		want    wqi.DOMethod
		wantErr bool
	}{
		{"", wqi.BensonKrause, false},
		{"benson-krause", wqi.BensonKrause, false},
		{" Benson-Krause ", wqi.BensonKrause, false},
		{"mpcb", wqi.MPCB, false},
		{"MPCB", wqi.MPCB, false},
		{"bk", "", true},
		{"benson krause", "", true},
		{"cpcb", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := wqi.ParseDOMethod(tt.in)
			if tt.wantErr {
				require.ErrorIs(t, err, wqi.ErrUnknownDOMethod)
				assert.Contains(t, err.Error(), tt.in, "the error names the bad value")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func FuzzParseDOMethod(f *testing.F) {
	for _, s := range []string{"", "benson-krause", "MPCB", " mpcb\t", "x", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := wqi.ParseDOMethod(s)
		if err != nil {
			assert.ErrorIs(t, err, wqi.ErrUnknownDOMethod)
			return
		}
		assert.Contains(t, []wqi.DOMethod{wqi.BensonKrause, wqi.MPCB}, m)
		again, err := wqi.ParseDOMethod(string(m))
		require.NoError(t, err, "a parsed method must parse again")
		assert.Equal(t, m, again)
	})
}

package telemetry

import (
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		param, unit string
		value       float64
		wantParam   Param
		wantValue   float64
		wantUnit    string
	}{
		{"pH", "pH", 7.2, PH, 7.2, "pH"},
		{"ph", "", 7.2, PH, 7.2, "pH"},
		{"DO", "mg/L", 6.1, DO, 6.1, "mg/L"},
		{"dissolved_oxygen", "ppm", 6.1, DO, 6.1, "mg/L"},
		{"Dissolved Oxygen", "mg/l", 6.1, DO, 6.1, "mg/L"},
		{"BOD5", "mg/L", 3, BOD, 3, "mg/L"},
		{"Fecal Coliform", "MPN/100 mL", 2400, FC, 2400, "MPN/100mL"},
		{"faecal_coliform", "CFU/100mL", 90, FC, 90, "MPN/100mL"},
		{"TDS", "g/L", 0.45, TDS, 450, "mg/L"},
		{"Temperature", "°C", 25, Temp, 25, "degC"},
		{"temp", "degF", 77, Temp, 25, "degC"},
		{"water_temperature", "°F", 32, Temp, 0, "degC"},
		{"temp", "K", 298.15, Temp, 25, "degC"},
		{"turbidity", "FNU", 12, Turbidity, 12, "NTU"},
		{"EC", "mS/cm", 1.2, Conductivity, 1200, "uS/cm"},
		{"conductivity", "µS/cm", 850, Conductivity, 850, "uS/cm"},
		{"conductivity", "μS/cm", 850, Conductivity, 850, "uS/cm"},
		{"chlorophyll-a", "µg/L", 14, Chla, 14, "ug/L"},
	}
	for _, tt := range tests {
		t.Run(tt.param+"/"+tt.unit, func(t *testing.T) {
			p, v, u, err := Normalize(tt.param, tt.value, tt.unit)
			require.NoError(t, err)
			assert.Equal(t, tt.wantParam, p)
			assert.InDelta(t, tt.wantValue, v, 1e-9)
			assert.Equal(t, tt.wantUnit, u)
		})
	}
}

func TestNormalizeRejects(t *testing.T) {
	tests := []struct {
		name, param, unit string
		value             float64
		want              error
		mention           string
	}{
		{"unknown param", "salinity", "", 1, ErrUnknownParam, `"salinity"`},
		{"unit of another param", "ph", "mg/L", 7, ErrUnitMismatch, "mg/L"},
		{"made-up unit", "do", "furlongs", 7, ErrUnitMismatch, "furlongs"},
		{"NaN", "ph", "", math.NaN(), ErrNotFinite, "ph"},
		{"Inf", "do", "", math.Inf(1), ErrNotFinite, "do"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := Normalize(tt.param, tt.value, tt.unit)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tt.want), "got %v", err)
			assert.Contains(t, err.Error(), tt.mention)
		})
	}
}

func TestEveryParamHasInfoAndCanonicalUnit(t *testing.T) {
	for _, p := range Params() {
		info, ok := Info(p)
		require.True(t, ok, p)
		got, v, u, err := Normalize(string(p), 1, info.Unit)
		require.NoError(t, err, "%s in its own unit %q", p, info.Unit)
		assert.Equal(t, p, got)
		assert.Equal(t, 1.0, v)
		assert.Equal(t, info.Unit, u)
		assert.True(t, info.Physical.Min <= info.Plausible.Min && info.Plausible.Max <= info.Physical.Max,
			"%s: plausible range must lie inside the physical range", p)
	}
}

func TestFlags(t *testing.T) {
	f := FlagSpike | FlagTimeUnsynced
	assert.Equal(t, []string{"spike", "time_unsynced"}, f.Names())
	assert.Equal(t, "spike,time_unsynced", f.String())
	back, err := ParseFlags(f.Names())
	require.NoError(t, err)
	assert.Equal(t, f, back)
	_, err = ParseFlags([]string{"wobbly"})
	assert.ErrorContains(t, err, "wobbly")
	assert.Len(t, flagNames, int(math.Log2(float64(flagEnd))), "every flag has a name")
}

func FuzzNormalize(f *testing.F) {
	f.Add("pH", 7.0, "pH")
	f.Add("temperature", 77.0, "degF")
	f.Add("EC", 1.5, "mS/cm")
	f.Add("", 0.0, "")
	f.Fuzz(func(t *testing.T, param string, value float64, unit string) {
		p, v, u, err := Normalize(param, value, unit)
		if err != nil {
			return
		}
		info, ok := Info(p)
		if !ok || u != info.Unit {
			t.Fatalf("Normalize(%q, %v, %q) = %q %v %q: not canonical", param, value, unit, p, v, u)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("Normalize returned a non-finite value for %v", value)
		}
	})
}

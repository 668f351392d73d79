package telemetry

import (
	"errors"
	"math"
	"strings"
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
		{"conductivity", "µmhos/cm", 850, Conductivity, 850, "uS/cm"}, // as CPCB prints it
		{"chlorophyll-a", "µg/L", 14, Chla, 14, "ug/L"},
		{"Water Level", "m", 541.25, WaterLevel, 541.25, "m"},
		{"stage", "cm", 250, WaterLevel, 2.5, "m"},
		{"gauge", "ft", 10, WaterLevel, 3.048, "m"},
		{"discharge", "cumecs", 120, Discharge, 120, "m3/s"},
		{"flow", "m³/s", 120, Discharge, 120, "m3/s"},
		{"Discharge", "cusecs", 10000, Discharge, 283.16846592, "m3/s"},
		{"Q", "l/s", 2500, Discharge, 2.5, "m3/s"},
		{"rainfall", "mm", 12.5, Rainfall, 12.5, "mm"},
		{"Rain", "cm", 1.25, Rainfall, 12.5, "mm"},
		{"precipitation", "in", 1, Rainfall, 25.4, "mm"},
		{"Air Temperature", "°C", 31.5, AirTemp, 31.5, "degC"},
		{"air_temp", "degF", 95, AirTemp, 35, "degC"},
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
		{"level in a flow unit", "water_level", "m3/s", 3, ErrUnitMismatch, "discharge"},
		{"rain in degrees", "rainfall", "degC", 3, ErrUnitMismatch, "temp"},
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

func TestContextParams(t *testing.T) {
	for _, p := range Params() {
		want := p == WaterLevel || p == Discharge || p == Rainfall || p == AirTemp
		assert.Equal(t, want, p.Context(), "%s", p)
	}
	for p, unit := range map[Param]string{WaterLevel: "m", Discharge: "m3/s", Rainfall: "mm", AirTemp: "degC"} {
		info, ok := Info(p)
		require.True(t, ok, p)
		assert.Equal(t, unit, info.Unit, "%s (contract unit)", p)
		assert.True(t, info.Physical.Contains(0), "%s: zero is physical", p)
	}
	// A Deccan river's level above sea level, a flood and a cloudburst stay plausible.
	for _, c := range []struct {
		p Param
		v float64
	}{{WaterLevel, 545}, {Discharge, 30000}, {Rainfall, 944}, {AirTemp, 46}} {
		info, _ := Info(c.p)
		assert.True(t, info.Plausible.Contains(c.v), "%s %v plausible", c.p, c.v)
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

// Normalize folds units into a buffer, rune by rune: the same spelling as lower-casing
// the unit without its spaces with the strings package, for any string.
func FuzzAppendFoldUnit(f *testing.F) {
	for _, u := range []string{"mg/L", " MPN/100 mL ", "µS/cm", "ΜS/CM", "°C", "\u00a0NTU\t", "\xff\xfeX", ""} {
		f.Add(u)
	}
	f.Fuzz(func(t *testing.T, u string) {
		want := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(u), " ", ""))
		if got := string(appendFoldUnit(nil, u)); got != want {
			t.Fatalf("appendFoldUnit(%q) = %q, want %q", u, got, want)
		}
	})
}

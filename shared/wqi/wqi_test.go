package wqi_test

import (
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wqi"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// values builds an Input.Values map from parameter/value pairs.
func values(kv ...any) map[telemetry.Param]float64 {
	m := make(map[telemetry.Param]float64, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(telemetry.Param)] = kv[i+1].(float64)
	}
	return m
}

func TestClassify(t *testing.T) {
	tests := []struct {
		wqi             float64
		class, category string
	}{
		{100, "A", "Good to Excellent"},
		{63, "A", "Good to Excellent"},
		{62.999, "B", "Medium to Good"},
		{50, "B", "Medium to Good"},
		{49.999, "C", "Bad"},
		{38, "C", "Bad"},
		{37.999, "D/E", "Bad to Very Bad"},
		{0, "D/E", "Bad to Very Bad"},
		{math.NaN(), "D/E", "Bad to Very Bad"},
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			class, category := wqi.Classify(tt.wqi)
			assert.Equal(t, tt.class, class, "class of %v", tt.wqi)
			assert.Equal(t, tt.category, category, "category of %v", tt.wqi)
		})
	}
}

// The worked example, by hand from science.md §1:
//
//	DO 7.0 mg/L at 25 °C, 1 atm: C* = 8.2635 mg/L, DO% = 100·7/8.2635 = 84.7103
//	  I_DO  = −13.55 + 1.17·84.7103        = 85.5611
//	FC 100:  I_FC  = 97.2 − 26.6·log10(100) = 44.0
//	pH 7.5:  I_pH  = 316.96 − 29.85·7.5     = 93.085
//	BOD 2:   I_BOD = 96.67 − 7·2            = 82.67
//	WQI = 0.31·85.5611 + 0.28·44 + 0.22·93.085 + 0.19·82.67
//	    = 26.5239 + 12.32 + 20.4787 + 15.7073 = 75.0299 → A, Good to Excellent
func TestComputeFull(t *testing.T) {
	r, err := wqi.Compute(wqi.Input{Values: values(
		telemetry.DO, 7.0, telemetry.FC, 100.0, telemetry.PH, 7.5, telemetry.BOD, 2.0)})
	require.NoError(t, err)

	assert.InDelta(t, 75.0299, r.WQI, 0.0001)
	assert.Equal(t, "A", r.Class)
	assert.Equal(t, "Good to Excellent", r.Category)
	assert.InDelta(t, 84.7103, r.DOSaturationPct, 0.0001)
	assert.InDelta(t, 85.5611, r.SubIndices[telemetry.DO], 0.0001)
	assert.InDelta(t, 44.0, r.SubIndices[telemetry.FC], 1e-9)
	assert.InDelta(t, 93.085, r.SubIndices[telemetry.PH], 1e-9)
	assert.InDelta(t, 82.67, r.SubIndices[telemetry.BOD], 1e-9)
	assert.False(t, r.Partial)
	assert.NotNil(t, r.Missing, "missing is empty, never nil")
	assert.Empty(t, r.Missing)
	assert.Equal(t, []telemetry.Param{telemetry.DO, telemetry.FC, telemetry.PH, telemetry.BOD}, r.Used)
	assert.Equal(t, wqi.BensonKrause, r.Method)
	assert.Equal(t, 25.0, r.TempC)
	assert.True(t, r.TempAssumed, "no temperature given: 25 °C assumed and said so")
	assert.Equal(t, 1.0, r.PressureAtm)
}

func TestComputeDOConditions(t *testing.T) {
	// The same 7 mg/L is a different saturation in other conditions; FC, pH, BOD as in
	// TestComputeFull (weighted 12.32 + 20.4787 + 15.7073 = 48.506).
	rest := 0.28*44 + 0.22*93.085 + 0.19*82.67
	tests := []struct {
		name        string
		in          wqi.Input
		wantDOPct   float64
		wantTemp    float64
		tempAssumed bool
	}{
		{
			// Pune, 0.935 atm: C*(25 °C) = 7.7093, DO% = 90.7991.
			name:      "Pune pressure",
			in:        wqi.Input{PressureAtm: 0.935},
			wantDOPct: 90.7991, wantTemp: 25, tempAssumed: true,
		},
		{
			// 30 °C: C* = 7.5588, DO% = 92.6073.
			name:      "measured temperature",
			in:        wqi.Input{Values: values(telemetry.Temp, 30.0)},
			wantDOPct: 92.6073, wantTemp: 30,
		},
		{
			// MPCB: 100·7/6.5 = 107.6923, whatever the temperature.
			name:      "mpcb",
			in:        wqi.Input{Method: wqi.MPCB, Values: values(telemetry.Temp, 30.0)},
			wantDOPct: 107.6923, wantTemp: 30,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if in.Values == nil {
				in.Values = map[telemetry.Param]float64{}
			}
			in.Values[telemetry.DO] = 7
			in.Values[telemetry.FC] = 100
			in.Values[telemetry.PH] = 7.5
			in.Values[telemetry.BOD] = 2
			r, err := wqi.Compute(in)
			require.NoError(t, err)
			assert.InDelta(t, tt.wantDOPct, r.DOSaturationPct, 0.0001)
			iDO, _ := wqi.SubIndex(telemetry.DO, tt.wantDOPct)
			assert.InDelta(t, 0.31*iDO+rest, r.WQI, 0.0001)
			assert.Equal(t, tt.wantTemp, r.TempC)
			assert.Equal(t, tt.tempAssumed, r.TempAssumed)
		})
	}
}

func TestComputePartial(t *testing.T) {
	tests := []struct {
		name    string
		values  map[telemetry.Param]float64
		want    float64
		class   string
		missing []telemetry.Param
		used    []telemetry.Param
	}{
		{
			// (0.31·85.5611 + 0.22·93.085 + 0.19·82.67) / (0.31+0.22+0.19)
			// = 62.7099 / 0.72 = 87.0971
			name:    "fc missing",
			values:  values(telemetry.DO, 7.0, telemetry.PH, 7.5, telemetry.BOD, 2.0),
			want:    87.0971,
			class:   "A",
			missing: []telemetry.Param{telemetry.FC},
			used:    []telemetry.Param{telemetry.DO, telemetry.PH, telemetry.BOD},
		},
		{
			// 0.28·44 / 0.28 = 44 (the lone sub-index)
			name:    "three missing",
			values:  values(telemetry.FC, 100.0),
			want:    44,
			class:   "C",
			missing: []telemetry.Param{telemetry.DO, telemetry.PH, telemetry.BOD},
			used:    []telemetry.Param{telemetry.FC},
		},
		{
			// (0.28·17.4116 + 0.19·26.6) / 0.47 = (4.8752 + 5.054) / 0.47 = 21.1260
			name:    "do and ph missing",
			values:  values(telemetry.BOD, 10.0, telemetry.FC, 999.0),
			want:    21.1260,
			class:   "D/E",
			missing: []telemetry.Param{telemetry.DO, telemetry.PH},
			used:    []telemetry.Param{telemetry.FC, telemetry.BOD},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := wqi.Compute(wqi.Input{Values: tt.values})
			require.NoError(t, err)
			assert.True(t, r.Partial)
			assert.InDelta(t, tt.want, r.WQI, 0.0001)
			assert.Equal(t, tt.class, r.Class)
			assert.Equal(t, tt.missing, r.Missing, "missing, in the order do, fc, ph, bod")
			assert.Equal(t, tt.used, r.Used)
			assert.Len(t, r.SubIndices, len(tt.used))
		})
	}
}

func TestComputeClassOfReportedValue(t *testing.T) {
	// pH 6.1394 alone: I_pH = −142.67 + 33.5·6.1394 = 62.9999, reported as 63.00, so the
	// class is A: the reported value and its class must agree.
	r, err := wqi.Compute(wqi.Input{Values: values(telemetry.PH, 6.1394)})
	require.NoError(t, err)
	assert.Less(t, r.WQI, 63.0)
	assert.Equal(t, "A", r.Class)
	b, err := json.Marshal(r)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"wqi":63,`)
}

func TestComputeOtherParamsIgnored(t *testing.T) {
	r, err := wqi.Compute(wqi.Input{Values: values(telemetry.PH, 7.5,
		telemetry.Turbidity, math.NaN(), telemetry.TDS, -1.0)})
	require.NoError(t, err)
	assert.Equal(t, []telemetry.Param{telemetry.PH}, r.Used)
}

func TestComputeErrors(t *testing.T) {
	full := func(kv ...any) map[telemetry.Param]float64 {
		m := values(telemetry.DO, 7.0, telemetry.FC, 100.0, telemetry.PH, 7.5, telemetry.BOD, 2.0)
		for k, v := range values(kv...) {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name     string
		in       wqi.Input
		target   error
		mentions []string
	}{
		{"nothing", wqi.Input{}, wqi.ErrNoInputs, nil},
		{"only temperature", wqi.Input{Values: values(telemetry.Temp, 20.0)}, wqi.ErrNoInputs, nil},
		{"NaN do", wqi.Input{Values: full(telemetry.DO, math.NaN())}, telemetry.ErrNotFinite,
			[]string{"do", "NaN"}},
		{"Inf fc", wqi.Input{Values: full(telemetry.FC, math.Inf(1))}, telemetry.ErrNotFinite,
			[]string{"fc", "Inf"}},
		{"NaN ph", wqi.Input{Values: full(telemetry.PH, math.NaN())}, telemetry.ErrNotFinite,
			[]string{"ph"}},
		{"-Inf bod", wqi.Input{Values: full(telemetry.BOD, math.Inf(-1))}, telemetry.ErrNotFinite,
			[]string{"bod"}},
		{"NaN temp", wqi.Input{Values: full(telemetry.Temp, math.NaN())}, telemetry.ErrNotFinite,
			[]string{"temp"}},
		{"NaN pressure", wqi.Input{Values: full(), PressureAtm: math.NaN()}, telemetry.ErrNotFinite,
			[]string{"pressure"}},
		{"negative do", wqi.Input{Values: full(telemetry.DO, -0.1)}, wqi.ErrOutOfDomain,
			[]string{"do", "-0.1"}},
		{"pH above 14", wqi.Input{Values: full(telemetry.PH, 14.5)}, wqi.ErrOutOfDomain,
			[]string{"ph", "14.5"}},
		{"negative fc", wqi.Input{Values: full(telemetry.FC, -1.0)}, wqi.ErrOutOfDomain,
			[]string{"fc"}},
		{"huge bod", wqi.Input{Values: full(telemetry.BOD, 1e6)}, wqi.ErrOutOfDomain,
			[]string{"bod"}},
		{"hot water for benson-krause", wqi.Input{Values: full(telemetry.Temp, 55.0)},
			wqi.ErrOutOfDomain, []string{"temp", "55"}},
		{"pressure too low", wqi.Input{Values: full(), PressureAtm: 0.3}, wqi.ErrOutOfDomain,
			[]string{"pressure", "0.3"}},
		{"negative pressure", wqi.Input{Values: full(), PressureAtm: -1}, wqi.ErrOutOfDomain,
			[]string{"pressure"}},
		{"unknown method", wqi.Input{Values: full(), Method: "cpcb"}, wqi.ErrUnknownDOMethod,
			[]string{"cpcb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wqi.Compute(tt.in)
			require.ErrorIs(t, err, tt.target)
			for _, s := range tt.mentions {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}

func TestComputeReportsEveryProblem(t *testing.T) {
	_, err := wqi.Compute(wqi.Input{Values: values(telemetry.DO, math.NaN(), telemetry.PH, 20.0)})
	require.ErrorIs(t, err, telemetry.ErrNotFinite)
	require.ErrorIs(t, err, wqi.ErrOutOfDomain)
	assert.Contains(t, err.Error(), "do")
	assert.Contains(t, err.Error(), "ph")
}

func TestComputeTemperatureOnlyCheckedWhenUsed(t *testing.T) {
	// 55 °C is outside the Benson & Krause tables, but MPCB and an index without DO do not
	// use the temperature at all.
	tests := []struct {
		name string
		in   wqi.Input
	}{
		{"mpcb", wqi.Input{Method: wqi.MPCB, Values: values(telemetry.DO, 6.5, telemetry.Temp, 55.0)}},
		{"no DO", wqi.Input{Values: values(telemetry.PH, 7.0, telemetry.Temp, 55.0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := wqi.Compute(tt.in)
			require.NoError(t, err)
			assert.Equal(t, 55.0, r.TempC)
		})
	}
}

func TestComputeFCBelowOne(t *testing.T) {
	r, err := wqi.Compute(wqi.Input{Values: values(telemetry.FC, 0.0)})
	require.NoError(t, err)
	assert.InDelta(t, 97.2, r.WQI, 1e-9, "FC 0 counts as 1")
}

func TestResultJSON(t *testing.T) {
	cases := []struct {
		Name  string
		Input wqi.Input
	}{
		{"full", wqi.Input{Values: values(
			telemetry.DO, 7.0, telemetry.FC, 100.0, telemetry.PH, 7.5, telemetry.BOD, 2.0)}},
		{"pune-measured-temp", wqi.Input{PressureAtm: wqi.PressureAtElevation(560), Values: values(
			telemetry.DO, 6.2, telemetry.FC, 2400.0, telemetry.PH, 8.1, telemetry.BOD, 4.5,
			telemetry.Temp, 28.4)}},
		{"mpcb", wqi.Input{Method: wqi.MPCB, Values: values(
			telemetry.DO, 5.1, telemetry.FC, 35000.0, telemetry.PH, 7.2, telemetry.BOD, 12.0)}},
		{"partial-no-do", wqi.Input{Values: values(
			telemetry.FC, 460.0, telemetry.PH, 7.9, telemetry.BOD, 3.1)}},
		{"partial-do-only", wqi.Input{Values: values(telemetry.DO, 2.0, telemetry.Temp, 31.0)}},
	}
	type named struct {
		Name   string     `json:"name"`
		Result wqi.Result `json:"result"`
	}
	var got []named
	for _, c := range cases {
		r, err := wqi.Compute(c.Input)
		require.NoError(t, err, c.Name)
		got = append(got, named{Name: c.Name, Result: r})
	}
	b, err := json.MarshalIndent(got, "", "  ")
	require.NoError(t, err)
	b = append(b, '\n')

	golden := filepath.Join("testdata", "results.golden.json")
	if *update {
		require.NoError(t, os.WriteFile(golden, b, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test -update to create the golden file")
	assert.Equal(t, string(want), string(b), "JSON differs from %s (go test -update rewrites it)", golden)
}

func TestResultJSONShape(t *testing.T) {
	full, err := wqi.Compute(wqi.Input{Values: values(
		telemetry.DO, 7.0, telemetry.FC, 100.0, telemetry.PH, 7.5, telemetry.BOD, 2.0)})
	require.NoError(t, err)
	noDO, err := wqi.Compute(wqi.Input{Values: values(telemetry.PH, 7.5)})
	require.NoError(t, err)

	decode := func(r wqi.Result) map[string]any {
		t.Helper()
		b, err := json.Marshal(r)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		return m
	}

	m := decode(full)
	assert.Equal(t, 75.03, m["wqi"], "wqi rounded to 2 decimals")
	assert.Equal(t, 84.7, m["do_saturation_pct"], "saturation rounded to 1 decimal")
	assert.Equal(t, map[string]any{"do": 85.56, "fc": 44.0, "ph": 93.09, "bod": 82.67},
		m["sub_indices"], "sub-indices rounded to 2 decimals, 93.085 up as written")
	assert.Equal(t, []any{}, m["missing"], "missing is [] not null")
	assert.Equal(t, false, m["partial"])
	assert.Equal(t, "A", m["class"])
	assert.Equal(t, "Good to Excellent", m["category"])
	assert.Equal(t, "benson-krause", m["do_method"])
	assert.Equal(t, 25.0, m["temp_c"])
	assert.Equal(t, true, m["temp_assumed"])
	assert.Equal(t, 1.0, m["pressure_atm"])

	m = decode(noDO)
	assert.NotContains(t, m, "do_saturation_pct", "omitted when DO is missing")
	assert.Equal(t, map[string]any{"ph": 93.09}, m["sub_indices"])
	assert.Equal(t, []any{"do", "fc", "bod"}, m["missing"])

	// The zero Result still has the contract's arrays.
	m = decode(wqi.Result{})
	assert.Equal(t, []any{}, m["missing"])
	assert.Equal(t, []any{}, m["used"])
}

func TestResultJSONRoundTrip(t *testing.T) {
	r, err := wqi.Compute(wqi.Input{PressureAtm: 0.935, Values: values(
		telemetry.DO, 6.2, telemetry.PH, 8.1, telemetry.BOD, 4.5, telemetry.Temp, 28.4)})
	require.NoError(t, err)
	b, err := json.Marshal(r)
	require.NoError(t, err)

	var back wqi.Result
	require.NoError(t, json.Unmarshal(b, &back))
	assert.InDelta(t, r.WQI, back.WQI, 0.0051)
	assert.Equal(t, r.Class, back.Class)
	assert.Equal(t, r.Category, back.Category)
	assert.Equal(t, r.Partial, back.Partial)
	assert.Equal(t, r.Missing, back.Missing)
	assert.Equal(t, r.Used, back.Used)
	assert.Equal(t, r.Method, back.Method)
	assert.Equal(t, r.TempC, back.TempC)
	assert.Equal(t, r.TempAssumed, back.TempAssumed)
	assert.InDelta(t, r.PressureAtm, back.PressureAtm, 0.00005)
	assert.InDelta(t, r.DOSaturationPct, back.DOSaturationPct, 0.05)
	require.Len(t, back.SubIndices, len(r.SubIndices))
	for p, v := range r.SubIndices {
		assert.InDelta(t, v, back.SubIndices[p], 0.0051, "sub-index %s", p)
	}

	again, err := json.Marshal(back)
	require.NoError(t, err)
	assert.JSONEq(t, string(b), string(again), "decoding and encoding again changes nothing")
}

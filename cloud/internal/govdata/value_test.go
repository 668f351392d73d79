package govdata

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseValue(t *testing.T) {
	tests := []struct {
		raw  string
		want float64
		kind string
	}{
		{`"961.61"`, 961.61, ""},
		{`961.61`, 961.61, ""},
		{`" 7.42 "`, 7.42, ""},
		{`-0.5`, -0.5, ""},
		{`"+3"`, 3, ""},
		{`".5"`, 0.5, ""},
		{`"1.2e5"`, 1.2e5, ""},
		{`"1,20,000"`, 120000, ""}, // Indian grouping
		{`"120,000"`, 120000, ""},
		{`"1,234,567.5"`, 1234567.5, ""},
		{`0`, 0, ""}, // a measured zero stays a zero
		{`null`, 0, MissingNull},
		{``, 0, MissingNull},
		{`""`, 0, MissingEmpty},
		{`"   "`, 0, MissingEmpty},
		{`"NA"`, 0, MissingNA},
		{`"na"`, 0, MissingNA},
		{`"N/A"`, 0, MissingNA},
		{`"N.A."`, 0, MissingNA},
		{`"NAN"`, 0, MissingNaN},
		{`"NaN"`, 0, MissingNaN},
		{`"-"`, 0, MissingDash},
		{`"--"`, 0, MissingDash},
		{`"BDL"`, 0, BelowDetection},
		{`"bdl"`, 0, BelowDetection},
		{`"BDL (<0.5)"`, 0, BelowDetection},
		{`"<2"`, 0, BelowDetection},
		{`"< 0.5"`, 0, BelowDetection},
		{`"TRACE"`, 0, BelowDetection},
		{`">1600"`, 0, AboveRange},
		{`">= 2400"`, 0, AboveRange},
		{`"<abc"`, 0, Unparseable},
		{`"7,2"`, 0, Unparseable}, // a decimal comma: its meaning is a guess
		{`"Inf"`, 0, Unparseable},
		{`"0x1p-2"`, 0, Unparseable},
		{`"1_000"`, 0, Unparseable},
		{`"high"`, 0, Unparseable},
		{`true`, 0, Unparseable},
		{`{"v":1}`, 0, Unparseable},
		{`[1]`, 0, Unparseable},
		{`"1e999"`, 0, Unparseable},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			v, kind := ParseValue(json.RawMessage(tt.raw))
			assert.Equal(t, tt.kind, kind)
			assert.Equal(t, tt.want, v)
		})
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		s, layout string
		want      time.Time
	}{
		{"12-03-2024", "02-01-2006", time.Date(2024, 3, 12, 0, 0, 0, 0, IST)},
		{"2022", YearFormat, time.Date(2022, 1, 1, 0, 0, 0, 0, IST)},
		{"2025-07-21 08:00:00.0", "2006-01-02 15:04:05", time.Date(2025, 7, 21, 8, 0, 0, 0, IST)},
		{"2025-07-21T08:00:00Z", "", time.Date(2025, 7, 21, 8, 0, 0, 0, time.UTC)},
		{"2025-07-21T08:00:00+05:30", "", time.Date(2025, 7, 21, 8, 0, 0, 0, IST)},
		{"2025-07-21T08:00:00", "", time.Date(2025, 7, 21, 8, 0, 0, 0, IST)},
		{"2025-07-21", "", time.Date(2025, 7, 21, 0, 0, 0, 0, IST)},
	}
	for _, tt := range tests {
		got, err := parseTime(tt.s, tt.layout, IST)
		require.NoError(t, err, tt.s)
		assert.True(t, tt.want.Equal(got), "%s: got %v, want %v", tt.s, got, tt.want)
	}
	_, err := parseTime("31-04-2024", "02-01-2006", IST)
	assert.ErrorContains(t, err, `"31-04-2024"`)
	_, err = parseTime("yesterday", "", IST)
	assert.Error(t, err)
}

func TestMappingChecks(t *testing.T) {
	_, err := Mapping{}.compile()
	require.Error(t, err)
	for _, want := range []string{"station_field", "time_field", "params", "stations"} {
		assert.ErrorContains(t, err, want)
	}
	_, err = Mapping{StationField: "s", TimeField: "t", TimeFormat: "01-02",
		Params:   map[string]string{"ph": "ph", "pH": "ph2", "salinity": "sal", "do": ""},
		Stations: map[string]string{"1": "not a station id"}}.compile()
	require.Error(t, err)
	for _, want := range []string{`"01-02" has no year`, "same parameter", `"salinity"`, "do has no field",
		`"not a station id"`} {
		assert.ErrorContains(t, err, want)
	}
	_, err = Mapping{StationField: "s", TimeField: "t",
		Params:   map[string]string{"ph": "ph"},
		Units:    map[string]string{"ph": "mg/L", "bod": "mg/L"},
		Stations: map[string]string{"1": "MH-PUNE-001"}}.compile()
	require.Error(t, err)
	assert.ErrorContains(t, err, `units: ph: unit does not fit parameter: "mg/L"`)
	assert.ErrorContains(t, err, "units: bod is not in params")
}

func TestRecordLookupReachesIntoObjects(t *testing.T) {
	var r Record
	require.NoError(t, json.Unmarshal([]byte(`{"id":{"stationCode":"032-X","dataTime":"2025-07-21T08:00:00"},"dataValue":541.2,"a.b":1}`), &r))
	v, ok := r.lookup("id.stationCode")
	require.True(t, ok)
	assert.JSONEq(t, `"032-X"`, string(v))
	v, ok = r.lookup("a.b")
	require.True(t, ok, "a field whose name has a dot is found as such")
	assert.Equal(t, "1", string(v))
	_, ok = r.lookup("dataValue.x")
	assert.False(t, ok)
}

package samples_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/samples"
	"github.com/purehealth/purehealth/shared/telemetry"
)

var now = time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)

func TestParseLabSheet(t *testing.T) {
	f, err := os.Open("testdata/mpcb-pune-2025-11.csv")
	require.NoError(t, err)
	defer f.Close()
	res, err := samples.Parse(f, samples.CSV, samples.Limits{}, now)
	require.NoError(t, err)
	require.Len(t, res.Samples, 5)
	at := time.Date(2025, 11, 1, 4, 0, 0, 0, time.UTC)
	bod := res.Samples[0]
	assert.Equal(t, telemetry.BOD, bod.Param)
	assert.Equal(t, 4.2, bod.Value)
	assert.Equal(t, "mg/L", bod.Unit)
	assert.Equal(t, at, bod.Time, "+05:30 read as such, stored in UTC")
	assert.Equal(t, "PUN-1101-03", bod.SampleID)
	assert.Equal(t, "MPCB Pune", bod.Lab)
	assert.Equal(t, "APHA 5210 B", bod.Method)
	assert.Equal(t, telemetry.Good, bod.Quality)
	assert.Equal(t, telemetry.FC, res.Samples[1].Param, "aliases are normalized")
	assert.Equal(t, "MPN/100mL", res.Samples[1].Unit)
	assert.Equal(t, telemetry.Temp, res.Samples[3].Param)
	assert.Equal(t, 26.0, res.Samples[3].Value, "78.8 °F is 26 °C")
	assert.Equal(t, 610.0, res.Samples[4].Value, "0.61 mS/cm is 610 uS/cm")
	assert.Equal(t, []int{1, 2, 3, 4, 5}, res.Rows)
}

func TestParseJSON(t *testing.T) {
	body := `{"samples": [
		{"station_id": "MH-NASHIK-001", "param": "bod", "value": 12.5, "unit": "mg/L", "sampled_at": "2025-11-02T10:00:00+05:30", "sample_id": "N-1"},
		{"station_id": "MH-NASHIK-001", "param": "ph", "value": 12.2, "unit": "", "sampled_at": "2025-11-02T10:00+05:30"},
		{"station_id": "MH-NASHIK-001", "param": "bod", "value": 12.5, "unit": "mg/L", "sampled_at": "2025-11-02T10:00:00+05:30", "sample_id": "N-1"}
	]}`
	res, err := samples.Parse(strings.NewReader(body), samples.JSON, samples.Limits{}, now)
	require.NoError(t, err)
	require.Len(t, res.Samples, 2)
	assert.Equal(t, 1, res.Duplicates, "the same sample twice in one body is stored once")
	assert.Equal(t, telemetry.Suspect, res.Samples[1].Quality, "pH 12.2 is possible but not plausible for a river")
	assert.True(t, res.Samples[1].Flags.Has(telemetry.FlagImplausible))
}

func TestParseErrorsNameRowAndColumn(t *testing.T) {
	const head = "station_id,param,value,unit,sampled_at\n"
	const ok = "MH-PUNE-001,bod,4,mg/L,2025-11-01T09:30+05:30\n"
	tests := []struct {
		name   string
		format samples.Format
		body   string
		row    int
		column string
	}{
		{"unknown column", samples.CSV, "station_id,param,value,unit,sampled_at,colour\n", 0, "colour"},
		{"missing column", samples.CSV, "station_id,param,value,sampled_at\n" + ok, 0, "unit"},
		{"empty body", samples.CSV, "", 0, "header"},
		{"unknown station id form", samples.CSV, head + ok + "MH PUNE,bod,4,mg/L,2025-11-01T09:30+05:30\n", 2, "station_id"},
		{"unknown parameter", samples.CSV, head + ok + "MH-PUNE-001,mercury,4,mg/L,2025-11-01T09:30+05:30\n", 2, "param"},
		{"unit of another parameter", samples.CSV, head + "MH-PUNE-001,bod,4,NTU,2025-11-01T09:30+05:30\n", 1, "unit"},
		{"not a number", samples.CSV, head + "MH-PUNE-001,bod,four,mg/L,2025-11-01T09:30+05:30\n", 1, "value"},
		{"below detection", samples.CSV, head + "MH-PUNE-001,bod,<2,mg/L,2025-11-01T09:30+05:30\n", 1, "value"},
		{"NaN", samples.CSV, head + "MH-PUNE-001,bod,NaN,mg/L,2025-11-01T09:30+05:30\n", 1, "value"},
		{"physically impossible", samples.CSV, head + "MH-PUNE-001,ph,15,pH,2025-11-01T09:30+05:30\n", 1, "value"},
		{"time without zone", samples.CSV, head + "MH-PUNE-001,bod,4,mg/L,2025-11-01 09:30\n", 1, "sampled_at"},
		{"in the future", samples.CSV, head + "MH-PUNE-001,bod,4,mg/L,2026-11-01T09:30+05:30\n", 1, "sampled_at"},
		{"short row", samples.CSV, head + "MH-PUNE-001,bod,4\n", 1, "row"},
		{"missing value", samples.CSV, head + "MH-PUNE-001,bod,,mg/L,2025-11-01T09:30+05:30\n", 1, "value"},
		{"lab name with a control character", samples.CSV, "station_id,param,value,unit,sampled_at,lab\n" +
			"MH-PUNE-001,bod,4,mg/L,2025-11-01T09:30+05:30,\"MPCB\x07\"\n", 1, "lab"},
		{"conflicting repeat", samples.CSV, head + ok + "MH-PUNE-001,bod,5,mg/L,2025-11-01T09:30+05:30\n", 2, "value"},
		{"json: not an object", samples.JSON, `[1]`, 0, "samples"},
		{"json: unknown key", samples.JSON, `{"rows": []}`, 0, "samples"},
		{"json: unknown field", samples.JSON, `{"samples": [{"station_id": "MH-PUNE-001", "colour": 1}]}`, 1, "row"},
		{"json: value as text", samples.JSON, `{"samples": [{"station_id": "MH-PUNE-001", "param": "bod", "value": "4", "unit": "mg/L", "sampled_at": "2025-11-01T09:30+05:30"}]}`, 1, "value"},
		{"json: missing time", samples.JSON, `{"samples": [{"station_id": "MH-PUNE-001", "param": "bod", "value": 4, "unit": "mg/L"}]}`, 1, "sampled_at"},
		{"json: trailing data", samples.JSON, `{"samples": []} {}`, 0, "samples"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := samples.Parse(strings.NewReader(tc.body), tc.format, samples.Limits{}, now)
			var re *samples.RowError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tc.row, re.Row, re.Error())
			assert.Equal(t, tc.column, re.Column, re.Error())
			assert.NotEmpty(t, re.Msg)
		})
	}
}

func TestParseLimits(t *testing.T) {
	body := "station_id,param,value,unit,sampled_at\n" +
		strings.Repeat("MH-PUNE-001,bod,4,mg/L,2025-11-01T09:30+05:30\n", 11)
	_, err := samples.Parse(strings.NewReader(body), samples.CSV, samples.Limits{MaxRows: 10}, now)
	assert.ErrorIs(t, err, samples.ErrTooLarge)
	_, err = samples.Parse(strings.NewReader(body), samples.CSV, samples.Limits{MaxBytes: 100}, now)
	assert.ErrorIs(t, err, samples.ErrTooLarge)
	json := `{"samples": [` + strings.Repeat(`{"station_id": "MH-PUNE-001"},`, 10) + `{}]}`
	_, err = samples.Parse(strings.NewReader(json), samples.JSON, samples.Limits{MaxRows: 10}, now)
	assert.ErrorIs(t, err, samples.ErrTooLarge, "the row count is checked before the eleventh row is decoded")
}

func TestFormatOf(t *testing.T) {
	for ct, want := range map[string]samples.Format{"text/csv": samples.CSV, "text/csv; charset=utf-8": samples.CSV,
		"application/json": samples.JSON} {
		f, err := samples.FormatOf(ct)
		require.NoError(t, err, ct)
		assert.Equal(t, want, f, ct)
	}
	_, err := samples.FormatOf("application/xml")
	assert.ErrorIs(t, err, samples.ErrContentType)
}

// FuzzParse: any body, in either format, gives samples or an error, never a panic; what
// it accepts is normalized.
func FuzzParse(f *testing.F) {
	seed, err := os.ReadFile("testdata/mpcb-pune-2025-11.csv")
	require.NoError(f, err)
	f.Add(seed, false)
	f.Add([]byte("station_id,param,value,unit,sampled_at\nMH-PUNE-001,bod,\"4\n\",mg/L,2025-11-01T09:30+05:30\n"), false)
	f.Add([]byte(`{"samples": [{"station_id": "MH-PUNE-001", "param": "fc", "value": 1e3, "unit": "CFU/100mL", "sampled_at": "2025-11-01T09:30Z", "lab": "x"}]}`), true)
	f.Add([]byte(`{"samples": [{}], "samples": []}`), true)
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool) {
		format := samples.CSV
		if isJSON {
			format = samples.JSON
		}
		res, err := samples.Parse(strings.NewReader(string(body)), format, samples.Limits{MaxBytes: 1 << 16, MaxRows: 100}, now)
		if err != nil {
			return
		}
		require.Len(t, res.Rows, len(res.Samples))
		for _, s := range res.Samples {
			info, ok := telemetry.Info(s.Param)
			require.True(t, ok)
			require.Equal(t, info.Unit, s.Unit)
			require.True(t, info.Physical.Contains(s.Value))
			require.True(t, telemetry.ValidStationID(s.Station))
			require.NotEqual(t, telemetry.Bad, s.Quality)
		}
	})
}

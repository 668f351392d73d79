package store

import (
	"encoding/json"
	"math"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/wire"
)

// apiReading is the query API's Reading of a station's reading stored as r.
func apiReading(r wire.Reading) Reading {
	out := Reading{Seq: r.Seq, Time: dbTime(r.Time), Param: r.Param, Value: r.Value, Unit: r.Unit, Quality: r.Quality,
		Source: r.Source, Sensor: r.Sensor, Flags: r.Flags}
	out.SampleID, out.Lab, out.Method = r.SampleID, r.Lab, r.Method
	return out
}

func TestAppendReadingJSONIsWhatGoEncodes(t *testing.T) {
	texts := []string{"plain", "", `<b>&"quoted" \back\slash`, "tab\tnew\nline\r\b\f\x01\x1f\x7f",
		"नदी 🌊 Ωμέγα", "line\u2028para\u2029", `{"json": [1]}`, "bad \xff utf-8 \xe2\x80"}
	values := []float64{0, math.Copysign(0, -1), 7.2, -123.456, 0.1 + 0.2, 1e-6, 9.999999999999999e-7, 1e-7,
		5e-324, 1e20, 1e21, 7e22, -1.5e300, math.MaxFloat64}
	base := time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)
	for i, v := range values {
		r := wire.Reading{Seq: uint64(i) * 1e15, Time: base.Add(time.Duration(i) * 1234567 * time.Nanosecond), Param: "ph",
			Value: v, Unit: texts[i%len(texts)], Quality: "good", Source: "sensor", Sensor: texts[(i+1)%len(texts)]}
		if i%2 == 1 {
			r.Flags = []string{"spike", texts[(i+2)%len(texts)]}
		}
		if i%3 == 2 {
			r.Source, r.SampleID, r.Lab, r.Method = "manual", texts[(i+3)%len(texts)], texts[(i+4)%len(texts)], "APHA 5210 B"
		}
		want, err := json.Marshal(apiReading(r))
		require.NoError(t, err)
		assert.Equal(t, string(want), string(appendReadingJSON(nil, &r, dbTime(r.Time))), "reading %d", i)
	}
}

// FuzzReadingJSON holds appendReadingJSON to encoding/json, and splitReadings to
// reading back what it wrote: the elements and the readings' times.
func FuzzReadingJSON(f *testing.F) {
	f.Add("ph-1", "pH", 7.2, int64(0), uint64(1), true)
	f.Add(`<b>&"x"\`, "µS/cm", 1e-7, int64(123456789), uint64(1<<62), false)
	f.Add("tab\t\x01\u2028🌊\xff", "", -1.5e300, int64(-1), uint64(0), true)
	f.Add("{\"a\":[1,2]},", "]", 7e22, int64(1e18), uint64(42), false)
	f.Fuzz(func(t *testing.T, text, unit string, value float64, micros int64, seq uint64, flagged bool) {
		if math.IsNaN(value) || math.IsInf(value, 0) {
			t.Skip("not a number JSON can carry")
		}
		const span = int64(9998*365*24*3600) * 1e6 // years 1 to 9999
		at := time.UnixMicro(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro() + (micros%span+span)%span).UTC()
		r := wire.Reading{Seq: seq, Time: at, Param: "do", Value: value, Unit: unit, Quality: "suspect", Source: "sensor",
			Sensor: text, SampleID: unit, Lab: text}
		if flagged {
			r.Flags = []string{text, "spike"}
		}
		want, err := json.Marshal(apiReading(r))
		require.NoError(t, err)
		one := appendReadingJSON(nil, &r, at)
		require.Equal(t, string(want), string(one))
		require.True(t, utf8.Valid(one))

		data := append(append(append(append([]byte{'['}, one...), ','), one...), ']')
		elems, times, err := splitReadings(data)
		require.NoError(t, err)
		require.Len(t, elems, 2)
		for i := range elems {
			assert.Equal(t, string(one), string(elems[i]))
			assert.True(t, at.Equal(times[i]), "time %d: %v, want %v", i, times[i], at)
		}
	})
}

func TestSplitReadings(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		want  []string
		times []string
		err   bool
	}{
		{"empty", `[]`, []string{}, []string{}, false},
		{"as written", `[{"seq":1,"time":"2025-11-13T12:00:00Z","sensor":"a,b]"},{"seq":2,"time":"2025-11-13T12:00:01.5Z","x":[1,{"y":"\""}]}]`,
			[]string{`{"seq":1,"time":"2025-11-13T12:00:00Z","sensor":"a,b]"}`, `{"seq":2,"time":"2025-11-13T12:00:01.5Z","x":[1,{"y":"\""}]}`},
			[]string{"2025-11-13T12:00:00Z", "2025-11-13T12:00:01.5Z"}, false},
		{"with whitespace and another order: decoded", "[ {\"time\": \"2025-11-13T12:00:00Z\", \"seq\": 1} ]",
			[]string{`{"time": "2025-11-13T12:00:00Z", "seq": 1}`}, []string{"2025-11-13T12:00:00Z"}, false},
		{"not an array", `{"seq":1}`, nil, nil, true},
		{"a trailing comma", `[{"seq":1,"time":"2025-11-13T12:00:00Z"},]`, nil, nil, true},
		{"no time", `[{"seq":1}]`, []string{`{"seq":1}`}, []string{"0001-01-01T00:00:00Z"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			elems, times, err := splitReadings([]byte(tt.data))
			if tt.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			got := make([]string, len(elems))
			for i, e := range elems {
				got[i] = string(e)
			}
			assert.Equal(t, tt.want, got)
			gotTimes := make([]string, len(times))
			for i, at := range times {
				gotTimes[i] = at.Format(time.RFC3339Nano)
			}
			assert.Equal(t, tt.times, gotTimes)
		})
	}
}

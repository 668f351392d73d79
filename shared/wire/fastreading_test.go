package wire

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkParseReading holds parseReading to encoding/json on raw, valid JSON or not: when it
// takes a record, json.Unmarshal takes it too and makes the very same Reading of it.
func checkParseReading(t *testing.T, raw []byte) (taken bool) {
	t.Helper()
	var in interner
	var fast Reading
	if !parseReading(raw, &fast, &in) {
		return false
	}
	var slow Reading
	require.NoError(t, json.Unmarshal(raw, &slow), "parseReading took %s, which encoding/json refuses", raw)
	require.Equal(t, slow, fast, "%s", raw)
	return true
}

func TestParseReading(t *testing.T) {
	tests := []struct {
		name  string
		raw   string
		taken bool
	}{
		{"what the agent writes", `{"seq":7,"time":"2026-07-01T10:00:00Z","sensor":"do-1","param":"do","value":2,"unit":"mg/L","quality":"good","source":"sensor","flags":["spike"]}`, true},
		{"a lab sample", `{"seq":8,"time":"2026-07-01T10:00:00.123456+05:30","sensor":"lab","param":"bod","value":3.1e-1,"unit":"mg/L","quality":"good","source":"manual","sample_id":"S-1","lab":"नदी lab","method":"APHA 5210 B"}`, true},
		{"whitespace and another order", " {\n \"value\" : -0 , \"seq\":1, \"flags\": [ ] } ", true},
		{"an empty object", `{}`, true},
		{"a key in capitals: encoding/json folds case", `{"Seq":1}`, false},
		{"a key twice: the last wins there", `{"seq":1,"seq":2}`, false},
		{"an unknown key", `{"seq":1,"extra":true}`, false},
		{"null", `{"seq":1,"sensor":null}`, false},
		{"an escape", `{"sensor":"a\u0062"}`, false},
		{"invalid UTF-8", "{\"sensor\":\"a\xffb\"}", false},
		{"a seq that is not an integer", `{"seq":1.5}`, false},
		{"a negative seq", `{"seq":-1}`, false},
		{"a seq beyond uint64", `{"seq":18446744073709551616}`, false},
		{"a value beyond float64", `{"value":1e400}`, false},
		{"a time that does not parse", `{"time":"yesterday"}`, false},
		{"a string for a number", `{"value":"7"}`, false},
		{"a number in flags", `{"flags":[1]}`, false},
		{"not an object", `[1]`, false},
		// The stream hands over a record's bytes unchecked.
		{"a plus sign", `{"value":+1}`, false},
		{"a leading zero", `{"seq":01}`, false},
		{"no digit before the point", `{"value":.5}`, false},
		{"no digit after the point", `{"value":1.}`, false},
		{"no digit in the exponent", `{"value":1e+}`, false},
		{"a trailing comma", `{"seq":1,}`, false},
		{"a missing comma", `{"seq":1 "value":2}`, false},
		{"a trailing comma in flags", `{"flags":["spike",]}`, false},
		{"an unterminated string", `{"sensor":"a}`, false},
		{"a control character", "{\"sensor\":\"a\tb\"}", false},
		{"a brace too many", `{"seq":1}}`, false},
		{"no closing brace", `{"seq":1`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.taken, checkParseReading(t, []byte(tt.raw)))
		})
	}
}

// FuzzParseReading: whatever record parseReading takes, encoding/json makes the same of it.
func FuzzParseReading(f *testing.F) {
	f.Add([]byte(`{"seq":7,"time":"2026-07-01T10:00:00Z","sensor":"do-1","param":"do","value":2,"unit":"mg/L","quality":"good","source":"sensor","flags":["spike","time_unsynced"]}`))
	f.Add([]byte(`{"seq":8,"time":"2026-07-01T10:00:00.5-01:00","value":-1.5e-7,"sample_id":"é","lab":"","method":"m"}`))
	f.Add([]byte(`{"seq":0,"flags":[],"value":1E+2}`))
	f.Add([]byte(`{"seq":01,"value":+1.}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkParseReading(t, raw)
	})
}

// BenchmarkDecodeReadings decodes a gzip batch of 2000 readings as an agent sends them:
// the cloud's share of a reading's cost before the database.
// Run: go test -run '^$' -bench DecodeReadings ./shared/wire/
func BenchmarkDecodeReadings(b *testing.B) {
	const n = 2000
	batch := &Batch{V: Version, Station: "MH-PUNE-001", Agent: "v1", SentAt: t0}
	params := []struct{ p, unit string }{{"ph", "pH"}, {"do", "mg/L"}, {"temp", "degC"}, {"tds", "mg/L"}}
	for i := range n {
		p := params[i%len(params)]
		batch.Readings = append(batch.Readings, Reading{Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Second),
			Sensor: p.p + "-1", Param: p.p, Value: 7 + float64(i%100)/37, Unit: p.unit, Quality: "good", Source: "sensor"})
	}
	body, err := Encode(batch)
	require.NoError(b, err)
	for b.Loop() {
		got, err := Decode(bytes.NewReader(body), true)
		if err != nil {
			b.Fatal(err)
		}
		got.Release() // as the cloud does once the batch is stored
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n)/1000, "µs/reading")
}

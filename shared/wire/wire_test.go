package wire

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/telemetry"
)

var t0 = time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)

func sample() *Batch {
	v, lim := 2.0, 5.0
	return &Batch{
		Station: "MH-PUNE-001", Agent: "v1", SentAt: t0,
		Readings: []Reading{FromReading(telemetry.Reading{Seq: 7, Time: t0, Sensor: "do-1", Param: telemetry.DO,
			Value: 2, Unit: "mg/L", Quality: telemetry.Good, Source: telemetry.SourceSensor, Flags: telemetry.FlagSpike})},
		Alerts: []AlertEvent{{Seq: 1, Transition: "opened", Time: t0, Record: alert.Record{ID: 3, Rule: "threshold",
			Key: "k", Param: "do", Severity: alert.Warning, State: alert.Active, OpenedAt: t0, Message: "DO low",
			Value: &v, Limit: &lim}}},
		WQI: []WQIPoint{{Seq: 4, Time: t0, WQI: 41.2, Class: "C", Category: "Bad", Missing: []string{},
			SubIndices: map[string]float64{"do": 30}}},
	}
}

func TestRoundTrip(t *testing.T) {
	in := sample()
	data, err := Encode(in)
	require.NoError(t, err)
	out, err := Decode(bytes.NewReader(data), true)
	require.NoError(t, err)
	assert.Equal(t, in, out)
	assert.Equal(t, []string{"spike"}, out.Readings[0].Flags)
}

// TestReleaseThenDecode: a batch decoded into the readings array of a released one holds
// its own readings and nothing of the other's; one with no readings has no list.
func TestReleaseThenDecode(t *testing.T) {
	many := sample()
	for i := range 50 {
		r := many.Readings[0]
		r.Seq, r.Sensor, r.Flags = uint64(100+i), "many-1", []string{"spike", "flatline"}
		many.Readings = append(many.Readings, r)
	}
	few := sample()
	few.Readings[0].Sensor, few.Readings[0].Flags = "few-1", nil
	var none Batch
	none.Station = "MH-PUNE-001"
	for range 3 {
		for _, in := range []*Batch{many, few, &none} {
			data, err := Encode(in)
			require.NoError(t, err)
			out, err := Decode(bytes.NewReader(data), true)
			require.NoError(t, err)
			assert.Equal(t, in.Readings, out.Readings)
			out.Release()
			assert.Nil(t, out.Readings, "a released batch keeps no readings")
		}
	}
}

func TestPlainJSONAccepted(t *testing.T) {
	b, err := Decode(strings.NewReader(`{"v":1,"station":"S","readings":[]}`), false)
	require.NoError(t, err)
	assert.Equal(t, "S", b.Station)
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		want  error
		field string
	}{
		{"not json", `{"v":1,`, ErrMalformed, ""},
		{"no version", `{"station":"S"}`, ErrMalformed, "v"},
		{"future major", `{"v":2,"station":"S"}`, ErrVersion, ""},
		// Refused for its version, not for a field this version reads otherwise.
		{"future major, fields reshaped", `{"v":2,"station":{"id":"S"},"readings":{"ph":[7.1]}}`, ErrVersion, ""},
		{"version not a number", `{"v":"1","station":"S"}`, ErrMalformed, ""},
		{"version zero", `{"v":0,"station":"S"}`, ErrVersion, ""},
		{"type error", `{"v":1,"station":"S","readings":[{"seq":"x"}]}`, ErrMalformed, ""},
		{"no station", `{"v":1}`, ErrMalformed, "station"},
		{"station not an id", `{"v":1,"station":"MH/PUNE/001"}`, ErrMalformed, "station"},
		{"zero seq", `{"v":1,"station":"S","readings":[{"seq":0}]}`, ErrMalformed, "readings[0].seq"},
		{"bad param", `{"v":1,"station":"S","readings":[{"seq":1,"time":"2026-01-01T00:00:00Z","sensor":"x","param":"salinity","unit":"","quality":"good","source":"sensor"}]}`, ErrMalformed, "readings[0].param"},
		{"alias param refused", `{"v":1,"station":"S","readings":[{"seq":1,"time":"2026-01-01T00:00:00Z","sensor":"x","param":"pH","unit":"pH","quality":"good","source":"sensor"}]}`, ErrMalformed, "readings[0].param"},
		{"wrong unit", `{"v":1,"station":"S","readings":[{"seq":1,"time":"2026-01-01T00:00:00Z","sensor":"x","param":"temp","unit":"degF","value":1,"quality":"good","source":"sensor"}]}`, ErrMalformed, "readings[0].unit"},
		{"bad quality", `{"v":1,"station":"S","readings":[{"seq":1,"time":"2026-01-01T00:00:00Z","sensor":"x","param":"ph","unit":"pH","value":7,"quality":"great","source":"sensor"}]}`, ErrMalformed, "readings[0].quality"},
		{"bad flag", `{"v":1,"station":"S","readings":[{"seq":1,"time":"2026-01-01T00:00:00Z","sensor":"x","param":"ph","unit":"pH","value":7,"quality":"good","source":"sensor","flags":["odd"]}]}`, ErrMalformed, "readings[0].flags"},
		{"bad transition", `{"v":1,"station":"S","alerts":[{"seq":1,"id":1,"time":"2026-01-01T00:00:00Z","opened_at":"2026-01-01T00:00:00Z","transition":"exploded"}]}`, ErrMalformed, "alerts[0].transition"},
		{"wqi out of range", `{"v":1,"station":"S","wqi":[{"seq":1,"time":"2026-01-01T00:00:00Z","wqi":140,"class":"A"}]}`, ErrMalformed, "wqi[0].wqi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tt.body), false)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tt.want), "got %v", err)
			if tt.field != "" {
				fe, ok := errors.AsType[*FieldError](err)
				require.True(t, ok, "want a FieldError, got %v", err)
				assert.Equal(t, tt.field, fe.Field)
			}
		})
	}
}

func TestZipBomb(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(`{"v":1,"station":"S","pad":"`))
	require.NoError(t, err)
	zeros := bytes.Repeat([]byte("a"), 1<<20)
	for range MaxDecompressedBytes>>20 + 1 {
		_, err = zw.Write(zeros)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.Less(t, buf.Len(), MaxCompressedBytes, "the bomb is small on the wire")
	_, err = Decode(&buf, true)
	assert.ErrorIs(t, err, ErrTooLarge)
}

func TestTooManyRecords(t *testing.T) {
	b := &Batch{Station: "S", Readings: make([]Reading, MaxRecords+1)}
	assert.ErrorIs(t, b.Validate(), ErrTooLarge)
}

func FuzzDecode(f *testing.F) {
	data, err := Encode(sample())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data, true)
	f.Add([]byte(`{"v":1,"station":"S","readings":[{"seq":1}]}`), false)
	f.Add([]byte(`{"v":2}`), false)
	healthy, err := Encode(&Batch{Station: "S", Health: sampleHealth()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(healthy, true)
	f.Add([]byte(`{"v":1,"station":"S","pad":[1,}`), false)
	f.Add([]byte(`{"v":1,"station":"S","readings":[{"seq":1,"value":01}]}`), false)
	f.Fuzz(func(t *testing.T, body []byte, gz bool) {
		b, err := Decode(bytes.NewReader(body), gz)
		if err != nil {
			return
		}
		if !gz && !json.Valid(body) {
			t.Fatalf("a body that is not valid JSON decoded: %q", body)
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("decoded batch does not validate: %v", err)
		}
		if _, err := Encode(b); err != nil {
			t.Fatalf("decoded batch does not encode: %v", err)
		}
	})
}

// gzipBody compresses head, n copies of rec joined by commas, and tail.
func gzipBody(t *testing.T, head, rec, tail string, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(head))
	require.NoError(t, err)
	chunk := []byte(strings.Repeat(rec+",", 1000))
	for written := 0; written < n; written += 1000 {
		_, err = zw.Write(chunk)
		require.NoError(t, err)
	}
	_, err = zw.Write([]byte(rec + tail))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// A small body that inflates to tens of MiB of records is refused after reading about
// what MaxRecords records need, with memory to match, instead of being decoded whole
// first (which took gigabytes).
func TestRecordBombsRefusedEarly(t *testing.T) {
	reading := `{"seq":1,"time":"2026-01-01T00:00:00Z","sensor":"x","param":"ph","unit":"pH","value":7,"quality":"good","source":"sensor"}`
	alert := `{"seq":1,"id":1,"time":"2026-01-01T00:00:00Z","opened_at":"2026-01-01T00:00:00Z","transition":"opened","state":"active","severity":"info","rule":"r","message":""}`
	tests := []struct {
		name     string
		body     []byte
		want     error
		maxBytes int64 // decompressed bytes read before the refusal
	}{
		{"empty alerts", gzipBody(t, `{"v":1,"station":"S","alerts":[`, `{}`, `]}`, 21_000_000), ErrMalformed, 64 << 10},
		{"valid alerts", gzipBody(t, `{"v":1,"station":"S","alerts":[`, alert, `]}`, 400_000), ErrTooLarge, (MaxRecords+1)*int64(len(alert)+1) + 64<<10},
		{"valid readings", gzipBody(t, `{"v":1,"station":"S","readings":[`, reading, `]}`, 150_000), ErrTooLarge, (MaxRecords+1)*int64(len(reading)+1) + 64<<10},
		{"one huge string", gzipBody(t, `{"v":1,"station":"S","agent":"`, strings.Repeat("a", 1000), `"}`, 60_000), ErrTooLarge, 2*MaxRecordBytes + 64<<10},
		{"huge unknown field", gzipBody(t, `{"v":1,"station":"S","pad":[`, `1`, `]}`, 30_000_000), ErrTooLarge, MaxDecompressedBytes + 64<<10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Less(t, len(tt.body), 1<<20, "the body is small on the wire")
			var read int64
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := DecodeWith(bytes.NewReader(tt.body), true, DecodeOptions{Reserve: func(n int64) error {
				read += n
				return nil
			}})
			runtime.ReadMemStats(&after)
			assert.ErrorIs(t, err, tt.want)
			assert.LessOrEqual(t, read, tt.maxBytes, "decompressed bytes read before the refusal")
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(32<<20), "bytes allocated by the decoding")
		})
	}
}

func TestBudgetStopsDecoding(t *testing.T) {
	errBusy := errors.New("busy")
	data, err := Encode(sample())
	require.NoError(t, err)
	_, err = DecodeWith(bytes.NewReader(data), true, DecodeOptions{Reserve: func(int64) error { return errBusy }})
	assert.ErrorIs(t, err, errBusy)
}

func TestNamesAndListsBounded(t *testing.T) {
	rec := func(field string) string {
		return `{"v":1,"station":"S","readings":[{"seq":1,"time":"2026-01-01T00:00:00Z","sensor":` + field + `,"param":"ph","unit":"pH","value":7,"quality":"good","source":"sensor"}]}`
	}
	wqi := func(extra string) string {
		return `{"v":1,"station":"S","wqi":[{"seq":1,"time":"2026-01-01T00:00:00Z","wqi":50,"class":"B"` + extra + `}]}`
	}
	tests := []struct {
		name, body, field string
	}{
		{"NUL in a sensor", rec(`"ph\u0000"`), "readings[0].sensor"},
		{"ANSI escape in a sensor", rec(`"\u001b[31mph"`), "readings[0].sensor"},
		{"long sensor", rec(`"` + strings.Repeat("s", 129) + `"`), "readings[0].sensor"},
		{"long agent", `{"v":1,"station":"S","agent":"` + strings.Repeat("v", 65) + `"}`, "agent"},
		{"escape in agent", `{"v":1,"station":"S","agent":"\u001b]0;x\u0007"}`, "agent"},
		{"bad station", `{"v":1,"station":"S/1"}`, "station"},
		{"unknown missing entry", wqi(`,"missing":["` + strings.Repeat("m", 100) + `"]`), "wqi[0].missing[0]"},
		{"too many missing", wqi(`,"missing":["ph","ph","ph","ph","ph","ph","ph","ph","ph","ph","ph","ph","ph","ph","ph","ph","ph"]`), "wqi[0].missing"},
		{"unknown sub-index", wqi(`,"sub_indices":{"zz":1}`), "wqi[0].sub_indices"},
		{"control in alert message", `{"v":1,"station":"S","alerts":[{"seq":1,"id":1,"time":"2026-01-01T00:00:00Z","opened_at":"2026-01-01T00:00:00Z","transition":"opened","state":"active","severity":"info","rule":"r","message":"\u001b[2J"}]}`, "alerts[0].message"},
		{"duplicate stream", `{"v":1,"station":"S","readings":[],"readings":[]}`, "readings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tt.body), false)
			fe, ok := errors.AsType[*FieldError](err)
			require.True(t, ok, "want a FieldError, got %v", err)
			assert.Equal(t, tt.field, fe.Field)
		})
	}
}

func TestTrailingDataRefused(t *testing.T) {
	_, err := Decode(strings.NewReader(`{"v":1,"station":"S"} x`), false)
	assert.ErrorIs(t, err, ErrMalformed)
	_, err = Decode(strings.NewReader(`{"v":1,"station":"S"}`+"\n"), false)
	assert.NoError(t, err)
}

func TestUnknownFieldsIgnored(t *testing.T) {
	b, err := Decode(strings.NewReader(`{"v":1,"new":{"a":[1,2,{"b":null}]},"station":"S","readings":null}`), false)
	require.NoError(t, err)
	assert.Equal(t, "S", b.Station)
}

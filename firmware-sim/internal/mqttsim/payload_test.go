package mqttsim

import (
	"encoding/json"
	"math"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

var at = time.Date(2025, 11, 13, 17, 30, 0, 123456789, time.FixedZone("IST", 5*3600+1800))

func TestEncodeReading(t *testing.T) {
	tests := []struct {
		name string
		r    reading
		want string
	}{
		{"ph", reading{Param: telemetry.PH, Value: 7.52, Unit: "pH", Time: at, Sensor: "ph-0"},
			`{"value":7.52,"unit":"pH","timestamp":"2025-11-13T12:00:00.123Z","sensor":"ph-0"}`},
		{"fc integer", reading{Param: telemetry.FC, Value: 120000, Unit: "MPN/100mL", Time: at, Sensor: "fc-3"},
			`{"value":120000,"unit":"MPN/100mL","timestamp":"2025-11-13T12:00:00.123Z","sensor":"fc-3"}`},
		{"escaping", reading{Param: telemetry.Temp, Value: -0.5, Unit: "deg\"C\\", Time: at, Sensor: "t\n1"},
			`{"value":-0.5,"unit":"deg\"C\\","timestamp":"2025-11-13T12:00:00.123Z","sensor":"t\u000a1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := encodeReading(tt.r)
			assert.Equal(t, tt.want, string(got))
			assert.True(t, json.Valid(got))
		})
	}
}

func TestEncodeBatch(t *testing.T) {
	got := encodeBatch([]reading{
		{Param: telemetry.PH, Value: 7.5, Unit: "pH", Time: at, Sensor: "ph-1"},
		{Param: telemetry.DO, Value: 3.21, Unit: "mg/L", Time: at, Sensor: "do-1"},
	})
	assert.Equal(t, `[{"param":"ph","value":7.5,"unit":"pH","timestamp":"2025-11-13T12:00:00.123Z","sensor":"ph-1"},`+
		`{"param":"do","value":3.21,"unit":"mg/L","timestamp":"2025-11-13T12:00:00.123Z","sensor":"do-1"}]`, string(got))
}

func TestEncodeGarbage(t *testing.T) {
	rs := []reading{
		{Param: telemetry.PH, Value: 7.5, Unit: "pH", Time: at, Sensor: "ph-1"},
		{Param: telemetry.DO, Value: 3.21, Unit: "mg/L", Time: at, Sensor: "do-1"},
	}
	type wire struct {
		Value any    `json:"value"`
		Unit  string `json:"unit"`
	}
	tests := []struct {
		name  string
		nonce uint64
		check func(t *testing.T, b []byte, batch bool)
	}{
		{"truncated", 0, func(t *testing.T, b []byte, _ bool) { assert.False(t, json.Valid(b)) }},
		{"string value", 1, func(t *testing.T, b []byte, batch bool) {
			w := firstOf(t, b, batch)
			assert.Equal(t, "7.5 pH", w["value"], "a string, not a number")
		}},
		{"unknown unit", 2, func(t *testing.T, b []byte, batch bool) {
			w := firstOf(t, b, batch)
			assert.Equal(t, "??", w["unit"])
			assert.InDelta(t, 7.5, w["value"], 0)
		}},
		{"NaN", 3, func(t *testing.T, b []byte, _ bool) {
			assert.False(t, json.Valid(b))
			assert.Contains(t, string(b), `"value":NaN`)
		}},
		{"line noise", 4, func(t *testing.T, b []byte, _ bool) {
			assert.False(t, json.Valid(b))
			assert.False(t, utf8.Valid(b))
			assert.True(t, len(b) >= 8 && len(b) <= 40, "length %d", len(b))
		}},
	}
	for _, tt := range tests {
		for _, batch := range []bool{false, true} {
			name := tt.name
			if batch {
				name += "/batch"
			}
			t.Run(name, func(t *testing.T) {
				got := encodeGarbage(rs, batch, tt.nonce)
				tt.check(t, got, batch)
				assert.Equal(t, got, encodeGarbage(rs, batch, tt.nonce), "deterministic")
			})
		}
	}
	t.Run("every nonce gives garbage", func(t *testing.T) {
		for nonce := range uint64(200) {
			b := encodeGarbage(rs[:1], false, nonce*0x9e3779b97f4a7c15)
			var w wire
			if json.Unmarshal(b, &w) == nil {
				_, isNumber := w.Value.(float64)
				assert.True(t, !isNumber || w.Unit == "??", "nonce %d gave a valid reading: %s", nonce, b)
			}
		}
	})
}

// firstOf decodes the reading (or the first reading of a batch) of a garbage payload that
// is still JSON.
func firstOf(t *testing.T, b []byte, batch bool) map[string]any {
	t.Helper()
	if batch {
		var arr []map[string]any
		require.NoError(t, json.Unmarshal(b, &arr), "%s", b)
		require.Len(t, arr, 2)
		assert.InDelta(t, 3.21, arr[1]["value"], 0, "the rest of the batch is intact")
		return arr[0]
	}
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "%s", b)
	return m
}

func TestTopics(t *testing.T) {
	assert.Equal(t, "purehealth/MH-PUNE-001/do", Topic("MH-PUNE-001", telemetry.DO))
	assert.Equal(t, "purehealth/MH-PUNE-001/readings", BatchTopic("MH-PUNE-001"))
}

// The hand-written encoder must agree with encoding/json on every input.
func FuzzEncodeReading(f *testing.F) {
	f.Add(7.52, "pH", "ph-0", int64(1763035200123))
	f.Add(-0.0, "°C", "temp-\x00", int64(0))
	f.Add(1e21, "MPN/100mL", "fc-\xff\xfe", int64(-62135596800000))
	f.Add(5e-324, "\u2028", `"\`, int64(253402300799999))
	f.Fuzz(func(t *testing.T, v float64, unit, sensor string, ms int64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Skip("probes never report non-finite values")
		}
		ts := time.UnixMilli(ms).UTC()
		if ts.Year() < 0 || ts.Year() > 9999 {
			t.Skip("RFC 3339 has four-digit years")
		}
		b := encodeReading(reading{Param: telemetry.PH, Value: v, Unit: unit, Time: ts, Sensor: sensor})
		require.True(t, json.Valid(b), "%q", b)
		var got struct {
			Value     float64 `json:"value"`
			Unit      string  `json:"unit"`
			Timestamp string  `json:"timestamp"`
			Sensor    string  `json:"sensor"`
		}
		require.NoError(t, json.Unmarshal(b, &got))
		assert.Equal(t, v, got.Value)
		for _, s := range []struct{ in, out string }{{unit, got.Unit}, {sensor, got.Sensor}} {
			ref, err := json.Marshal(s.in)
			require.NoError(t, err)
			var want string
			require.NoError(t, json.Unmarshal(ref, &want))
			assert.Equal(t, want, s.out)
		}
		back, err := time.Parse(time.RFC3339Nano, got.Timestamp)
		require.NoError(t, err)
		assert.True(t, back.Equal(ts), "%v != %v", back, ts)
	})
}

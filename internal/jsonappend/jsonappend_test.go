package jsonappend

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAsEncodingJSON(t *testing.T) {
	floats := []float64{0, math.Copysign(0, -1), 7.2, -123.456, 0.1 + 0.2, 1e-6, 9.999999999999999e-7, 1e-7, 5e-324,
		1e20, 1e21, 7e22, -1.5e300, math.MaxFloat64, 12345678.000001}
	for _, f := range floats {
		want, err := json.Marshal(f)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(Float(nil, f)), "%v", f)
	}
	strs := []string{"", "plain", `<b>&"quoted" \back\slash`, "tab\tnew\nline\r\b\f\x01\x1f\x7f", "नदी 🌊 Ωμέγα",
		"line\u2028para\u2029", "bad \xff utf-8 \xe2\x80"}
	for _, s := range strs {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(String(nil, s)), "%q", s)
	}
	times := []time.Time{time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC), time.Date(999, 1, 2, 3, 4, 5, 6000, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 120000000, time.FixedZone("IST", 19800))}
	for _, at := range times {
		want, err := json.Marshal(at)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(Time(nil, at)), "%v", at)
	}
	assert.Equal(t, "null", string(Float(nil, math.NaN())))
}

// FuzzAsEncodingJSON holds String, Float and Time to encoding/json.
func FuzzAsEncodingJSON(f *testing.F) {
	f.Add("ph-1", 7.2, int64(0))
	f.Add("<b>&\"x\"\\\t\x01\u2028\xff🌊", 1e-7, int64(123456789012))
	f.Add("", 7e22, int64(-1))
	f.Fuzz(func(t *testing.T, s string, v float64, micros int64) {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		require.Equal(t, string(want), string(String(nil, s)))
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			want, err = json.Marshal(v)
			require.NoError(t, err)
			require.Equal(t, string(want), string(Float(nil, v)))
		}
		const span = int64(9998*365*24*3600) * 1e6 // years 1 to 9999
		at := time.UnixMicro(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro() + (micros%span+span)%span).UTC()
		want, err = json.Marshal(at)
		require.NoError(t, err)
		require.Equal(t, string(want), string(Time(nil, at)))
	})
}

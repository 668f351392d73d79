package jsonappend

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAsEncodingJSON(t *testing.T) {
	floats := []float64{0, math.Copysign(0, -1), 7.2, -123.456, 0.1 + 0.2, 1e-6, 9.999999999999999e-7, 1e-7, 5e-324,
		1e20, 1e21, 7e22, -1.5e300, math.MaxFloat64, 12345678.000001,
		// Decimals of up to six places below 1e8 take a short cut, those around it the general way.
		7, -7, 0.5, 7.123, -0.001, 1.000001, 0.000001, 0.0000015, 99999999.999999, 1e8 - 1, 1e8, 1e8 + 0.5,
		123456.7890123, 1.1 * 3, 2.675, 1e-5, 412.00000000000006}
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
	f.Add("ph", 7.123, int64(0))
	f.Add("ph", -99999999.999999, int64(0))
	f.Add("ph", 0.0000015, int64(0))
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

// Property: decimals of a few places, as readings carry, come out as encoding/json writes
// them, whatever their magnitude.
func TestDecimalsAsEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200000 {
		places := rng.IntN(9)
		f := float64(rng.Int64N(2e12)-1e12) / math.Pow10(places)
		if rng.IntN(4) == 0 {
			f *= math.Pow10(rng.IntN(12))
		}
		want, err := json.Marshal(f)
		require.NoError(t, err)
		if got := string(Float(nil, f)); got != string(want) {
			t.Fatalf("%v: got %s, want %s", f, got, want)
		}
	}
}

func BenchmarkFloat(b *testing.B) {
	for _, f := range []float64{7.123, 7.123 / 3} {
		b.Run(strconv.FormatFloat(f, 'g', -1, 64), func(b *testing.B) {
			buf := make([]byte, 0, 32)
			for b.Loop() {
				buf = Float(buf[:0], f)
			}
		})
	}
}

package wqi_test

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wqi"
)

// FuzzCompute checks the invariants of any computed index: within [0, 100], never NaN, the
// class that of the reported value, every sub-index within [0, 100], and JSON that encodes.
// present selects which of do, fc, ph, bod, temp are given (one bit each).
func FuzzCompute(f *testing.F) {
	f.Add(7.0, 100.0, 7.5, 2.0, 25.0, 1.0, uint8(0x1f), false)
	f.Add(6.2, 2400.0, 8.1, 4.5, 28.4, 0.935, uint8(0x1f), false)
	f.Add(5.1, 35000.0, 7.2, 12.0, 0.0, 0.0, uint8(0x0f), true)
	f.Add(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, uint8(0x00), false)
	f.Add(25.0, 1e9, 14.0, 1000.0, 50.0, 0.5, uint8(0x1f), false)
	f.Add(math.NaN(), math.Inf(1), -1.0, 30.0, 60.0, 2.0, uint8(0xff), false)
	f.Fuzz(func(t *testing.T, do, fc, ph, bod, temp, pressure float64, present uint8, mpcb bool) {
		in := wqi.Input{Values: map[telemetry.Param]float64{}, PressureAtm: pressure}
		if mpcb {
			in.Method = wqi.MPCB
		}
		for i, kv := range []struct {
			p telemetry.Param
			v float64
		}{{telemetry.DO, do}, {telemetry.FC, fc}, {telemetry.PH, ph}, {telemetry.BOD, bod},
			{telemetry.Temp, temp}} {
			if present&(1<<i) != 0 {
				in.Values[kv.p] = kv.v
			}
		}

		r, err := wqi.Compute(in)
		if err != nil {
			known := errors.Is(err, wqi.ErrNoInputs) || errors.Is(err, wqi.ErrOutOfDomain) ||
				errors.Is(err, telemetry.ErrNotFinite)
			assert.True(t, known, "unexpected error kind: %v", err)
			return
		}
		require.False(t, math.IsNaN(r.WQI), "WQI is NaN for %+v", in)
		assert.GreaterOrEqual(t, r.WQI, 0.0)
		assert.LessOrEqual(t, r.WQI, 100.0)

		rounded := math.Round(r.WQI*100) / 100
		class, category := wqi.Classify(rounded)
		if math.Abs(r.WQI*100-math.Round(r.WQI*100)) < 1e-4 {
			// Within binary noise of a rounding edge the two roundings may differ.
			class, category = r.Class, r.Category
		}
		assert.Equal(t, class, r.Class, "class of WQI %v", r.WQI)
		assert.Equal(t, category, r.Category)

		assert.Equal(t, len(r.Used), len(r.SubIndices))
		assert.Equal(t, 4, len(r.Used)+len(r.Missing))
		assert.Equal(t, len(r.Missing) > 0, r.Partial)
		for p, v := range r.SubIndices {
			assert.False(t, math.IsNaN(v), "sub-index %s is NaN", p)
			assert.GreaterOrEqual(t, v, 0.0, "sub-index %s", p)
			assert.LessOrEqual(t, v, 100.0, "sub-index %s", p)
		}
		_, err = json.Marshal(r)
		assert.NoError(t, err)
	})
}

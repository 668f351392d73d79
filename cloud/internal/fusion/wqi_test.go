package fusion_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/fusion"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wqi"
)

func TestDefaultPolicyIsTheDesigns(t *testing.T) {
	p := fusion.DefaultPolicy()
	assert.Equal(t, []string{"sensor", "manual", "api", "satellite", "model"}, p.Priority)
	assert.Equal(t, map[string]time.Duration{"sensor": 2 * time.Hour, "manual": 744 * time.Hour,
		"api": 2160 * time.Hour, "satellite": 336 * time.Hour, "model": 24 * time.Hour}, p.MaxAge)
	p.MaxAge["sensor"] = time.Minute
	assert.Equal(t, 2*time.Hour, fusion.DefaultMaxAge["sensor"], "DefaultPolicy hands out copies")
}

func TestComputeWQI(t *testing.T) {
	now := time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)
	v := func(source string, value float64, ago time.Duration) fusion.Value {
		return fusion.Value{Candidate: fusion.Candidate{Source: source, Value: value, Time: now.Add(-ago)}, Age: ago}
	}
	values := map[string]fusion.Value{
		"do": v("sensor", 7.2, time.Minute), "ph": v("sensor", 7.4, time.Minute),
		"bod": v("manual", 2, 5*24*time.Hour), "fc": v("api", 100, 40*24*time.Hour),
		"temp":      v("satellite", 55, 3*24*time.Hour), // outside what the DO saturation covers
		"turbidity": v("satellite", 30, 24*time.Hour),
	}
	w, err := fusion.ComputeWQI(values, now, wqi.BensonKrause, 1)
	require.NoError(t, err)
	// The same index the station computes from the same values (temperature dropped).
	want, err := wqi.Compute(wqi.Input{Values: map[telemetry.Param]float64{"do": 7.2, "ph": 7.4, "bod": 2, "fc": 100}})
	require.NoError(t, err)
	assert.Equal(t, want.WQI, w.Result.WQI)
	assert.False(t, w.Result.Partial)
	assert.NotContains(t, w.Inputs, "temp", "a temperature the equation cannot take is left out")
	assert.NotContains(t, w.Inputs, "turbidity", "not an index input")
	assert.Equal(t, "api", w.Inputs["fc"].Source)
	assert.Equal(t, (40 * 24 * time.Hour).Seconds(), w.Inputs["fc"].AgeSeconds)

	b, err := json.Marshal(w)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"time", "source", "wqi", "class", "category", "sub_indices", "partial", "missing", "inputs"} {
		assert.Contains(t, m, k)
	}
	assert.Equal(t, "fused", m["source"])
	var back fusion.WQI
	require.NoError(t, json.Unmarshal(b, &back))
	assert.True(t, fusion.Same(w, back), "what is stored and read back says the same")

	_, err = fusion.ComputeWQI(map[string]fusion.Value{"turbidity": v("satellite", 30, time.Hour)}, now, "", 1)
	assert.ErrorIs(t, err, wqi.ErrNoInputs)
}

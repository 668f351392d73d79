package satellite

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The worked values of the science notes (../shared/science.md §3).

func TestReflectanceOffsetByBaseline(t *testing.T) {
	before := time.Date(2021, 12, 1, 5, 25, 0, 0, time.UTC)
	after := time.Date(2022, 6, 1, 5, 25, 0, 0, time.UTC)
	assert.InDelta(t, 0.12, Reflectance(1200, before), 1e-12)
	assert.InDelta(t, 0.02, Reflectance(1200, after), 1e-12)
	assert.InDelta(t, 0.02, Reflectance(1200, Baseline04), 1e-12, "the offset applies from 25 January 2022")
	assert.InDelta(t, 0.12, Reflectance(1200, Baseline04.Add(-time.Nanosecond)), 1e-12)
}

func TestChlorophyllNDCI(t *testing.T) {
	n := NDCI(0.015, 0.03)
	assert.InDelta(t, 0.333333, n, 1e-6)
	assert.InDelta(t, 64.3357, ChlaNDCI(n), 1e-4)
}

func TestTurbidityNechad(t *testing.T) {
	for rho, want := range map[float64]float64{0.01: 3.8586, 0.03: 12.9737, 0.05: 24.5924} {
		assert.InDelta(t, want, TurbidityNechad(rho), 1e-4, "ρw %v", rho)
	}
}

func TestTurbidityDogliotti(t *testing.T) {
	assert.InDelta(t, 26.9467, TurbidityDogliotti(0.06, 0.01), 1e-3)
	// Below 0.05 the red algorithm alone, from 0.07 the NIR one alone.
	assert.InDelta(t, 228.1*0.03/(1-0.03/0.1641), TurbidityDogliotti(0.03, 0.5), 1e-9)
	assert.InDelta(t, 3078.9*0.02/(1-0.02/0.2112), TurbidityDogliotti(0.08, 0.02), 1e-9)
	// The blend is continuous at both edges.
	assert.InDelta(t, TurbidityDogliotti(0.05-1e-12, 0.01), TurbidityDogliotti(0.05, 0.01), 1e-6)
	assert.InDelta(t, TurbidityDogliotti(0.07-1e-12, 0.01), TurbidityDogliotti(0.07, 0.01), 1e-6)
}

func TestSurfaceTemp(t *testing.T) {
	c, ok := SurfaceTempC(44000)
	assert.True(t, ok)
	assert.InDelta(t, 26.24288, c, 1e-9)
	assert.InDelta(t, 299.39288, c+273.15, 1e-9)
	_, ok = SurfaceTempC(0)
	assert.False(t, ok, "DN 0 is no data")
}

func TestMedian(t *testing.T) {
	assert.Equal(t, 3.0, Median([]float64{5, 1, 3}))
	assert.Equal(t, 2.5, Median([]float64{4, 1, 3, 2}))
	assert.True(t, math.IsNaN(Median(nil)))
	xs := []float64{3, 1, 2}
	Median(xs)
	assert.Equal(t, []float64{3, 1, 2}, xs, "the input is left alone")
}

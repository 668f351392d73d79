package wqi_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wqi"
)

// below is the largest float64 under x: the value just on the lower side of a segment edge.
func below(x float64) float64 { return math.Nextafter(x, math.Inf(-1)) }

func TestSubIndex(t *testing.T) {
	// Expected values worked by hand from the CPCB equations (science.md §1). Every segment
	// is visited inside, and every edge from both sides: the edge itself belongs to the
	// segment that starts there.
	tests := []struct {
		param telemetry.Param
		x     float64
		want  float64
		why   string
	}{
		// DO, % saturation.
		{telemetry.DO, -5, 0, "below 0: first equation 0.18+0.66·x < 0, clamped"},
		{telemetry.DO, 0, 0.18, "0.18 + 0.66·0"},
		{telemetry.DO, 20, 13.38, "0.18 + 0.66·20"},
		{telemetry.DO, below(40), 26.58, "edge 40 from below: 0.18 + 0.66·40"},
		{telemetry.DO, 40, 33.25, "edge 40: −13.55 + 1.17·40"},
		{telemetry.DO, 70, 68.35, "−13.55 + 1.17·70"},
		{telemetry.DO, 97, 99.94, "−13.55 + 1.17·97, just under the clamp"},
		{telemetry.DO, below(100), 100, "edge 100 from below: 103.45, clamped"},
		{telemetry.DO, 100, 100, "edge 100: 163.34 − 0.62·100 = 101.34, clamped"},
		{telemetry.DO, 110, 95.14, "163.34 − 0.62·110"},
		{telemetry.DO, below(140), 76.54, "edge 140 from below: 163.34 − 0.62·140"},
		{telemetry.DO, 140, 50, "edge 140: the ≥ 140 tail"},
		{telemetry.DO, 300, 50, "≥ 140 tail"},
		{telemetry.DO, math.Inf(1), 50, "≥ 140 tail"},

		// FC, MPN/100 mL.
		{telemetry.FC, -3, 97.2, "below 1 counts as 1"},
		{telemetry.FC, 0, 97.2, "below 1 counts as 1"},
		{telemetry.FC, 0.5, 97.2, "below 1 counts as 1"},
		{telemetry.FC, 1, 97.2, "97.2 − 26.6·log10(1)"},
		{telemetry.FC, 10, 70.6, "97.2 − 26.6·1"},
		{telemetry.FC, 100, 44.0, "97.2 − 26.6·2"},
		{telemetry.FC, below(1e3), 17.4, "edge 1e3 from below: 97.2 − 26.6·3"},
		{telemetry.FC, 1e3, 19.08, "edge 1e3: 42.33 − 7.75·3"},
		{telemetry.FC, 1e4, 11.33, "42.33 − 7.75·4"},
		{telemetry.FC, below(1e5), 3.58, "edge 1e5 from below: 42.33 − 7.75·5"},
		{telemetry.FC, 1e5, 2, "edge 1e5: the ≥ 1e5 tail"},
		{telemetry.FC, 1e8, 2, "≥ 1e5 tail"},

		// pH.
		{telemetry.PH, 0, 0, "< 2"},
		{telemetry.PH, below(2), 0, "edge 2 from below: < 2 is 0"},
		{telemetry.PH, 2, 30.8, "edge 2: 16.1 + 7.35·2"},
		{telemetry.PH, 3, 38.15, "16.1 + 7.35·3"},
		{telemetry.PH, below(5), 52.85, "edge 5 from below: 16.1 + 7.35·5"},
		{telemetry.PH, 5, 24.83, "edge 5: −142.67 + 33.5·5"},
		{telemetry.PH, 6, 58.33, "−142.67 + 33.5·6"},
		{telemetry.PH, 7, 91.83, "−142.67 + 33.5·7"},
		{telemetry.PH, below(7.3), 100, "edge 7.3 from below: 101.88, clamped"},
		{telemetry.PH, 7.3, 99.055, "edge 7.3: 316.96 − 29.85·7.3"},
		{telemetry.PH, 8, 78.16, "316.96 − 29.85·8"},
		{telemetry.PH, 9, 48.31, "316.96 − 29.85·9"},
		{telemetry.PH, below(10), 18.46, "edge 10 from below: 316.96 − 29.85·10"},
		{telemetry.PH, 10, 16.17, "edge 10: 96.17 − 8·10"},
		{telemetry.PH, 11, 8.17, "96.17 − 8·11"},
		{telemetry.PH, below(12), 0.17, "edge 12 from below: 96.17 − 8·12"},
		{telemetry.PH, 12, 0, "edge 12: the ≥ 12 tail"},
		{telemetry.PH, 14, 0, "≥ 12 tail"},

		// BOD, mg/L.
		{telemetry.BOD, -1, 100, "below 0: first equation 103.67, clamped"},
		{telemetry.BOD, 0, 96.67, "96.67 − 7·0"},
		{telemetry.BOD, 5, 61.67, "96.67 − 7·5"},
		{telemetry.BOD, below(10), 26.67, "edge 10 from below: 96.67 − 7·10"},
		{telemetry.BOD, 10, 26.6, "edge 10: 38.9 − 1.23·10"},
		{telemetry.BOD, 20, 14.3, "38.9 − 1.23·20"},
		{telemetry.BOD, below(30), 2.0, "edge 30 from below: 38.9 − 1.23·30"},
		{telemetry.BOD, 30, 2, "edge 30: the ≥ 30 tail"},
		{telemetry.BOD, 500, 2, "≥ 30 tail"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s=%v", tt.param, tt.x), func(t *testing.T) {
			got, ok := wqi.SubIndex(tt.param, tt.x)
			assert.True(t, ok, "%s is an index parameter", tt.param)
			assert.InDelta(t, tt.want, got, 1e-9, tt.why)
		})
	}
}

func TestSubIndexDiscontinuities(t *testing.T) {
	// The published equations jump at some edges; the jumps must survive (no smoothing).
	tests := []struct {
		param            telemetry.Param
		edge             float64
		fromBelow, atEdg float64
	}{
		{telemetry.PH, 5, 52.85, 24.83},
		{telemetry.PH, 10, 18.46, 16.17},
		{telemetry.DO, 40, 26.58, 33.25},
		{telemetry.DO, 140, 76.54, 50},
		{telemetry.FC, 1e3, 17.4, 19.08},
		{telemetry.BOD, 10, 26.67, 26.6},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s=%v", tt.param, tt.edge), func(t *testing.T) {
			lo, _ := wqi.SubIndex(tt.param, below(tt.edge))
			at, _ := wqi.SubIndex(tt.param, tt.edge)
			assert.InDelta(t, tt.fromBelow, lo, 1e-9)
			assert.InDelta(t, tt.atEdg, at, 1e-9)
		})
	}
}

func TestSubIndexOtherParams(t *testing.T) {
	for _, p := range []telemetry.Param{telemetry.Temp, telemetry.TDS, telemetry.Turbidity,
		telemetry.Conductivity, telemetry.Chla, "nonsense"} {
		got, ok := wqi.SubIndex(p, 7)
		assert.False(t, ok, "%s is not an index parameter", p)
		assert.Zero(t, got)
	}
}

func TestSubIndexNaN(t *testing.T) {
	for _, p := range []telemetry.Param{telemetry.DO, telemetry.FC, telemetry.PH, telemetry.BOD} {
		got, ok := wqi.SubIndex(p, math.NaN())
		assert.True(t, ok)
		assert.True(t, math.IsNaN(got), "%s: NaN in gives NaN out, not a made-up value; got %v", p, got)
	}
}

func TestWeight(t *testing.T) {
	want := map[telemetry.Param]float64{
		telemetry.DO: 0.31, telemetry.FC: 0.28, telemetry.PH: 0.22, telemetry.BOD: 0.19,
	}
	var sum float64
	for p, w := range want {
		got, ok := wqi.Weight(p)
		assert.True(t, ok)
		assert.Equal(t, w, got, "weight of %s", p)
		sum += got
	}
	assert.InDelta(t, 1, sum, 1e-12, "the weights sum to 1")
	_, ok := wqi.Weight(telemetry.Temp)
	assert.False(t, ok)
}

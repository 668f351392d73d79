package hourly

import (
	"math"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Transform maps a parameter's values to the scale on which its variation is additive, and
// back. The zero value is the identity.
type Transform struct {
	// Log, when true, maps v to ln(v + Offset).
	Log bool
	// Offset keeps the logarithm finite at zero: about the smallest value a probe reports
	// above zero, so it barely changes values that matter.
	Offset float64
}

// logOffsets are the parameters that vary by factors rather than by amounts — bacterial
// counts and concentrations of what a discharge carries span orders of magnitude within a
// day (science §1 takes log10 of FC for the same reason) — with their offsets, in the
// parameter's canonical unit.
var logOffsets = map[telemetry.Param]float64{
	telemetry.FC:        1,   // MPN/100mL: the smallest count
	telemetry.Turbidity: 0.1, // NTU: a probe's resolution
	telemetry.BOD:       0.1, // mg/L
	telemetry.Chla:      0.1, // ug/L
}

// TransformFor returns the transform of a parameter (canonical name, or "wqi"): a
// logarithm for fecal coliform, turbidity, BOD and chlorophyll-a, the identity otherwise.
func TransformFor(param string) Transform {
	if off, ok := logOffsets[telemetry.Param(param)]; ok {
		return Transform{Log: true, Offset: off}
	}
	return Transform{}
}

// Apply maps v to the additive scale. Values below −Offset (impossible for these
// parameters) map to NaN.
func (t Transform) Apply(v float64) float64 {
	if !t.Log {
		return v
	}
	return math.Log(v + t.Offset)
}

// Invert maps x back to the parameter's unit.
func (t Transform) Invert(x float64) float64 {
	if !t.Log {
		return x
	}
	return math.Exp(x) - t.Offset
}

// ApplyAll returns a copy of vs with Apply applied to each value (NaN stays NaN).
func (t Transform) ApplyAll(vs []float64) []float64 {
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = t.Apply(v)
	}
	return out
}

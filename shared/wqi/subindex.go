package wqi

import (
	"math"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// The CPCB weights: the 1970 NSF weights for DO, FC, pH and BOD (0.17, 0.15, 0.12, 0.10)
// renormalized to sum to 1. The later NSF weight set is deliberately not used.
var weights = [...]struct {
	param  telemetry.Param
	weight float64
}{
	{telemetry.DO, 0.31},
	{telemetry.FC, 0.28},
	{telemetry.PH, 0.22},
	{telemetry.BOD, 0.19},
}

// Weight returns the CPCB weight of an index parameter (do, fc, ph, bod) and whether p is
// one.
func Weight(p telemetry.Param) (float64, bool) {
	for _, w := range weights {
		if w.param == p {
			return w.weight, true
		}
	}
	return 0, false
}

// SubIndex returns the CPCB sub-index of one index parameter, clamped to [0, 100], and
// whether p is an index parameter at all (do, fc, ph, bod; false for any other).
//
// x is in the unit the index equations use: DO in % saturation (see DOSaturationPct), FC in
// MPN/100 mL, pH in pH units, BOD in mg/L. Each segment of the equations is [lo, hi): the
// lower edge belongs to the segment that starts there. The equations are discontinuous at
// several edges (pH 5: 52.85 from below, 24.83 at 5) and are kept so, as published.
//
// Below the first segment DO and BOD use the first equation (then clamping applies: DO < 0 %
// gives 0, BOD < 0 gives 100), FC below 1 counts as 1, pH below 2 is 0. NaN gives NaN.
func SubIndex(p telemetry.Param, x float64) (float64, bool) {
	var equation func(float64) float64
	switch p {
	case telemetry.DO:
		equation = doSubIndex
	case telemetry.FC:
		equation = fcSubIndex
	case telemetry.PH:
		equation = phSubIndex
	case telemetry.BOD:
		equation = bodSubIndex
	default:
		return 0, false
	}
	if math.IsNaN(x) {
		return x, true
	}
	// CPCB: the linear fits overshoot 100 near the optimum, so each sub-index is clamped.
	return clamp(equation(x)), true
}

// doSubIndex: CPCB sub-index equations for dissolved oxygen, x in % saturation.
func doSubIndex(x float64) float64 {
	switch {
	case x < 40:
		return 0.18 + 0.66*x
	case x < 100:
		return -13.55 + 1.17*x
	case x < 140:
		return 163.34 - 0.62*x
	default: // ≥ 140, and +Inf
		return 50
	}
}

// fcSubIndex: CPCB sub-index equations for fecal coliform, x in MPN/100 mL.
func fcSubIndex(x float64) float64 {
	if x < 1 {
		x = 1 // CPCB: counts below 1 are taken as 1 (log10 1 = 0).
	}
	switch {
	case x < 1e3:
		return 97.2 - 26.6*math.Log10(x)
	case x < 1e5:
		return 42.33 - 7.75*math.Log10(x)
	default: // ≥ 1e5
		return 2
	}
}

// phSubIndex: CPCB sub-index equations for pH.
func phSubIndex(x float64) float64 {
	switch {
	case x < 2:
		return 0
	case x < 5:
		return 16.1 + 7.35*x
	case x < 7.3:
		return -142.67 + 33.5*x
	case x < 10:
		return 316.96 - 29.85*x
	case x < 12:
		return 96.17 - 8.0*x
	default: // ≥ 12
		return 0
	}
}

// bodSubIndex: CPCB sub-index equations for 5-day 20 °C BOD, x in mg/L.
func bodSubIndex(x float64) float64 {
	switch {
	case x < 10:
		return 96.67 - 7*x
	case x < 30:
		return 38.9 - 1.23*x
	default: // ≥ 30
		return 2
	}
}

// clamp limits v to [0, 100].
func clamp(v float64) float64 {
	switch {
	case v < 0:
		return 0
	case v > 100:
		return 100
	}
	return v
}

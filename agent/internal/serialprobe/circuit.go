package serialprobe

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// circuit is what the driver needs to know about one EZO circuit type.
type circuit struct {
	name string // as i reports it
	// output is the name, in O,? replies, of the output carrying the parameter; "" for
	// circuits with one fixed output.
	output   string
	unit     string // unit of that output
	tempComp bool   // takes T,<°C> temperature compensation
}

// circuitFor maps a configured parameter to the circuit that measures it.
var circuitFor = map[telemetry.Param]circuit{
	telemetry.PH:           {name: "pH", unit: "", tempComp: true},
	telemetry.DO:           {name: "DO", output: "mg", unit: "mg/L", tempComp: true},
	telemetry.Conductivity: {name: "EC", output: "EC", unit: "uS/cm", tempComp: true},
	telemetry.TDS:          {name: "EC", output: "TDS", unit: "ppm", tempComp: true},
	telemetry.Temp:         {name: "RTD", unit: "degC"},
}

// Params lists the parameters an EZO circuit can provide.
func Params() []telemetry.Param {
	return []telemetry.Param{telemetry.PH, telemetry.DO, telemetry.Conductivity, telemetry.TDS, telemetry.Temp}
}

// sameCircuit reports whether the type reported by i is the circuit c. Older DO firmware
// reports "D.O.".
func sameCircuit(reported string, c circuit) bool {
	if strings.EqualFold(reported, "D.O.") {
		reported = "DO"
	}
	return strings.EqualFold(reported, c.name)
}

// describeCircuit explains what a reported circuit type measures, for the wrong-circuit
// message.
func describeCircuit(reported string) string {
	for _, p := range Params() {
		if sameCircuit(reported, circuitFor[p]) {
			return fmt.Sprintf("circuit type %s (measures %s)", reported, p)
		}
	}
	if strings.EqualFold(reported, "ORP") {
		return "circuit type ORP (ORP is not a parameter the station records)"
	}
	return fmt.Sprintf("circuit type %q, which this driver does not support", reported)
}

// rtdUnits maps the RTD scale (S,?) to a unit.
var rtdUnits = map[string]string{"c": "degC", "k": "K", "f": "degF"}

// The calibration points Calibrate takes.
const (
	PointMid    = "mid"    // pH: Cal,mid,<pH>, the first point (clears the others)
	PointLow    = "low"    // pH: Cal,low,<pH>; EC: Cal,low,<µS/cm>
	PointHigh   = "high"   // pH: Cal,high,<pH>; EC: Cal,high,<µS/cm>
	PointAir    = "air"    // DO: Cal, in atmospheric air
	PointZero   = "zero"   // DO: Cal,0, in zero-oxygen solution
	PointDry    = "dry"    // EC: Cal,dry
	PointSingle = "single" // EC: Cal,<µS/cm>; RTD: Cal,<°C>
	PointClear  = "clear"  // any: Cal,clear, back to factory calibration
)

// ErrBadPoint rejects a calibration point the circuit does not take.
var ErrBadPoint = errors.New("invalid calibration point")

// calCommand builds the calibration command for point on circuit c.
func calCommand(c circuit, point string, value float64) (string, error) {
	point = strings.ToLower(strings.TrimSpace(point))
	if point == PointClear {
		return "Cal,clear", nil
	}
	var points []string
	switch c.name {
	case "pH":
		points = []string{PointMid, PointLow, PointHigh}
		if slices.Contains(points, point) {
			if !(value > 0 && value < 14) {
				return "", fmt.Errorf("%w: pH buffer %v is outside 0–14", ErrBadPoint, value)
			}
			return "Cal," + point + "," + strconv.FormatFloat(value, 'f', 2, 64), nil
		}
	case "DO":
		points = []string{PointAir, PointZero}
		switch point {
		case PointAir:
			return "Cal", nil
		case PointZero:
			return "Cal,0", nil
		}
	case "EC":
		points = []string{PointDry, PointSingle, PointLow, PointHigh}
		switch point {
		case PointDry:
			return "Cal,dry", nil
		case PointSingle, PointLow, PointHigh:
			if !(value > 0 && value <= 500000) {
				return "", fmt.Errorf("%w: standard %v µS/cm is outside 0–500000", ErrBadPoint, value)
			}
			v := strconv.FormatFloat(value, 'f', -1, 64)
			if point == PointSingle {
				return "Cal," + v, nil
			}
			return "Cal," + point + "," + v, nil
		}
	case "RTD":
		points = []string{PointSingle}
		if point == PointSingle {
			if !(value >= -126 && value <= 1254) || math.IsInf(value, 0) {
				return "", fmt.Errorf("%w: %v °C is outside -126–1254", ErrBadPoint, value)
			}
			return "Cal," + strconv.FormatFloat(value, 'f', 2, 64), nil
		}
	}
	return "", fmt.Errorf("%w: %q for a %s circuit (want %s or %s)", ErrBadPoint, point, c.name,
		strings.Join(points, ", "), PointClear)
}

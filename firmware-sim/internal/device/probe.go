package device

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Fault is a way a probe misbehaves.
type Fault string

// The faults. Each is a pure function of the probe's seed and the time, like the river.
const (
	// FaultNone: a healthy probe.
	FaultNone Fault = "none"
	// FaultNoise: a failing sensing element or electrical interference; heavy noise on top
	// of the true value (several times the normal spread).
	FaultNoise Fault = "noise"
	// FaultDrift: a fouled or ageing sensor; the reading walks away from the truth linearly
	// from the probe's origin time (fast enough to see within an hour).
	FaultDrift Fault = "drift"
	// FaultStuck: a frozen sensor or firmware; every reading repeats the value read at the
	// probe's origin time.
	FaultStuck Fault = "stuck"
	// FaultDropout: a loose cable or a radio link losing packets; about a third of the
	// readings are missing, partly in bursts of tens of seconds.
	FaultDropout Fault = "dropout"
	// FaultGarbage: corrupted messages; about one reading in three is replaced by an
	// invalid payload.
	FaultGarbage Fault = "garbage"
	// FaultSpike: electrical transients; about one reading in twenty jumps far away from
	// the truth (sometimes outside the plausible range) and the next is normal again.
	FaultSpike Fault = "spike"
)

// HasOnset reports whether the fault begins at the probe's origin (drift, stuck) rather
// than being on all the time.
func (f Fault) HasOnset() bool { return f == FaultDrift || f == FaultStuck }

// Faults lists every fault, FaultNone first.
func Faults() []Fault {
	return []Fault{FaultNone, FaultNoise, FaultDrift, FaultStuck, FaultDropout, FaultGarbage,
		FaultSpike}
}

// ParseFault resolves a fault name; the empty string is FaultNone.
func ParseFault(s string) (Fault, error) {
	if s == "" {
		return FaultNone, nil
	}
	for _, f := range Faults() {
		if string(f) == strings.ToLower(s) {
			return f, nil
		}
	}
	names := make([]string, 0, len(Faults()))
	for _, f := range Faults() {
		names = append(names, string(f))
	}
	return "", fmt.Errorf("unknown fault %q (want one of %s)", s, strings.Join(names, ", "))
}

// Sample is what a probe reports at one instant.
type Sample struct {
	// Value is the reading in the parameter's canonical unit, rounded to the probe's
	// resolution. Meaningless when OK is false or Garbage is true.
	Value float64
	// OK is false when the probe produced nothing at this instant (a dropout).
	OK bool
	// Garbage is true when the probe emits a corrupt message instead of a reading.
	Garbage bool
	// Nonce is a pseudo-random number fixed by the probe and the instant, for a transport
	// to choose how a garbage message looks.
	Nonce uint64
}

// Probe is one instrument measuring one parameter of a river. It is immutable and safe for
// concurrent use.
type Probe struct {
	model  *Model
	param  telemetry.Param
	fault  Fault
	origin time.Time
	key    uint64
	bias   float64
}

// NewProbe returns probe number index (each has its own calibration bias and fault
// timing) measuring p in m's river. origin is when a fault with a beginning sets in: a
// drifting probe is right until origin and walks away after; a stuck probe is healthy
// until origin and repeats its origin reading after. The other faults (noise, dropout,
// garbage, spike) are on all the time.
func NewProbe(m *Model, p telemetry.Param, index int, fault Fault, origin time.Time) *Probe {
	if fault == "" {
		fault = FaultNone
	}
	k := key(m.base, strKey(string(p)), uint64(index), 0x70726f6265) // "probe"
	pr := &Probe{model: m, param: p, fault: fault, origin: origin, key: k}
	// Calibration bias: a fifth of the fault scale, fixed per probe.
	pr.bias = 0.2 * gauss(k) * faultScale(p, 1)
	return pr
}

// Param returns the parameter the probe measures.
func (pr *Probe) Param() telemetry.Param { return pr.param }

// Fault returns the probe's fault mode.
func (pr *Probe) Fault() Fault { return pr.fault }

// Origin returns when a drift or a stuck value sets in.
func (pr *Probe) Origin() time.Time { return pr.origin }

// Read returns what the probe reports at t.
func (pr *Probe) Read(t time.Time) Sample {
	tk := key(pr.key, instant(t))
	s := Sample{OK: true, Nonce: mix(tk ^ 0x6e6f6e6365)}
	fault := pr.fault
	if fault.HasOnset() && t.Before(pr.origin) {
		fault = FaultNone
	}
	switch fault {
	case FaultDropout:
		// Bursts: a 20 s slot in eight is silent; and one reading in seven is lost alone.
		slot := floorDiv(t.UnixNano(), int64(20*time.Second))
		if unit(key(pr.key, 0xd0, uint64(slot))) < 1.0/8 || unit(tk^0xd1) < 1.0/7 {
			return Sample{Nonce: s.Nonce}
		}
	case FaultGarbage:
		if unit(tk^0x6a) < 1.0/3 {
			s.Garbage = true
		}
	case FaultStuck:
		t = pr.origin
	}
	v := pr.model.Value(pr.param, t)
	v = pr.calibrated(v)
	switch fault {
	case FaultNoise:
		v += 4 * gauss(tk^0x11) * faultScale(pr.param, v)
	case FaultDrift:
		hours := t.Sub(pr.origin).Hours()
		if hours > 0 {
			v += driftPerHour(pr.param, v) * hours
		}
	case FaultSpike:
		if unit(tk^0x5b) < 1.0/20 {
			sign := 1.0
			if unit(tk^0x5c) < 0.5 {
				sign = -1
			}
			size := 8 + 7*unit(tk^0x5d) // 8–15 fault scales
			if multiplicative(pr.param) {
				// A jump by a factor of about 5–12 up or down.
				v *= math.Exp(sign * size / 6.5)
			} else {
				v += sign * size * faultScale(pr.param, v)
			}
		}
	}
	info, _ := telemetry.Info(pr.param)
	v = math.Min(math.Max(v, info.Physical.Min), info.Physical.Max)
	s.Value = Round(pr.param, v)
	return s
}

// calibrated applies the probe's bias: additive for additive quantities, relative for the
// others.
func (pr *Probe) calibrated(v float64) float64 {
	if multiplicative(pr.param) {
		return v * (1 + pr.bias)
	}
	return v + pr.bias
}

// multiplicative reports whether errors in p scale with its value (concentrations and
// counts) rather than add to it (pH, DO, temperature).
func multiplicative(p telemetry.Param) bool {
	switch p {
	case telemetry.PH, telemetry.DO, telemetry.Temp, telemetry.AirTemp, telemetry.WaterLevel:
		return false
	}
	return true
}

// faultScale is a typical measurement error for p at value v: absolute for pH, DO and
// temperature, relative to v for the others (so FaultNoise and FaultSpike stay in
// proportion across rivers a hundred times more polluted than each other).
func faultScale(p telemetry.Param, v float64) float64 {
	switch p {
	case telemetry.PH:
		return 0.2
	case telemetry.DO:
		return 0.5
	case telemetry.Temp, telemetry.AirTemp:
		return 0.8
	case telemetry.WaterLevel:
		return 0.05 // a radar or pressure gauge, a few centimetres
	case telemetry.FC:
		return 0.5 * v
	}
	return 0.15 * v
}

// driftPerHour is how fast a drifting probe walks away: membranes of DO probes foul and read
// low, pH reference electrodes creep, optical windows of turbidity probes foul and read high.
func driftPerHour(p telemetry.Param, v float64) float64 {
	switch p {
	case telemetry.PH:
		return 0.1
	case telemetry.DO:
		return -0.5
	case telemetry.Temp, telemetry.AirTemp:
		return 0.3
	case telemetry.WaterLevel:
		return 0.02 // silt on a pressure sensor
	}
	return 0.1 * v
}

// decimals is the resolution each parameter is reported with, as digits after the point
// (Atlas Scientific EZO and typical multiparameter sondes).
var decimals = map[telemetry.Param]int{
	telemetry.PH: 2, telemetry.DO: 2, telemetry.BOD: 1, telemetry.FC: 0, telemetry.TDS: 0,
	telemetry.Temp: 2, telemetry.Turbidity: 1, telemetry.Conductivity: 0, telemetry.Chla: 1,
	telemetry.WaterLevel: 2, telemetry.Discharge: 1, telemetry.Rainfall: 1, telemetry.AirTemp: 1,
}

// Decimals returns how many digits after the decimal point a probe of p reports.
func Decimals(p telemetry.Param) int { return decimals[p] }

// Round rounds v to the resolution a probe of p reports. The result prints in its shortest
// form (strconv 'f', -1) with at most Decimals(p) digits.
func Round(p telemetry.Param, v float64) float64 {
	scale := math.Pow10(decimals[p])
	return math.Round(v*scale) / scale
}

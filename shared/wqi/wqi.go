// Package wqi computes the CPCB Water Quality Index: the NSF-based index over dissolved
// oxygen, fecal coliform, pH and BOD that India's Central Pollution Control Board uses, with
// the conversion of dissolved oxygen from mg/L to % saturation it needs.
//
// Compute is the entry point; SubIndex, Saturation, DOSaturationPct and Classify expose the
// steps so that other tools (a calculator, a report) use the very same equations. The source
// of every equation is named beside it.
//
// Everything here is pure: no I/O, no clock, no goroutines, no shared state. All functions
// are safe for concurrent use.
package wqi

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Errors returned by Compute and ParseDOMethod. Match them with errors.Is; a value that is
// NaN or infinite is reported with telemetry.ErrNotFinite.
var (
	ErrNoInputs        = errors.New("no index parameter given (need at least one of do, fc, ph, bod)")
	ErrOutOfDomain     = errors.New("value outside the range the index accepts")
	ErrUnknownDOMethod = errors.New("unknown DO saturation method")
)

// DefaultTempC is the water temperature assumed for the DO saturation when none is given.
const DefaultTempC = 25.0

// Classify returns the CPCB class and category of an index value. Lower bounds are
// inclusive: 63 is A, 62.999 is B. NaN is "D/E".
func Classify(wqi float64) (class, category string) {
	// CPCB classification of the NSF-based WQI.
	switch {
	case wqi >= 63:
		return "A", "Good to Excellent"
	case wqi >= 50:
		return "B", "Medium to Good"
	case wqi >= 38:
		return "C", "Bad"
	default:
		return "D/E", "Bad to Very Bad"
	}
}

// Input is what Compute works from. The zero value of each optional field means its default.
type Input struct {
	// Values holds the latest value of each parameter in its canonical unit: do in mg/L, fc
	// in MPN/100mL, ph, bod in mg/L, and optionally temp in degC (water temperature, for the
	// DO saturation; DefaultTempC when absent). Any of do, fc, ph and bod may be missing
	// (the index is then partial); other parameters are ignored. Each value must lie in its
	// parameter's physical range (telemetry.Info): anything outside is a bad reading.
	Values map[telemetry.Param]float64
	// Method converts DO to % saturation; zero means BensonKrause.
	Method DOMethod
	// PressureAtm is the station's barometric pressure in atm (see PressureAtElevation);
	// zero means 1 atm. Only BensonKrause uses it.
	PressureAtm float64
}

// The ranges Compute accepts beyond the physical ranges of telemetry. Values outside are
// instrument or configuration errors, and an index computed from them would be silently
// wrong.
const (
	// APHA 4500-O tabulates the Benson & Krause saturation over 0–50 °C.
	minTempC, maxTempC = 0.0, 50.0
	// Barometric pressure from about −800 m to 5,500 m of elevation.
	minPressureAtm, maxPressureAtm = 0.5, 1.1
)

// domain is the accepted range of an input, with its unit for messages.
type domain struct {
	name   string
	lo, hi float64
	unit   string
}

// physicalDomain is the physical range of p (telemetry.ParamInfo): a value outside it is a
// bad reading, which never feeds the index.
func physicalDomain(p telemetry.Param) domain {
	info, _ := telemetry.Info(p)
	return domain{string(p), info.Physical.Min, info.Physical.Max, info.Unit}
}

// check reports a value outside d.
func (d domain) check(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("%s = %v: %w", d.name, v, telemetry.ErrNotFinite)
	}
	if v < d.lo || v > d.hi {
		return fmt.Errorf("%s = %v %s is outside %v–%v %s: %w", d.name, v, d.unit, d.lo, d.hi,
			d.unit, ErrOutOfDomain)
	}
	return nil
}

// Result is a computed index. Its JSON form is the contract shape (see MarshalJSON).
type Result struct {
	// WQI is the index, 0–100, at full precision (JSON rounds it to 2 decimals).
	WQI float64
	// Class is "A", "B", "C" or "D/E" and Category its CPCB name. They are the class of WQI
	// rounded to 2 decimals, so that the reported value and class never disagree (62.999 is
	// reported as 63.00, class A).
	Class    string
	Category string
	// SubIndices holds the sub-index of each parameter used, 0–100.
	SubIndices map[telemetry.Param]float64
	// DOSaturationPct is the DO as % saturation fed to the DO sub-index; zero when DO is
	// missing.
	DOSaturationPct float64
	// Partial is true when some of do, fc, ph, bod were missing: WQI is then the weighted sum
	// over the present ones divided by the sum of their weights.
	Partial bool
	// Missing and Used list the absent and present index parameters in the order do, fc,
	// ph, bod. Missing is empty, never nil, for a full index.
	Missing []telemetry.Param
	Used    []telemetry.Param
	// Method, TempC and PressureAtm are what the DO conversion used (with defaults filled
	// in); TempAssumed says TempC is DefaultTempC because no temperature was given.
	Method      DOMethod
	TempC       float64
	TempAssumed bool
	PressureAtm float64
}

// Compute returns the CPCB WQI of in. It fails with ErrNoInputs when none of do, fc, ph, bod
// is present, with telemetry.ErrNotFinite when an input is NaN or infinite, with
// ErrOutOfDomain when a value is impossible (outside the parameter's physical range in
// telemetry, pressure outside 0.5–1.1 atm, or, when Benson & Krause needs it, temperature
// outside 0–50 °C), and with ErrUnknownDOMethod; every problem is reported, naming its parameter.
func Compute(in Input) (Result, error) {
	r := Result{
		Method:      in.Method.orDefault(),
		PressureAtm: in.PressureAtm,
		SubIndices:  make(map[telemetry.Param]float64, len(weights)),
		Missing:     []telemetry.Param{},
		Used:        make([]telemetry.Param, 0, len(weights)), // one allocation, not three
	}
	if r.PressureAtm == 0 {
		r.PressureAtm = 1
	}
	temp, hasTemp := in.Values[telemetry.Temp]
	r.TempC, r.TempAssumed = temp, !hasTemp
	if !hasTemp {
		r.TempC = DefaultTempC
	}

	var errs []error
	if r.Method != BensonKrause && r.Method != MPCB {
		errs = append(errs, fmt.Errorf("%w: %q (want %s or %s)", ErrUnknownDOMethod, in.Method,
			BensonKrause, MPCB))
	}
	for _, w := range weights {
		if v, ok := in.Values[w.param]; ok {
			if err := physicalDomain(w.param).check(v); err != nil {
				errs = append(errs, err)
			}
		}
	}
	_, hasDO := in.Values[telemetry.DO]
	tempDomain := domain{string(telemetry.Temp), math.Inf(-1), math.Inf(1), "degC"}
	if hasDO && r.Method == BensonKrause {
		tempDomain.lo, tempDomain.hi = minTempC, maxTempC
	}
	if hasTemp {
		if err := tempDomain.check(temp); err != nil {
			errs = append(errs, err)
		}
	}
	pressureDomain := domain{"pressure", minPressureAtm, maxPressureAtm, "atm"}
	if err := pressureDomain.check(r.PressureAtm); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return Result{}, errors.Join(errs...)
	}

	var sum, weightSum float64
	for _, w := range weights {
		x, ok := in.Values[w.param]
		if !ok {
			r.Missing = append(r.Missing, w.param)
			continue
		}
		if w.param == telemetry.DO {
			x = DOSaturationPct(x, r.TempC, r.PressureAtm, r.Method)
			r.DOSaturationPct = x
		}
		sub, _ := SubIndex(w.param, x)
		r.SubIndices[w.param] = sub
		r.Used = append(r.Used, w.param)
		// CPCB: WQI = Σ wᵢ·Iᵢ; with parameters missing, Σ wᵢ·Iᵢ / Σ wᵢ over the present ones.
		sum += w.weight * sub
		weightSum += w.weight
	}
	if len(r.Used) == 0 {
		return Result{}, ErrNoInputs
	}
	r.Partial = len(r.Missing) > 0
	if r.Partial {
		sum /= weightSum
	}
	// The weights sum to 1 only up to rounding; keep the index inside its range.
	r.WQI = clamp(sum)
	r.Class, r.Category = Classify(round(r.WQI, 2))
	return r, nil
}

// round rounds v half away from zero to the given number of decimals, as written in
// decimal: binary noise is removed first, so 93.085 (stored as 93.08499999999998) gives
// 93.09.
func round(v float64, decimals int) float64 {
	scale := math.Pow10(decimals)
	scaled := v * scale
	if math.Abs(scaled) < 1e9 {
		scaled = math.Round(scaled*1e6) / 1e6
	}
	return math.Round(scaled) / scale
}

// resultJSON is the wire form of Result.
type resultJSON struct {
	WQI             float64           `json:"wqi"`
	Class           string            `json:"class"`
	Category        string            `json:"category"`
	SubIndices      subIndicesJSON    `json:"sub_indices"`
	DOSaturationPct *float64          `json:"do_saturation_pct,omitempty"`
	Partial         bool              `json:"partial"`
	Missing         []telemetry.Param `json:"missing"`
	Used            []telemetry.Param `json:"used"`
	DOMethod        DOMethod          `json:"do_method"`
	TempC           float64           `json:"temp_c"`
	TempAssumed     bool              `json:"temp_assumed"`
	PressureAtm     float64           `json:"pressure_atm"`
}

// subIndicesJSON keeps the sub-indices in the index's own order (a map would sort them).
type subIndicesJSON struct {
	DO  *float64 `json:"do,omitempty"`
	FC  *float64 `json:"fc,omitempty"`
	PH  *float64 `json:"ph,omitempty"`
	BOD *float64 `json:"bod,omitempty"`
}

// fields returns pointers to the sub-index fields by parameter.
func (s *subIndicesJSON) fields() map[telemetry.Param]**float64 {
	return map[telemetry.Param]**float64{
		telemetry.DO: &s.DO, telemetry.FC: &s.FC, telemetry.PH: &s.PH, telemetry.BOD: &s.BOD,
	}
}

// MarshalJSON writes the contract shape: wqi and sub_indices rounded to 2 decimals,
// do_saturation_pct to 1 decimal and omitted when DO is missing, pressure_atm to 4 decimals,
// missing as [] when nothing is missing.
func (r Result) MarshalJSON() ([]byte, error) {
	w := resultJSON{
		WQI:         round(r.WQI, 2),
		Class:       r.Class,
		Category:    r.Category,
		Partial:     r.Partial,
		Missing:     r.Missing,
		Used:        r.Used,
		DOMethod:    r.Method,
		TempC:       r.TempC,
		TempAssumed: r.TempAssumed,
		PressureAtm: round(r.PressureAtm, 4),
	}
	if w.Missing == nil {
		w.Missing = []telemetry.Param{}
	}
	if w.Used == nil {
		w.Used = []telemetry.Param{}
	}
	for p, field := range w.SubIndices.fields() {
		if v, ok := r.SubIndices[p]; ok {
			v = round(v, 2)
			*field = &v
		}
	}
	if _, ok := r.SubIndices[telemetry.DO]; ok {
		v := round(r.DOSaturationPct, 1)
		w.DOSaturationPct = &v
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the form MarshalJSON writes (values come back rounded as written).
func (r *Result) UnmarshalJSON(data []byte) error {
	var w resultJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*r = Result{
		WQI:         w.WQI,
		Class:       w.Class,
		Category:    w.Category,
		SubIndices:  make(map[telemetry.Param]float64, len(weights)),
		Partial:     w.Partial,
		Missing:     w.Missing,
		Used:        w.Used,
		Method:      w.DOMethod,
		TempC:       w.TempC,
		TempAssumed: w.TempAssumed,
		PressureAtm: w.PressureAtm,
	}
	if r.Missing == nil {
		r.Missing = []telemetry.Param{}
	}
	for p, field := range w.SubIndices.fields() {
		if *field != nil {
			r.SubIndices[p] = **field
		}
	}
	if w.DOSaturationPct != nil {
		r.DOSaturationPct = *w.DOSaturationPct
	}
	return nil
}

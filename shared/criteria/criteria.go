// Package criteria holds the limits water-quality alerts are raised against: the CPCB
// Primary Water Quality Criteria for Designated Best Use (classes A–E), the CPCB
// bathing-water criteria, the BIS IS 10500:2012 drinking-water reference, and the MPCB
// display classes.
//
// A Limit is one bound on one parameter. It says whether a value violates it (strictly
// beyond), whether a value is back inside by a hysteresis margin (so an alert does not flap
// around the limit), how severe a violation is, and how to say so in one sentence.
//
// # Severity
//
// Every violation has at least the limit's Severity. A violation far beyond the limit is
// critical; "far" is stated per limit in CriticalBeyond and follows one rule:
//
//   - coliform: above 10× the limit (counts are log-normally distributed and an MPN count's
//     95 % interval spans a factor of about three, so less than an order of magnitude is
//     not "far");
//   - dissolved oxygen: below half the minimum;
//   - pH: outside the range by more than 1 unit (a tenfold change in acidity);
//   - BOD and conductivity: above twice the limit.
//
// Where a rule set publishes two tiers itself (bathing FC 500 desirable / 2500 maximum
// permissible; BIS acceptable / permissible), the lower tier is a warning with no escalation
// and the upper tier is its own critical limit.
//
// # Caveats
//
// Class limits on coliform are for total coliform; stations measure fecal coliform. Since
// total coliform is never below fecal coliform, a fecal count above the limit is a certain
// violation, and that is what the fc limits here detect; a fecal count below the limit says
// nothing about total coliform. Messages say so.
//
// Class D also limits free ammonia (as N) to 1.2 mg/L; stations do not measure it, so it has
// no Limit here.
//
// Everything here is pure: no I/O, no clock, no shared mutable state. All functions are safe
// for concurrent use, and every function returning []Limit returns a fresh slice the caller
// may change.
package criteria

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// ErrUnknownClass is returned by ParseClass. Match it with errors.Is.
var ErrUnknownClass = errors.New("unknown CPCB designated-best-use class")

// Class is a CPCB designated-best-use class, "A" to "E".
type Class string

// The classes.
const (
	ClassA Class = "A"
	ClassB Class = "B"
	ClassC Class = "C"
	ClassD Class = "D"
	ClassE Class = "E"
)

// ParseClass resolves a class letter, ignoring case and surrounding space.
func ParseClass(s string) (Class, error) {
	c := Class(strings.ToUpper(strings.TrimSpace(s)))
	if _, ok := classUse[c]; !ok {
		return "", fmt.Errorf("%w: %q (want one of A, B, C, D, E)", ErrUnknownClass, s)
	}
	return c, nil
}

// classUse names the designated best use of each class (CPCB).
var classUse = map[Class]string{
	ClassA: "drinking water source after disinfection",
	ClassB: "organised outdoor bathing",
	ClassC: "drinking water source after conventional treatment",
	ClassD: "wildlife and fisheries",
	ClassE: "irrigation, industrial cooling, controlled waste disposal",
}

// Use returns the designated best use of c, or "" for an unknown class.
func (c Class) Use() string { return classUse[c] }

// Set returns the name of c's rule set, e.g. "cpcb-class-B".
func (c Class) Set() string { return "cpcb-class-" + string(c) }

// The names of the other rule sets (Limit.Set).
const (
	SetBathing           = "bathing"
	SetDrinkingReference = "bis-10500"
)

// Bound says which side of a limit is allowed.
type Bound int

// The bounds. The zero Bound is invalid: a Limit with it is never violated.
const (
	Min Bound = iota + 1 // the value must be at least Limit.Value
	Max                  // the value must be at most Limit.Value
)

// String returns "min" or "max".
func (b Bound) String() string {
	switch b {
	case Min:
		return "min"
	case Max:
		return "max"
	}
	return "Bound(" + strconv.Itoa(int(b)) + ")"
}

// Severity grades a violation.
type Severity string

// The severities a Limit gives. None means "not violated".
const (
	None     Severity = ""
	Warning  Severity = "warning"
	Critical Severity = "critical"
)

// Limit is one bound on one parameter, in the parameter's canonical unit.
type Limit struct {
	Set   string // rule set: "cpcb-class-B", "bathing", "bis-10500"
	Param telemetry.Param
	Bound Bound
	Value float64
	// Label names the limit so that "the <Label> of <Value>" reads well, e.g. "CPCB class B
	// (organised outdoor bathing) maximum".
	Label string
	// Severity is the severity of any violation.
	Severity Severity
	// CriticalBeyond, when not zero, is the value beyond which (strictly, on the violating
	// side) a violation is Critical whatever Severity says. See the package comment.
	CriticalBeyond float64
	// Note, when not empty, is added to the message of a violation.
	Note string
}

// Violated reports whether v is strictly beyond the limit: with DO ≥ 6, 5.99 violates and 6
// does not. NaN violates nothing.
func (l Limit) Violated(v float64) bool {
	switch l.Bound {
	case Min:
		return v < l.Value
	case Max:
		return v > l.Value
	}
	return false
}

// Cleared reports whether v is back inside the limit by a margin of deadband·|Value|
// (hysteresis: an alert opened by Violated closes only on Cleared, so a value hovering at
// the limit does not flap). With DO ≥ 5 and deadband 0.1, 5.5 clears and 5.4 does not. A
// deadband of zero (or negative, or NaN) makes Cleared the opposite of Violated. NaN clears
// nothing.
func (l Limit) Cleared(v, deadband float64) bool {
	if !(deadband > 0) {
		deadband = 0
	}
	margin := deadband * math.Abs(l.Value)
	switch l.Bound {
	case Min:
		return v >= l.Value+margin
	case Max:
		return v <= l.Value-margin
	}
	return false
}

// SeverityFor returns the severity of v against the limit: None when not violated, Critical
// when beyond CriticalBeyond, Severity otherwise.
func (l Limit) SeverityFor(v float64) Severity {
	if !l.Violated(v) {
		return None
	}
	if l.CriticalBeyond != 0 {
		if (l.Bound == Min && v < l.CriticalBeyond) || (l.Bound == Max && v > l.CriticalBeyond) {
			return Critical
		}
	}
	return l.Severity
}

// Message says in one sentence where v stands against the limit, e.g. "Dissolved oxygen
// 4.2 mg/L is below the CPCB class B (organised outdoor bathing) minimum of 5 mg/L." unit is
// the unit of v and of the limit; empty means the parameter's canonical unit.
func (l Limit) Message(v float64, unit string) string {
	if unit == "" {
		if info, ok := telemetry.Info(l.Param); ok {
			unit = info.Unit
		}
	}
	withUnit := func(s string) string {
		// pH is a bare number: "pH 9.1", not "pH 9.1 pH".
		if unit == "" || strings.EqualFold(unit, "pH") {
			return s
		}
		return s + " " + unit
	}
	var relation string
	switch violated := l.Violated(v); {
	case l.Bound == Min && violated:
		relation = "is below"
	case l.Bound == Min:
		relation = "is not below"
	case violated:
		relation = "is above"
	default:
		relation = "is not above"
	}
	msg := fmt.Sprintf("%s %s %s the %s of %s", paramName(l.Param),
		withUnit(formatValue(v, l.Value)), relation, l.Label,
		withUnit(strconv.FormatFloat(l.Value, 'f', -1, 64)))
	if l.Note != "" && l.Violated(v) {
		msg += "; " + l.Note
	}
	return msg + "."
}

// paramName is how a parameter starts a sentence.
func paramName(p telemetry.Param) string {
	switch p {
	case telemetry.PH:
		return "pH"
	case telemetry.DO:
		return "Dissolved oxygen"
	case telemetry.BOD:
		return "BOD"
	case telemetry.FC:
		return "Fecal coliform"
	case telemetry.TDS:
		return "TDS"
	case telemetry.Temp:
		return "Temperature"
	case telemetry.Turbidity:
		return "Turbidity"
	case telemetry.Conductivity:
		return "Conductivity"
	case telemetry.Chla:
		return "Chlorophyll-a"
	}
	return string(p)
}

// formatValue writes v with 4 significant digits (all integer digits), or more when needed
// to tell it apart from limit: DO 5.9999 against 6 reads "5.9999", never "6".
func formatValue(v, limit float64) string {
	for sig := 4; sig <= 17; sig++ {
		s := formatSignificant(v, sig)
		if v == limit || s != formatSignificant(limit, sig) {
			return s
		}
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// formatSignificant writes v with sig significant digits in plain decimal notation, without
// trailing zeros.
func formatSignificant(v float64, sig int) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	decimals := max(sig-1-int(math.Floor(math.Log10(math.Abs(v)))), 0)
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

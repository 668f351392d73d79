package criteria

import (
	"fmt"
	"math"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// totalColiformNote goes with every class limit applied to fecal coliform.
const totalColiformNote = "the limit is for total coliform, which is never below fecal " +
	"coliform, so it is certainly exceeded"

// The escalation rules of the package comment, as functions of the limit value.
func coliformCritical(limit float64) float64 { return 10 * limit }
func oxygenCritical(limit float64) float64   { return limit / 2 }
func phMinCritical(limit float64) float64    { return limit - 1 }
func phMaxCritical(limit float64) float64    { return limit + 1 }
func doubleCritical(limit float64) float64   { return 2 * limit }

// classRow is one row of the CPCB designated-best-use table. NaN means "no criterion".
type classRow struct {
	totalColiform  float64 // MPN/100 mL, maximum
	phMin, phMax   float64
	doMin          float64 // mg/L
	bodMax         float64 // mg/L, 5-day 20 °C
	conductivityUS float64 // µS/cm, maximum
}

// CPCB Primary Water Quality Criteria for Designated Best Use. Class D's free ammonia
// (≤ 1.2 mg/L as N) is not measured and so not listed.
var classRows = map[Class]classRow{
	ClassA: {totalColiform: 50, phMin: 6.5, phMax: 8.5, doMin: 6, bodMax: 2, conductivityUS: math.NaN()},
	ClassB: {totalColiform: 500, phMin: 6.5, phMax: 8.5, doMin: 5, bodMax: 3, conductivityUS: math.NaN()},
	ClassC: {totalColiform: 5000, phMin: 6, phMax: 9, doMin: 4, bodMax: 3, conductivityUS: math.NaN()},
	ClassD: {totalColiform: math.NaN(), phMin: 6.5, phMax: 8.5, doMin: 4, bodMax: math.NaN(),
		conductivityUS: math.NaN()},
	ClassE: {totalColiform: math.NaN(), phMin: 6.0, phMax: 8.5, doMin: math.NaN(),
		bodMax: math.NaN(), conductivityUS: 2250},
}

// DesignatedBestUse returns the CPCB Primary Water Quality Criteria for class c on the
// parameters stations measure, all warnings escalating to critical far beyond (see the
// package comment), or nil for an unknown class:
//
//	A  total coliform ≤ 50, pH 6.5–8.5, DO ≥ 6, BOD ≤ 2
//	B  total coliform ≤ 500, pH 6.5–8.5, DO ≥ 5, BOD ≤ 3
//	C  total coliform ≤ 5000, pH 6–9, DO ≥ 4, BOD ≤ 3
//	D  pH 6.5–8.5, DO ≥ 4 (free ammonia ≤ 1.2: not measured, not listed)
//	E  pH 6.0–8.5, conductivity ≤ 2250 µS/cm
//
// The total-coliform limits apply to fc (Param telemetry.FC), with a Note saying so.
func DesignatedBestUse(c Class) []Limit {
	row, ok := classRows[c]
	if !ok {
		return nil
	}
	set := c.Set()
	label := func(what string) string {
		return fmt.Sprintf("CPCB class %s (%s) %s", c, c.Use(), what)
	}
	var out []Limit
	if !math.IsNaN(row.totalColiform) {
		out = append(out, Limit{Set: set, Param: telemetry.FC, Bound: Max,
			Value: row.totalColiform, Label: label("total coliform limit"), Severity: Warning,
			CriticalBeyond: coliformCritical(row.totalColiform), Note: totalColiformNote})
	}
	out = append(out,
		Limit{Set: set, Param: telemetry.PH, Bound: Min, Value: row.phMin,
			Label: label("minimum"), Severity: Warning, CriticalBeyond: phMinCritical(row.phMin)},
		Limit{Set: set, Param: telemetry.PH, Bound: Max, Value: row.phMax,
			Label: label("maximum"), Severity: Warning, CriticalBeyond: phMaxCritical(row.phMax)},
	)
	if !math.IsNaN(row.doMin) {
		out = append(out, Limit{Set: set, Param: telemetry.DO, Bound: Min, Value: row.doMin,
			Label: label("minimum"), Severity: Warning, CriticalBeyond: oxygenCritical(row.doMin)})
	}
	if !math.IsNaN(row.bodMax) {
		out = append(out, Limit{Set: set, Param: telemetry.BOD, Bound: Max, Value: row.bodMax,
			Label: label("maximum"), Severity: Warning, CriticalBeyond: doubleCritical(row.bodMax)})
	}
	if !math.IsNaN(row.conductivityUS) {
		out = append(out, Limit{Set: set, Param: telemetry.Conductivity, Bound: Max,
			Value: row.conductivityUS, Label: label("maximum"), Severity: Warning,
			CriticalBeyond: doubleCritical(row.conductivityUS)})
	}
	return out
}

// Bathing returns the CPCB bathing-water criteria (as printed in CPCB water quality yearbook
// tables): FC ≤ 500 desirable (warning) and ≤ 2500 maximum permissible (critical), DO ≥ 5,
// pH 6.5–8.5, BOD ≤ 3. These limits are for fecal coliform itself.
func Bathing() []Limit {
	const set = SetBathing
	return []Limit{
		{Set: set, Param: telemetry.FC, Bound: Max, Value: 500,
			Label: "CPCB bathing-water desirable limit", Severity: Warning},
		{Set: set, Param: telemetry.FC, Bound: Max, Value: 2500,
			Label: "CPCB bathing-water maximum permissible limit", Severity: Critical},
		{Set: set, Param: telemetry.DO, Bound: Min, Value: 5,
			Label: "CPCB bathing-water minimum", Severity: Warning, CriticalBeyond: oxygenCritical(5)},
		{Set: set, Param: telemetry.PH, Bound: Min, Value: 6.5,
			Label: "CPCB bathing-water minimum", Severity: Warning, CriticalBeyond: phMinCritical(6.5)},
		{Set: set, Param: telemetry.PH, Bound: Max, Value: 8.5,
			Label: "CPCB bathing-water maximum", Severity: Warning, CriticalBeyond: phMaxCritical(8.5)},
		{Set: set, Param: telemetry.BOD, Bound: Max, Value: 3,
			Label: "CPCB bathing-water maximum", Severity: Warning, CriticalBeyond: doubleCritical(3)},
	}
}

// The BIS label prefix: these are a reference for drinking water, not river criteria.
const bisLabel = "drinking-water reference (BIS IS 10500:2012)"

// DrinkingReference returns the drinking-water reference of BIS IS 10500:2012: pH 6.5–8.5
// (no relaxation), turbidity 1 NTU acceptable (warning) / 5 NTU permissible (critical), TDS
// 500 mg/L acceptable (warning) / 2000 mg/L permissible (critical). It is a standard for
// water as delivered, shown beside river data for reference: its labels say so.
func DrinkingReference() []Limit {
	const set = SetDrinkingReference
	return []Limit{
		{Set: set, Param: telemetry.PH, Bound: Min, Value: 6.5,
			Label: bisLabel + " minimum", Severity: Warning, CriticalBeyond: phMinCritical(6.5)},
		{Set: set, Param: telemetry.PH, Bound: Max, Value: 8.5,
			Label: bisLabel + " maximum", Severity: Warning, CriticalBeyond: phMaxCritical(8.5)},
		{Set: set, Param: telemetry.Turbidity, Bound: Max, Value: 1,
			Label: bisLabel + " acceptable limit", Severity: Warning},
		{Set: set, Param: telemetry.Turbidity, Bound: Max, Value: 5,
			Label: bisLabel + " permissible limit", Severity: Critical},
		{Set: set, Param: telemetry.TDS, Bound: Max, Value: 500,
			Label: bisLabel + " acceptable limit", Severity: Warning},
		{Set: set, Param: telemetry.TDS, Bound: Max, Value: 2000,
			Label: bisLabel + " permissible limit", Severity: Critical},
	}
}

// The MPCB display classes, best first, and what each requires (BOD at most, DO at least;
// mg/L).
var mpcbClasses = [...]struct {
	name          string
	bodMax, doMin float64
}{
	{"A-I", 2, 5},
	{"A-II", 5, 4},
	{"A-III", 10, 3},
	{"A-IV", 30, 2},
}

// MPCBBelowAIV is what MPCBClass returns for water that meets no MPCB class.
const MPCBBelowAIV = "below A-IV"

// MPCBClass returns the best MPCB state class that BOD and DO (mg/L) both meet, for display:
// "A-I" (BOD ≤ 2, DO ≥ 5), "A-II" (BOD ≤ 5, DO ≥ 4), "A-III" (BOD ≤ 10, DO ≥ 3), "A-IV"
// (BOD ≤ 30, DO ≥ 2), else MPCBBelowAIV. It returns "" when either value is NaN.
func MPCBClass(bod, do float64) string {
	if math.IsNaN(bod) || math.IsNaN(do) {
		return ""
	}
	for _, c := range mpcbClasses {
		if bod <= c.bodMax && do >= c.doMin {
			return c.name
		}
	}
	return MPCBBelowAIV
}

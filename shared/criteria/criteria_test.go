package criteria_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/criteria"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// row is the part of a Limit a criteria table states.
type row struct {
	param    telemetry.Param
	bound    criteria.Bound
	value    float64
	severity criteria.Severity
	critical float64 // CriticalBeyond
}

func rows(limits []criteria.Limit) []row {
	out := make([]row, 0, len(limits))
	for _, l := range limits {
		out = append(out, row{l.Param, l.Bound, l.Value, l.Severity, l.CriticalBeyond})
	}
	return out
}

// allLimits returns every limit of every rule set.
func allLimits() []criteria.Limit {
	var all []criteria.Limit
	for _, c := range []criteria.Class{criteria.ClassA, criteria.ClassB, criteria.ClassC,
		criteria.ClassD, criteria.ClassE} {
		all = append(all, criteria.DesignatedBestUse(c)...)
	}
	all = append(all, criteria.Bathing()...)
	return append(all, criteria.DrinkingReference()...)
}

func TestParseClass(t *testing.T) {
	tests := []struct {
		in      string
		want    criteria.Class
		wantErr bool
	}{
		{"A", criteria.ClassA, false},
		{"b", criteria.ClassB, false},
		{" C ", criteria.ClassC, false},
		{"d", criteria.ClassD, false},
		{"E", criteria.ClassE, false},
		{"", "", true},
		{"F", "", true},
		{"AB", "", true},
		{"class B", "", true},
		{"D/E", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := criteria.ParseClass(tt.in)
			if tt.wantErr {
				require.ErrorIs(t, err, criteria.ErrUnknownClass)
				assert.Contains(t, err.Error(), fmt.Sprintf("%q", tt.in), "the error names the bad value")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func FuzzParseClass(f *testing.F) {
	for _, s := range []string{"A", "e", " b\t", "", "F", "\xff", "AA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := criteria.ParseClass(s)
		if err != nil {
			assert.ErrorIs(t, err, criteria.ErrUnknownClass)
			return
		}
		assert.NotEmpty(t, c.Use(), "a parsed class has a use")
		assert.NotEmpty(t, criteria.DesignatedBestUse(c), "a parsed class has limits")
		again, err := criteria.ParseClass(string(c))
		require.NoError(t, err)
		assert.Equal(t, c, again)
	})
}

func TestClassUseAndSet(t *testing.T) {
	assert.Equal(t, "organised outdoor bathing", criteria.ClassB.Use())
	assert.Equal(t, "cpcb-class-B", criteria.ClassB.Set())
	assert.Empty(t, criteria.Class("F").Use())
}

func TestDesignatedBestUse(t *testing.T) {
	// The CPCB table (science.md §2), row by row, with the escalation rule of the package
	// comment: FC 10×, DO half, pH ±1, BOD and EC 2×.
	const fc, ph, do, bod, ec = telemetry.FC, telemetry.PH, telemetry.DO, telemetry.BOD,
		telemetry.Conductivity
	const lo, hi, warn = criteria.Min, criteria.Max, criteria.Warning
	tests := []struct {
		class criteria.Class
		want  []row
	}{
		{criteria.ClassA, []row{
			{fc, hi, 50, warn, 500}, {ph, lo, 6.5, warn, 5.5}, {ph, hi, 8.5, warn, 9.5},
			{do, lo, 6, warn, 3}, {bod, hi, 2, warn, 4},
		}},
		{criteria.ClassB, []row{
			{fc, hi, 500, warn, 5000}, {ph, lo, 6.5, warn, 5.5}, {ph, hi, 8.5, warn, 9.5},
			{do, lo, 5, warn, 2.5}, {bod, hi, 3, warn, 6},
		}},
		{criteria.ClassC, []row{
			{fc, hi, 5000, warn, 50000}, {ph, lo, 6, warn, 5}, {ph, hi, 9, warn, 10},
			{do, lo, 4, warn, 2}, {bod, hi, 3, warn, 6},
		}},
		{criteria.ClassD, []row{ // free ammonia ≤ 1.2 is not measured
			{ph, lo, 6.5, warn, 5.5}, {ph, hi, 8.5, warn, 9.5}, {do, lo, 4, warn, 2},
		}},
		{criteria.ClassE, []row{
			{ph, lo, 6.0, warn, 5}, {ph, hi, 8.5, warn, 9.5}, {ec, hi, 2250, warn, 4500},
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.class), func(t *testing.T) {
			limits := criteria.DesignatedBestUse(tt.class)
			assert.Equal(t, tt.want, rows(limits))
			for _, l := range limits {
				assert.Equal(t, "cpcb-class-"+string(tt.class), l.Set)
				assert.True(t, strings.HasPrefix(l.Label, "CPCB class "+string(tt.class)+" ("),
					"label %q names the class", l.Label)
				if l.Param == telemetry.FC {
					assert.Contains(t, l.Label, "total coliform")
					assert.Contains(t, l.Note, "total coliform")
				} else {
					assert.Empty(t, l.Note)
				}
			}
		})
	}
	assert.Nil(t, criteria.DesignatedBestUse("F"))
	assert.Nil(t, criteria.DesignatedBestUse(""))
}

func TestLimitsAreFresh(t *testing.T) {
	for name, get := range map[string]func() []criteria.Limit{
		"class":    func() []criteria.Limit { return criteria.DesignatedBestUse(criteria.ClassA) },
		"bathing":  criteria.Bathing,
		"drinking": criteria.DrinkingReference,
	} {
		t.Run(name, func(t *testing.T) {
			first := get()
			want := first[0].Value
			first[0].Value = -1
			assert.Equal(t, want, get()[0].Value, "changing a returned slice must not change the next")
		})
	}
}

func TestBathing(t *testing.T) {
	want := []row{
		{telemetry.FC, criteria.Max, 500, criteria.Warning, 0},
		{telemetry.FC, criteria.Max, 2500, criteria.Critical, 0},
		{telemetry.DO, criteria.Min, 5, criteria.Warning, 2.5},
		{telemetry.PH, criteria.Min, 6.5, criteria.Warning, 5.5},
		{telemetry.PH, criteria.Max, 8.5, criteria.Warning, 9.5},
		{telemetry.BOD, criteria.Max, 3, criteria.Warning, 6},
	}
	limits := criteria.Bathing()
	assert.Equal(t, want, rows(limits))
	for _, l := range limits {
		assert.Equal(t, criteria.SetBathing, l.Set)
		assert.Contains(t, l.Label, "bathing-water")
		assert.Empty(t, l.Note, "bathing limits are for fecal coliform itself")
	}
}

func TestDrinkingReference(t *testing.T) {
	want := []row{
		{telemetry.PH, criteria.Min, 6.5, criteria.Warning, 5.5},
		{telemetry.PH, criteria.Max, 8.5, criteria.Warning, 9.5},
		{telemetry.Turbidity, criteria.Max, 1, criteria.Warning, 0},
		{telemetry.Turbidity, criteria.Max, 5, criteria.Critical, 0},
		{telemetry.TDS, criteria.Max, 500, criteria.Warning, 0},
		{telemetry.TDS, criteria.Max, 2000, criteria.Critical, 0},
	}
	limits := criteria.DrinkingReference()
	assert.Equal(t, want, rows(limits))
	for _, l := range limits {
		assert.Equal(t, criteria.SetDrinkingReference, l.Set)
		assert.True(t, strings.HasPrefix(l.Label, "drinking-water reference (BIS IS 10500:2012)"),
			"label %q must say it is a drinking-water reference", l.Label)
		assert.NotContains(t, l.Label, "CPCB")
	}
}

func TestViolated(t *testing.T) {
	doMin := criteria.Limit{Param: telemetry.DO, Bound: criteria.Min, Value: 6}
	bodMax := criteria.Limit{Param: telemetry.BOD, Bound: criteria.Max, Value: 3}
	tests := []struct {
		name  string
		limit criteria.Limit
		v     float64
		want  bool
	}{
		{"DO 5.99 below 6", doMin, 5.99, true},
		{"DO exactly 6", doMin, 6, false},
		{"DO 6.01", doMin, 6.01, false},
		{"DO 0", doMin, 0, true},
		{"DO NaN", doMin, math.NaN(), false},
		{"DO -Inf", doMin, math.Inf(-1), true},
		{"BOD 3.01 above 3", bodMax, 3.01, true},
		{"BOD exactly 3", bodMax, 3, false},
		{"BOD 2.99", bodMax, 2.99, false},
		{"BOD NaN", bodMax, math.NaN(), false},
		{"BOD +Inf", bodMax, math.Inf(1), true},
		{"zero Bound never violated", criteria.Limit{Value: 3}, 100, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.limit.Violated(tt.v))
		})
	}
}

func TestViolatedAtEveryLimit(t *testing.T) {
	// Exactly at the limit is allowed; the next float beyond is not.
	for _, l := range allLimits() {
		t.Run(fmt.Sprintf("%s/%s/%s/%v", l.Set, l.Param, l.Bound, l.Value), func(t *testing.T) {
			beyond := math.Nextafter(l.Value, math.Inf(1))
			inside := math.Nextafter(l.Value, math.Inf(-1))
			if l.Bound == criteria.Min {
				beyond, inside = inside, beyond
			}
			assert.False(t, l.Violated(l.Value), "at the limit is not a violation")
			assert.True(t, l.Violated(beyond), "just beyond is a violation")
			assert.False(t, l.Violated(inside), "just inside is not a violation")
			assert.Equal(t, l.Severity, l.SeverityFor(beyond), "just beyond has the base severity")
			assert.Equal(t, criteria.None, l.SeverityFor(l.Value))
		})
	}
}

func TestCleared(t *testing.T) {
	doMin := criteria.Limit{Param: telemetry.DO, Bound: criteria.Min, Value: 5}
	fcMax := criteria.Limit{Param: telemetry.FC, Bound: criteria.Max, Value: 500}
	phMin := criteria.Limit{Param: telemetry.PH, Bound: criteria.Min, Value: 6.5}
	tests := []struct {
		name     string
		limit    criteria.Limit
		v        float64
		deadband float64
		want     bool
	}{
		{"DO 5.5 clears 5 with 10 %", doMin, 5.5, 0.1, true},
		{"DO 5.4 does not clear 5 with 10 %", doMin, 5.4, 0.1, false},
		{"DO 5 does not clear with 10 %", doMin, 5, 0.1, false},
		{"DO 5 clears with no deadband", doMin, 5, 0, true},
		{"DO 4.99 never clears", doMin, 4.99, 0, false},
		{"negative deadband is none", doMin, 5, -0.5, true},
		{"NaN deadband is none", doMin, 5, math.NaN(), true},
		{"FC 450 clears 500 with 10 %", fcMax, 450, 0.1, true},
		{"FC 451 does not clear 500 with 10 %", fcMax, 451, 0.1, false},
		{"FC 500 clears with no deadband", fcMax, 500, 0, true},
		{"FC NaN does not clear", fcMax, math.NaN(), 0.1, false},
		{"pH 6.63 clears 6.5 with 2 %", phMin, 6.63, 0.02, true},
		{"pH 6.6 does not clear 6.5 with 2 %", phMin, 6.6, 0.02, false},
		{"zero Bound never clears", criteria.Limit{Value: 1}, 1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.limit.Cleared(tt.v, tt.deadband))
		})
	}
}

func TestClearedAndViolatedAgree(t *testing.T) {
	// Over a grid: no deadband makes Cleared the opposite of Violated; with a deadband,
	// cleared values are never violations (there is a gap between the two, the hysteresis).
	for _, l := range allLimits() {
		for f := 0.0; f <= 3; f += 0.01 {
			v := l.Value * f
			assert.Equal(t, !l.Violated(v), l.Cleared(v, 0), "%s %s at %v", l.Set, l.Param, v)
			if l.Cleared(v, 0.05) {
				assert.False(t, l.Violated(v), "%s %s at %v cleared yet violated", l.Set, l.Param, v)
			}
			assert.Equal(t, l.Violated(v), l.SeverityFor(v) != criteria.None)
		}
	}
}

func TestSeverityFor(t *testing.T) {
	classB := criteria.DesignatedBestUse(criteria.ClassB)
	find := func(limits []criteria.Limit, p telemetry.Param, b criteria.Bound, value float64) criteria.Limit {
		t.Helper()
		for _, l := range limits {
			if l.Param == p && l.Bound == b && l.Value == value {
				return l
			}
		}
		require.FailNow(t, "no such limit", "%s %s %v", p, b, value)
		return criteria.Limit{}
	}
	fcB := find(classB, telemetry.FC, criteria.Max, 500)
	doB := find(classB, telemetry.DO, criteria.Min, 5)
	phMaxB := find(classB, telemetry.PH, criteria.Max, 8.5)
	phMinB := find(classB, telemetry.PH, criteria.Min, 6.5)
	bodB := find(classB, telemetry.BOD, criteria.Max, 3)
	ecE := find(criteria.DesignatedBestUse(criteria.ClassE), telemetry.Conductivity, criteria.Max, 2250)
	bath500 := find(criteria.Bathing(), telemetry.FC, criteria.Max, 500)
	bath2500 := find(criteria.Bathing(), telemetry.FC, criteria.Max, 2500)
	turb1 := find(criteria.DrinkingReference(), telemetry.Turbidity, criteria.Max, 1)
	turb5 := find(criteria.DrinkingReference(), telemetry.Turbidity, criteria.Max, 5)

	tests := []struct {
		name  string
		limit criteria.Limit
		v     float64
		want  criteria.Severity
	}{
		{"FC inside", fcB, 400, criteria.None},
		{"FC at limit", fcB, 500, criteria.None},
		{"FC above", fcB, 501, criteria.Warning},
		{"FC at 10×", fcB, 5000, criteria.Warning},
		{"FC beyond 10×", fcB, 5001, criteria.Critical},
		{"DO below", doB, 4, criteria.Warning},
		{"DO at half", doB, 2.5, criteria.Warning},
		{"DO below half", doB, 2.4, criteria.Critical},
		{"pH high by 1", phMaxB, 9.5, criteria.Warning},
		{"pH high by more than 1", phMaxB, 9.51, criteria.Critical},
		{"pH low by 1", phMinB, 5.5, criteria.Warning},
		{"pH low by more than 1", phMinB, 5.4, criteria.Critical},
		{"BOD at 2×", bodB, 6, criteria.Warning},
		{"BOD beyond 2×", bodB, 6.1, criteria.Critical},
		{"EC beyond 2×", ecE, 4501, criteria.Critical},
		{"bathing desirable never escalates", bath500, 1e6, criteria.Warning},
		{"bathing permissible", bath2500, 2501, criteria.Critical},
		{"bathing permissible at limit", bath2500, 2500, criteria.None},
		{"turbidity acceptable never escalates", turb1, 100, criteria.Warning},
		{"turbidity permissible", turb5, 5.1, criteria.Critical},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.limit.SeverityFor(tt.v))
		})
	}
}

func TestMessage(t *testing.T) {
	classB := criteria.DesignatedBestUse(criteria.ClassB)
	classE := criteria.DesignatedBestUse(criteria.ClassE)
	bathing := criteria.Bathing()
	drinking := criteria.DrinkingReference()
	tests := []struct {
		name  string
		limit criteria.Limit
		v     float64
		unit  string
		want  string
	}{
		{"fc above class limit", classB[0], 820, "MPN/100mL",
			"Fecal coliform 820 MPN/100mL is above the CPCB class B (organised outdoor bathing) " +
				"total coliform limit of 500 MPN/100mL; the limit is for total coliform, which is " +
				"never below fecal coliform, so it is certainly exceeded."},
		{"fc within class limit: no claim about total coliform", classB[0], 300, "MPN/100mL",
			"Fecal coliform 300 MPN/100mL is not above the CPCB class B (organised outdoor " +
				"bathing) total coliform limit of 500 MPN/100mL."},
		{"pH below", classB[1], 6.2, "pH",
			"pH 6.2 is below the CPCB class B (organised outdoor bathing) minimum of 6.5."},
		{"pH above, canonical unit", classB[2], 9.13, "",
			"pH 9.13 is above the CPCB class B (organised outdoor bathing) maximum of 8.5."},
		{"DO below", classB[3], 4.2, "mg/L",
			"Dissolved oxygen 4.2 mg/L is below the CPCB class B (organised outdoor bathing) " +
				"minimum of 5 mg/L."},
		{"DO just below shows the digits that matter", classB[3], 4.99999, "mg/L",
			"Dissolved oxygen 4.99999 mg/L is below the CPCB class B (organised outdoor bathing) " +
				"minimum of 5 mg/L."},
		{"DO long decimals", classB[3], 4.123456, "",
			"Dissolved oxygen 4.123 mg/L is below the CPCB class B (organised outdoor bathing) " +
				"minimum of 5 mg/L."},
		{"DO back", classB[3], 5.6, "mg/L",
			"Dissolved oxygen 5.6 mg/L is not below the CPCB class B (organised outdoor bathing) " +
				"minimum of 5 mg/L."},
		{"BOD above", classB[4], 3.4, "mg/L",
			"BOD 3.4 mg/L is above the CPCB class B (organised outdoor bathing) maximum of 3 mg/L."},
		{"EC above", classE[2], 2612.4, "uS/cm",
			"Conductivity 2612 uS/cm is above the CPCB class E (irrigation, industrial cooling, " +
				"controlled waste disposal) maximum of 2250 uS/cm."},
		{"bathing FC", bathing[0], 1350, "MPN/100mL",
			"Fecal coliform 1350 MPN/100mL is above the CPCB bathing-water desirable limit of " +
				"500 MPN/100mL."},
		{"bathing FC huge", bathing[1], 240000, "MPN/100mL",
			"Fecal coliform 240000 MPN/100mL is above the CPCB bathing-water maximum " +
				"permissible limit of 2500 MPN/100mL."},
		{"drinking turbidity", drinking[2], 3.2, "NTU",
			"Turbidity 3.2 NTU is above the drinking-water reference (BIS IS 10500:2012) " +
				"acceptable limit of 1 NTU."},
		{"drinking TDS", drinking[5], 2150, "mg/L",
			"TDS 2150 mg/L is above the drinking-water reference (BIS IS 10500:2012) " +
				"permissible limit of 2000 mg/L."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.limit.Message(tt.v, tt.unit))
		})
	}
}

func TestMessageIsOneSentence(t *testing.T) {
	for _, l := range allLimits() {
		for _, v := range []float64{l.Value * 0.5, l.Value, l.Value * 2} {
			msg := l.Message(v, "")
			assert.True(t, strings.HasSuffix(msg, "."), "%q ends a sentence", msg)
			assert.Equal(t, 1, strings.Count(msg, ". ")+1, "%q is one sentence", msg)
			assert.Contains(t, msg, l.Label)
		}
	}
}

func TestMPCBClass(t *testing.T) {
	tests := []struct {
		bod, do float64
		want    string
	}{
		{1, 7, "A-I"},
		{2, 5, "A-I"}, // both exactly at the A-I limits
		{2.01, 5, "A-II"},
		{2, 4.99, "A-II"},
		{5, 4, "A-II"},
		{5.01, 4, "A-III"},
		{1, 3.5, "A-III"}, // good BOD, poor DO
		{10, 3, "A-III"},
		{10.01, 3, "A-IV"},
		{30, 2, "A-IV"},
		{30.01, 8, criteria.MPCBBelowAIV},
		{1, 1.99, criteria.MPCBBelowAIV},
		{math.NaN(), 7, ""},
		{1, math.NaN(), ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("bod=%v,do=%v", tt.bod, tt.do), func(t *testing.T) {
			assert.Equal(t, tt.want, criteria.MPCBClass(tt.bod, tt.do))
		})
	}
}

func TestBoundString(t *testing.T) {
	assert.Equal(t, "min", criteria.Min.String())
	assert.Equal(t, "max", criteria.Max.String())
	assert.Equal(t, "Bound(0)", criteria.Bound(0).String())
}

package forecast

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/purehealth/purehealth/shared/criteria"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Breach is a limit that a forecast's 80 % interval crosses: an early warning.
type Breach struct {
	Limit criteria.Limit
	// First is the first forecast hour whose 80 % interval reaches beyond the limit
	// (lo80 below a minimum, hi80 above a maximum): more than a one-in-ten chance that the
	// hour's value is beyond it.
	First Point
	// Worst is the hour whose 80 % bound reaches furthest beyond the limit.
	Worst Point
	// Likely is true when some hour's point forecast is itself beyond the limit: a
	// better-than-even chance.
	Likely bool
}

// Breaches returns the limits on f's parameter that f's 80 % interval crosses within its
// horizon, in the order of limits. Limits on other parameters are ignored. The 80 %
// interval, not the point forecast, decides: an operator wants to hear of a one-in-ten
// chance of anoxia, and the interval's coverage is what the backtest measured.
func Breaches(f Forecast, limits []criteria.Limit) []Breach {
	var out []Breach
	for _, l := range limits {
		if string(l.Param) != f.Param {
			continue
		}
		if b, ok := Check(f, l); ok {
			out = append(out, b)
		}
	}
	return out
}

// Check says whether and when f's 80 % interval crosses l.
func Check(f Forecast, l criteria.Limit) (Breach, bool) {
	var (
		b     Breach
		found bool
		worst float64
	)
	for _, p := range f.Points {
		bound := p.Lo80
		if l.Bound == criteria.Max {
			bound = p.Hi80
		}
		if !l.Violated(bound) {
			continue
		}
		beyond := bound - l.Value
		if l.Bound == criteria.Min {
			beyond = -beyond
		}
		if !found {
			b = Breach{Limit: l, First: p}
			found = true
		}
		if beyond > worst || b.Worst.Time.IsZero() {
			b.Worst, worst = p, beyond
		}
		if l.Violated(p.Value) {
			b.Likely = true
		}
	}
	return b, found
}

// Message is the early warning in one sentence, with the hour in loc (nil: UTC), e.g.
// "DO is forecast to fall below 4 mg/L around 05:00; 80 % interval 3.1–4.6".
func (b Breach) Message(loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	l := b.Limit
	verb := "fall below"
	if l.Bound == criteria.Max {
		verb = "rise above"
	}
	unit := ""
	if info, ok := telemetry.Info(l.Param); ok && info.Unit != "pH" {
		unit = " " + info.Unit
	}
	limit := strconv.FormatFloat(l.Value, 'f', -1, 64)
	lo, hi := formatInterval(b.First.Lo80, b.First.Hi80, l.Value)
	msg := fmt.Sprintf("%s is forecast to %s %s%s around %s; 80 %% interval %s–%s", shortName(l.Param),
		verb, limit, unit, b.First.Time.In(loc).Format("15:04"), lo, hi)
	if l.Note != "" {
		msg += " (" + l.Note + ")"
	}
	return msg
}

// shortName is how an early warning names a parameter.
func shortName(p telemetry.Param) string {
	switch p {
	case telemetry.PH:
		return "pH"
	case telemetry.DO, telemetry.BOD, telemetry.TDS:
		return strings.ToUpper(string(p))
	case telemetry.FC:
		return "Fecal coliform"
	case telemetry.Temp:
		return "Temperature"
	case telemetry.Chla:
		return "Chlorophyll-a"
	}
	return strings.ToUpper(string(p[:1])) + string(p[1:])
}

// formatInterval writes an interval's bounds as formatNear does, with more decimals when
// a narrow interval would otherwise read as one value ("2.5–2.5" for 2.46–2.53).
func formatInterval(lo, hi, limit float64) (string, string) {
	a, b := formatNear(lo, limit), formatNear(hi, limit)
	for decimals := 2; a == b && lo != hi && decimals < 6; decimals++ {
		a, b = strconv.FormatFloat(lo, 'f', decimals, 64), strconv.FormatFloat(hi, 'f', decimals, 64)
	}
	return a, b
}

// formatNear writes v with one decimal below 100 and none above, or with more decimals
// when fewer would print it equal to the limit it is compared with (a pH bound of 6.46
// against 6.5 reads "6.46", not "6.5").
func formatNear(v, limit float64) string {
	decimals := 1
	if v >= 100 || v <= -100 {
		decimals = 0
	}
	for ; decimals < 6; decimals++ {
		s := strconv.FormatFloat(v, 'f', decimals, 64)
		if v == limit || s != strconv.FormatFloat(limit, 'f', decimals, 64) {
			return s
		}
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

package govdata

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
)

// Why a value or a record gave no reading: the kinds counted in upstream.Batch.Skipped.
// Missing values are never stored, and never as 0: a 0 would read as clean water.
const (
	// MissingNull: JSON null, or the field absent from the record.
	MissingNull = "null"
	// MissingEmpty: "" or only blanks.
	MissingEmpty = "empty"
	// MissingNA: "NA", "N/A", "N.A." — not analysed or not available.
	MissingNA = "na"
	// MissingNaN: "NAN", "NaN" — a spreadsheet's failed formula.
	MissingNaN = "nan"
	// MissingDash: "-", "--" — a blank cell in a printed table.
	MissingDash = "dash"
	// BelowDetection: "BDL", "BDL (<0.5)", "<0.5" — the laboratory found less than its
	// method can quantify — and "TRACE" — rain below a gauge's 0.1 mm. The true value lies
	// somewhere between zero and an unstated or stated limit; storing zero or the limit
	// would invent a number, so it is counted and not stored.
	BelowDetection = "bdl"
	// AboveRange: ">1600", ">2400" — above the top of the method's range (the largest MPN
	// of a dilution series): a lower bound, not a value, so it is counted and not stored.
	AboveRange = "above_range"
	// Unparseable: anything else that is not a number ("7,2", "high", true, {}).
	Unparseable = "unparseable"

	// Record kinds.

	// NoStation: the record has no station code.
	NoStation = "no_station"
	// OtherStation: a station that the mapping does not list (ignored, counted).
	OtherStation = "other_station"
	// BadTime: the record's time is missing or does not match the time format.
	BadTime = "bad_time"
	// BadUnit: the record names a unit that does not fit the parameter.
	BadUnit = "bad_unit"
)

var (
	// decimalPattern is a plain decimal number as the portals print them.
	decimalPattern = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?$`)
	// groupedPattern is a number with thousands separators, Western (120,000) or Indian
	// (1,20,000). A lone comma between digits ("7,2") is a decimal comma and not accepted:
	// its meaning is a guess.
	groupedPattern = regexp.MustCompile(`^[+-]?\d{1,3}((,\d{2})*|(,\d{3})*),\d{3}(\.\d+)?$`)
)

// ParseValue reads a record's value: a JSON number, or a string holding one, or one of
// the missing-value spellings. It returns the number and "" or, when there is none, the
// kind of what was there.
func ParseValue(raw json.RawMessage) (float64, string) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return 0, MissingNull
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, Unparseable
		}
		return parseText(s)
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		return parseNumber(string(raw))
	}
	return 0, Unparseable
}

func parseText(s string) (float64, string) {
	t := strings.TrimSpace(s)
	u := strings.ToUpper(t)
	switch {
	case t == "":
		return 0, MissingEmpty
	case u == "NA" || u == "N/A" || u == "N.A." || u == "N.A":
		return 0, MissingNA
	case u == "NAN":
		return 0, MissingNaN
	case strings.Trim(t, "-") == "":
		return 0, MissingDash
	case strings.HasPrefix(u, "BDL") || u == "TRACE" || u == "TR":
		return 0, BelowDetection
	case strings.HasPrefix(t, "<"):
		if _, kind := parseNumber(strings.TrimSpace(strings.TrimLeft(t, "<="))); kind == "" {
			return 0, BelowDetection
		}
		return 0, Unparseable
	case strings.HasPrefix(t, ">"):
		if _, kind := parseNumber(strings.TrimSpace(strings.TrimLeft(t, ">="))); kind == "" {
			return 0, AboveRange
		}
		return 0, Unparseable
	case groupedPattern.MatchString(t):
		t = strings.ReplaceAll(t, ",", "")
	}
	return parseNumber(t)
}

// parseNumber accepts only plain decimal notation: strconv alone would also take "Inf",
// "NaN", hexadecimal floats and underscores.
func parseNumber(s string) (float64, string) {
	if !decimalPattern.MatchString(s) {
		return 0, Unparseable
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, Unparseable
	}
	return v, ""
}

// text returns a station code or time field as text: a JSON string's content or a
// number's digits ("1153" for 1153). ok is false for anything else.
func text(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", false
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		s = strings.TrimSpace(s)
		return s, s != ""
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		return string(raw), true
	}
	return "", false
}

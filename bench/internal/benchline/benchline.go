// Package benchline writes and reads the one-line benchmark result that `make bench`
// prints for every comparison (design §9, a contract):
//
//	BENCH <name> ours=<number> peer=<number> unit=<unit> ratio=<ours/peer> goal=<op><number> peer_is="<what>"
//
// The peer (another program, or a physical limit such as the disk's fsync rate) is measured
// in the same run on the same machine; a budget is a fixed limit stated as the peer. The
// ratio is always ours/peer, and the goal's operator says which direction is better.
package benchline

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Op is a goal's comparison operator.
type Op string

// The operators a goal may use.
const (
	AtLeast Op = ">="
	AtMost  Op = "<="
)

// Goal is what the ratio must satisfy, such as >=0.8.
type Goal struct {
	Op    Op
	Value float64
}

// String is the goal as the line writes it: ">=0.8".
func (g Goal) String() string { return string(g.Op) + formatNumber(g.Value) }

// Met reports whether ratio satisfies the goal. A NaN ratio (no peer) never does.
func (g Goal) Met(ratio float64) bool {
	switch g.Op {
	case AtLeast:
		return ratio >= g.Value
	case AtMost:
		return ratio <= g.Value
	}
	return false
}

// Line is one comparison. The zero value is not a valid line: Name, Unit, Goal and PeerIs
// are required and Peer must be positive (see Validate).
type Line struct {
	Name   string  // snake_case, stable across runs: results are tracked by it
	Ours   float64 // our measurement
	Peer   float64 // the peer's measurement or the limit
	Unit   string  // of Ours and Peer, without spaces: "msgs/s", "MB"
	Goal   Goal    // on Ratio
	PeerIs string  // what the peer is, in words: printable, no double quote
}

// Ratio is Ours/Peer (NaN when Peer is 0).
func (l Line) Ratio() float64 {
	if l.Peer == 0 {
		return math.NaN()
	}
	return l.Ours / l.Peer
}

// Met reports whether the ratio meets the goal.
func (l Line) Met() bool { return l.Goal.Met(l.Ratio()) }

// Errors from Parse and Validate.
var (
	ErrNotBench = errors.New("not a BENCH line")
	ErrInvalid  = errors.New("invalid BENCH line")
)

var (
	namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_]*$`)
	unitPattern = regexp.MustCompile(`^[A-Za-z%/_0-9.]+$`)
)

// Validate reports every problem that would make the line unreadable or meaningless.
func (l Line) Validate() error {
	var errs []error
	if !namePattern.MatchString(l.Name) {
		errs = append(errs, fmt.Errorf("%w: name %q must be lower-case letters, digits and _", ErrInvalid, l.Name))
	}
	if math.IsNaN(l.Ours) || math.IsInf(l.Ours, 0) || l.Ours < 0 {
		errs = append(errs, fmt.Errorf("%w: ours %v must be a finite number, 0 or more", ErrInvalid, l.Ours))
	}
	if !(l.Peer > 0) || math.IsInf(l.Peer, 0) {
		errs = append(errs, fmt.Errorf("%w: peer %v must be a finite positive number", ErrInvalid, l.Peer))
	}
	if r := l.Ratio(); l.Peer > 0 && (math.IsInf(r, 0) || math.IsNaN(r)) {
		errs = append(errs, fmt.Errorf("%w: ratio %v/%v is not a finite number", ErrInvalid, l.Ours, l.Peer))
	}
	if !unitPattern.MatchString(l.Unit) {
		errs = append(errs, fmt.Errorf("%w: unit %q must be non-empty, without spaces or quotes", ErrInvalid, l.Unit))
	}
	if (l.Goal.Op != AtLeast && l.Goal.Op != AtMost) || math.IsNaN(l.Goal.Value) || math.IsInf(l.Goal.Value, 0) {
		errs = append(errs, fmt.Errorf("%w: goal %q must be >= or <= a finite number", ErrInvalid, l.Goal))
	}
	if l.PeerIs == "" || strings.ContainsRune(l.PeerIs, '"') ||
		strings.ContainsFunc(l.PeerIs, func(r rune) bool { return !unicode.IsPrint(r) }) {
		errs = append(errs, fmt.Errorf("%w: peer_is %q must be non-empty printable text without double quotes", ErrInvalid, l.PeerIs))
	}
	return errors.Join(errs...)
}

// String is the line as `make bench` prints it (without a newline). It does not validate:
// call Validate first.
func (l Line) String() string {
	return fmt.Sprintf("BENCH %s ours=%s peer=%s unit=%s ratio=%s goal=%s peer_is=\"%s\"",
		l.Name, formatNumber(l.Ours), formatNumber(l.Peer), l.Unit, formatNumber(l.Ratio()),
		l.Goal, l.PeerIs)
}

// formatNumber writes v with four significant digits (all integer digits from 10000 up),
// never in exponent form, so that a person or awk reads 7231, 28.4 or 0.6065 alike.
func formatNumber(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "NaN"
	}
	if math.Abs(v) >= 1e4 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	// Round through the decimal form, so the shortest form of the result has no float noise.
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	return strconv.FormatFloat(r, 'f', -1, 64)
}

var linePattern = regexp.MustCompile(`^BENCH ([^ ]+) ours=([^ ]+) peer=([^ ]+) unit=([^ ]+) ratio=([^ ]+) goal=(>=|<=)([^ ]+) peer_is="([^"]*)"$`)

// Parse reads a line written by String (trailing spaces and a line ending are ignored). The
// ratio on the line is checked against ours/peer, to the precision it is written with.
func Parse(s string) (Line, error) {
	s = strings.TrimRight(s, " \r\n")
	if !strings.HasPrefix(s, "BENCH ") {
		return Line{}, ErrNotBench
	}
	m := linePattern.FindStringSubmatch(s)
	if m == nil {
		return Line{}, fmt.Errorf("%w: does not have the fields name, ours, peer, unit, ratio, goal, peer_is in order", ErrInvalid)
	}
	var (
		l    = Line{Name: m[1], Unit: m[4], Goal: Goal{Op: Op(m[6])}, PeerIs: m[8]}
		errs []error
		num  = func(field, v string) float64 {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: %s=%q is not a number", ErrInvalid, field, v))
			}
			return f
		}
	)
	l.Ours = num("ours", m[2])
	l.Peer = num("peer", m[3])
	ratio := num("ratio", m[5])
	l.Goal.Value = num("goal", m[7])
	if len(errs) > 0 {
		return Line{}, errors.Join(errs...)
	}
	if err := l.Validate(); err != nil {
		return Line{}, err
	}
	// Each number on the line is rounded to four significant digits (0.05%); allow for the
	// three roundings (and for subnormal numbers, which have fewer digits).
	if want := l.Ratio(); !(math.Abs(want-ratio) <= 0.002*math.Abs(want)+1e-300) {
		return Line{}, fmt.Errorf("%w: ratio=%v but ours/peer=%v", ErrInvalid, m[5], want)
	}
	return l, nil
}

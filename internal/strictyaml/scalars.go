package strictyaml

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Day is the unit of a duration written with a "d" suffix.
const Day = 24 * time.Hour

// maxDays bounds a duration written in days, well inside time.Duration's range.
const maxDays = 100 * 365

// Duration is a time.Duration that a configuration file spells like Go ("90s", "36h",
// "1h30m") or as a number of days ("90d", "1.5d"). A bare number is refused: its unit
// would be a guess.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String prints whole days as "Nd" and everything else like time.Duration.
func (d Duration) String() string {
	if d > 0 && time.Duration(d)%Day == 0 {
		return strconv.FormatInt(int64(time.Duration(d)/Day), 10) + "d"
	}
	return time.Duration(d).String()
}

// UnmarshalYAML parses a duration scalar.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration like 30s, 2h or 90d", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the form String prints, which UnmarshalYAML reads back.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// ParseDuration parses a Go duration or a number of days with a "d" suffix.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		f, err := strconv.ParseFloat(days, 64)
		if err != nil || !(f >= 0) || f > maxDays {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(f * float64(Day)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 30s, 2h or 90d", s)
	}
	return v, nil
}

// ByteSize is a number of bytes that a configuration file spells as a plain integer
// ("536870912") or with a unit: B, KiB, MiB, GiB, TiB (powers of 1024) or kB, MB, GB, TB
// (powers of 1000), as in "512MiB" or "1.5 GiB". The result must be a whole number of
// bytes.
type ByteSize int64

// UnmarshalYAML parses a byte size scalar.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a size like 536870912 or 512MiB", n.Line)
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = ByteSize(v)
	return nil
}

// MarshalYAML writes the plain integer.
func (b ByteSize) MarshalYAML() (any, error) { return int64(b), nil }

var byteUnits = []struct {
	suffix string
	mult   float64
}{
	// Longest suffixes first, so "MiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseByteSize parses a plain integer or a number with a unit (see ByteSize).
func ParseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	for _, u := range byteUnits {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		v := f * u.mult
		switch {
		case err != nil || math.IsNaN(v) || math.IsInf(v, 0):
			return 0, fmt.Errorf("%q is not a size like 536870912 or 512MiB", s)
		case v != math.Trunc(v):
			return 0, fmt.Errorf("%q is not a whole number of bytes", s)
		case v >= math.MaxInt64 || v <= math.MinInt64:
			return 0, fmt.Errorf("%q is too large", s)
		}
		return int64(v), nil
	}
	return 0, fmt.Errorf("%q is not a size like 536870912 or 512MiB", s)
}

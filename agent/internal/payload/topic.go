package payload

import (
	"errors"
	"fmt"
	"strings"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// TopicRoot is the first level of every station topic (contract).
const TopicRoot = "purehealth"

// Readings is the leaf of the topic that takes a JSON array of readings (contract).
const Readings = "readings"

// MaxLeafLen bounds the last topic level, in bytes. (A station id's bound is
// telemetry.MaxStationIDLen.)
const MaxLeafLen = 64

// ErrTopic is wrapped by every error ParseTopic and ValidateStation return.
var ErrTopic = errors.New("invalid topic")

// Topic returns "purehealth/<station>/<leaf>". It does not validate its arguments: callers
// that take them from outside use ParseTopic on the result.
func Topic(station, leaf string) string {
	return TopicRoot + "/" + station + "/" + leaf
}

// ParseTopic splits a station topic "purehealth/<station>/<leaf>" into its station id and
// leaf. The topic must have exactly three levels; the station id follows
// telemetry.ValidStationID; the leaf is 1 to 64 bytes without wildcards or control characters. The leaf is
// returned as sent: it names a parameter (any alias), "readings", or one of the agent's
// outputs, and telling those apart is the caller's business.
func ParseTopic(topic string) (station, leaf string, err error) {
	root, rest, ok := strings.Cut(topic, "/")
	if !ok || root != TopicRoot {
		return "", "", fmt.Errorf("%w %s: want %s/<station>/<param>", ErrTopic, quote(topic), TopicRoot)
	}
	station, leaf, ok = strings.Cut(rest, "/")
	if !ok {
		return "", "", fmt.Errorf("%w %s: want %s/<station>/<param>, got 2 levels",
			ErrTopic, quote(topic), TopicRoot)
	}
	if strings.Contains(leaf, "/") {
		return "", "", fmt.Errorf("%w %s: want %s/<station>/<param>, got %d levels",
			ErrTopic, quote(topic), TopicRoot, strings.Count(topic, "/")+1)
	}
	if err := ValidateStation(station); err != nil {
		return "", "", fmt.Errorf("topic %s: %w", quote(topic), err)
	}
	if err := validateLeaf(leaf); err != nil {
		return "", "", fmt.Errorf("topic %s: %w", quote(topic), err)
	}
	return station, leaf, nil
}

// ValidateStation reports whether id can be a station id (telemetry.ValidStationID), which
// keeps it a single, wildcard-free topic level.
func ValidateStation(id string) error {
	switch {
	case telemetry.ValidStationID(id):
		return nil
	case id == "":
		return fmt.Errorf("%w: empty station id", ErrTopic)
	case len(id) > telemetry.MaxStationIDLen:
		return fmt.Errorf("%w: station id is %d bytes, limit %d", ErrTopic, len(id), telemetry.MaxStationIDLen)
	}
	return fmt.Errorf("%w: station id %s: must be %s", ErrTopic, quote(id), telemetry.StationIDRule)
}

func validateLeaf(leaf string) error {
	if leaf == "" {
		return fmt.Errorf("%w: empty parameter level", ErrTopic)
	}
	if len(leaf) > MaxLeafLen {
		return fmt.Errorf("%w: parameter level is %d bytes, limit %d", ErrTopic, len(leaf), MaxLeafLen)
	}
	for _, r := range leaf {
		if r == '+' || r == '#' || r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: parameter level %s: character %q not allowed", ErrTopic, quote(leaf), r)
		}
	}
	return nil
}

// quote renders device-supplied text for an error message, cut short so that a hostile
// 64 KiB string does not travel into logs and error topics whole.
func quote(s string) string {
	const max = 64
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	cut := max
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…(%d bytes)", s[:cut], len(s))
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

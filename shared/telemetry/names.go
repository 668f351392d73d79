package telemetry

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxStationIDLen bounds a station id.
const MaxStationIDLen = 64

// StationIDRule describes the station-id rule for error messages.
const StationIDRule = "1–64 letters, digits, '-' or '_'"

// ValidStationID reports whether id can name a station: 1 to 64 of [A-Za-z0-9_-]. It is
// the one definition of a station id: one level of an MQTT topic, a path segment of the
// API and a file name, without escaping anywhere. The stations table's CHECK constraint
// says the same in SQL (cloud/internal/store/migrations). A loop rather than a regexp:
// the broker checks every publish's topic with it.
func ValidStationID(id string) bool {
	if len(id) == 0 || len(id) > MaxStationIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// ErrSensorLimit refuses a reading of a new sensor at a station that keeps as many
// sensors as it may.
var ErrSensorLimit = errors.New("too many sensors at this station")

// MaxSensorLen bounds a sensor's name.
const MaxSensorLen = 128

// Name errors; CheckName's error wraps one of them.
var (
	ErrNameEmpty   = errors.New("empty")
	ErrNameLong    = errors.New("too long")
	ErrNameControl = errors.New("contains a control character")
	ErrNameUTF8    = errors.New("is not valid UTF-8")
)

// CheckName checks a name chosen by a device or a person (a sensor, a lab, an agent
// version): 1 to max bytes of valid UTF-8 with no control or format characters, so
// that it prints safely in a terminal, passes through an exec hook's environment and is
// stored by PostgreSQL (which refuses NUL). The agent refuses such names at ingest with
// the same rule the cloud applies to a batch.
func CheckName(s string, max int) error {
	switch {
	case s == "":
		return ErrNameEmpty
	case len(s) > max:
		return fmt.Errorf("%w: %d bytes (at most %d)", ErrNameLong, len(s), max)
	case !utf8.ValidString(s):
		return ErrNameUTF8
	}
	for i, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("%w (U+%04X at byte %d)", ErrNameControl, r, i)
		}
	}
	return nil
}

// CheckText checks free text (an alert message): at most max bytes of valid UTF-8 whose
// only control characters are tab and newline.
func CheckText(s string, max int) error {
	switch {
	case len(s) > max:
		return fmt.Errorf("%w: %d bytes (at most %d)", ErrNameLong, len(s), max)
	case !utf8.ValidString(s):
		return ErrNameUTF8
	}
	for i, r := range s {
		if r == '\n' || r == '\t' {
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("%w (U+%04X at byte %d)", ErrNameControl, r, i)
		}
	}
	return nil
}

package telemetry

import (
	"errors"
	"fmt"
	"time"
)

// sampleTimeLayouts are the spellings of a sample's time: RFC 3339, with or without
// seconds (2026-12-01T09:30+05:30, as a lab sheet gives it).
var sampleTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00"}

// ErrSampleTime: a sample's time is not RFC 3339 with a zone offset.
var ErrSampleTime = errors.New("not a time like 2026-12-01T09:30:00+05:30 or 2026-12-01T09:30+05:30")

// ParseSampleTime reads the time a lab or field sample was taken: RFC 3339, seconds
// optional, always with its zone offset (Z or ±hh:mm), since a lab's time without one is
// ambiguous wherever it is read. The result is in UTC.
func ParseSampleTime(s string) (time.Time, error) {
	for _, layout := range sampleTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return time.Time{}, fmt.Errorf("%q: %w", s, ErrSampleTime)
}

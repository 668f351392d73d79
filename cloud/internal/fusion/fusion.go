// Package fusion decides a station's current state from values of several sources: per
// parameter, the value of the most trusted source that is fresh enough. A probe in the
// river beats a lab sample, which beats a government programme, which beats a satellite
// estimate, which beats a model, but only while its latest value is younger than that
// source's maximum age. From the fused values it computes the station's fused WQI, with
// the source, time and age of each input.
//
// Everything here is pure and safe for concurrent use.
package fusion

import (
	"maps"
	"slices"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// DefaultPriority is the order of trust in sources (telemetry.SourcesByTrust, design §5a).
var DefaultPriority = func() []string {
	out := make([]string, len(telemetry.SourcesByTrust))
	for i, s := range telemetry.SourcesByTrust {
		out[i] = string(s)
	}
	return out
}()

// DefaultMaxAge is how old each source's latest value may be and still count (design
// §5a): a probe reports every few minutes; a lab result describes the river for about a
// month (monthly sampling, as CPCB's programme does); government data is published
// monthly or later, so three months; a satellite revisits every 5 days and clouds hide
// weeks, so two weeks; a forecast is good for a day.
var DefaultMaxAge = map[string]time.Duration{
	"sensor":    2 * time.Hour,
	"manual":    744 * time.Hour,
	"api":       2160 * time.Hour,
	"satellite": 336 * time.Hour,
	"model":     24 * time.Hour,
}

// DefaultPolicy returns a Policy of DefaultPriority and DefaultMaxAge (copies).
func DefaultPolicy() Policy {
	return Policy{Priority: slices.Clone(DefaultPriority), MaxAge: maps.Clone(DefaultMaxAge)}
}

// Candidate is the newest usable value of one parameter from one source.
type Candidate struct {
	Param   string
	Source  string
	Time    time.Time
	Value   float64
	Unit    string
	Quality string
	Sensor  string
	// Origin names where a value from outside the station came from (the configured
	// upstream source, "manual" for a posted sample); "" for the station's own.
	Origin string
}

// Policy orders sources and bounds their age. A source missing from Priority, or with no
// positive MaxAge, never counts.
type Policy struct {
	Priority []string                 // most trusted first
	MaxAge   map[string]time.Duration // per source
}

// Value is the fused value of one parameter.
type Value struct {
	Candidate
	Age time.Duration // at the time of fusion; 0 for a value stamped in the future
}

// Fuse picks, per parameter, the candidate of the first source in priority order whose
// value is at most its maximum age old at now. Parameters with no such candidate are
// absent from the result. With several candidates of one source and parameter, the newest
// counts.
func Fuse(p Policy, now time.Time, cs []Candidate) map[string]Value {
	best := map[string]Value{}
	rank := map[string]int{}
	for _, c := range cs {
		r := slices.Index(p.Priority, c.Source)
		maxAge := p.MaxAge[c.Source]
		if r < 0 || maxAge <= 0 {
			continue
		}
		age := max(now.Sub(c.Time), 0)
		if age > maxAge {
			continue
		}
		cur, ok := best[c.Param]
		switch {
		case !ok, r < rank[c.Param], r == rank[c.Param] && c.Time.After(cur.Time):
			best[c.Param] = Value{Candidate: c, Age: age}
			rank[c.Param] = r
		}
	}
	return best
}

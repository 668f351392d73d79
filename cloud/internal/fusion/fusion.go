// Package fusion decides a station's current state from values of several sources: per
// parameter, the value of the most trusted source that is fresh enough. A probe in the
// river beats a government API, which beats a satellite estimate, which beats a model,
// but only while its latest value is younger than that source's maximum age.
//
// Everything here is pure and safe for concurrent use.
package fusion

import (
	"slices"
	"time"
)

// Candidate is the newest usable value of one parameter from one source.
type Candidate struct {
	Param   string
	Source  string
	Time    time.Time
	Value   float64
	Unit    string
	Quality string
	Sensor  string
}

// Policy orders sources and bounds their age. A source missing from Priority, or with no
// positive MaxAge, never counts.
type Policy struct {
	Priority []string                 // most trusted first
	MaxAge   map[string]time.Duration // per source
}

// DefaultPolicy trusts a probe at the station most, then a lab or field sample taken
// there, a government programme, a satellite estimate, and a forecast last; each counts
// while it is younger than its maximum age.
func DefaultPolicy() Policy {
	return Policy{
		Priority: []string{"sensor", "manual", "api", "satellite", "model"},
		MaxAge: map[string]time.Duration{
			"sensor":    2 * time.Hour,
			"manual":    7 * 24 * time.Hour,
			"api":       24 * time.Hour,
			"satellite": 14 * 24 * time.Hour,
			"model":     6 * time.Hour,
		},
	}
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

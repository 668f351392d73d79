// Package alert is the record of one alert as every part of Pure Health keeps it: the
// agent's alert manager stores and publishes it (purehealth/<station>/alerts), the
// technician's CLI prints it, the sync format carries it to the cloud, and the cloud
// stores it and serves it (/v1/alerts, the live stream). Its JSON field names are the
// contract of all of those, so they are written once, here.
package alert

import (
	"math"
	"time"
)

// Severity grades an alert (contract).
type Severity string

// The severities, in increasing order.
const (
	Info     Severity = "info"
	Warning  Severity = "warning"
	Critical Severity = "critical"
)

// Valid reports whether s is one of the severities.
func (s Severity) Valid() bool { return s == Info || s == Warning || s == Critical }

// Rank orders the severities: Info 0, Warning 1, Critical 2 (and anything else 0).
func (s Severity) Rank() int {
	switch s {
	case Warning:
		return 1
	case Critical:
		return 2
	}
	return 0
}

// State is where an alert is in its lifecycle (contract).
type State string

// The states.
const (
	Active       State = "active"
	Acknowledged State = "acknowledged"
	Resolved     State = "resolved"
)

// Valid reports whether s is one of the states.
func (s State) Valid() bool { return s == Active || s == Acknowledged || s == Resolved }

// Record is an alert as it stands after its latest transition.
type Record struct {
	ID             uint64     `json:"id"` // unique per station (and, in the cloud, per origin)
	Station        string     `json:"station"`
	Rule           string     `json:"rule"` // threshold, offline, sensor_fault, ... (contract)
	Key            string     `json:"key"`  // the condition: one open alert per key
	Param          string     `json:"param"`
	Sensor         string     `json:"sensor,omitempty"`
	Severity       Severity   `json:"severity"`
	State          State      `json:"state"`
	OpenedAt       time.Time  `json:"opened_at"`
	AcknowledgedAt *time.Time `json:"acknowledged_at,omitempty"`
	// AcknowledgedBy names who acknowledged it: a token's name in the cloud, "station"
	// (or the technician's name) at the agent.
	AcknowledgedBy string     `json:"acknowledged_by,omitempty"`
	ResolvedAt     *time.Time `json:"resolved_at"`
	Message        string     `json:"message"`
	Value          *float64   `json:"value,omitempty"` // the reading that raised or escalated it
	Limit          *float64   `json:"limit,omitempty"` // the limit it crossed
}

// Portable returns r with its times in UTC and without a Value or Limit that JSON cannot
// carry (NaN, ±Inf), so that it can leave the process that made it without losing the
// rest of the record.
func (r Record) Portable() Record {
	r.OpenedAt = r.OpenedAt.UTC()
	r.AcknowledgedAt = utc(r.AcknowledgedAt)
	r.ResolvedAt = utc(r.ResolvedAt)
	r.Value = finite(r.Value)
	r.Limit = finite(r.Limit)
	return r
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func finite(v *float64) *float64 {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
		return nil
	}
	return v
}

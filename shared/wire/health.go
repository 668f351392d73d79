package wire

import (
	"fmt"
	"math"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Health is a station's health record: what a fleet operator needs to know about the
// agent itself, taken at Time. An agent sends one about every minute in a batch of its
// own, with no records, so that a cloud that cannot take it refuses nothing else. It has
// no seq: the cloud keeps the newest by Time and a history. Clouds of this major that
// predate it ignore the field.
//
// Lists are bounded (MaxHealthList); an agent with more entries sends the most urgent
// ones (failing probes by name, calibrations soonest due first) and the counts say how
// many there are.
type Health struct {
	Time        time.Time    `json:"time"`
	Version     string       `json:"version"`
	UptimeS     float64      `json:"uptime_s"`
	ClockSynced bool         `json:"clock_synced"`
	Buffer      HealthBuffer `json:"buffer"`
	// Backlog is how many readings wait to be forwarded; OldestUnsentAt the time of the
	// oldest of them.
	Backlog        int64            `json:"backlog"`
	OldestUnsentAt *time.Time       `json:"oldest_unsent_at,omitempty"`
	Probes         HealthProbes     `json:"probes"`
	CalibrationDue []CalibrationDue `json:"calibration_due"`
	Broker         HealthBroker     `json:"broker"`
}

// HealthBuffer is the state of the station's buffer. AutonomyH is how many hours the
// free room absorbs the current ingest rate with the uplink down; absent when nothing
// arrives.
type HealthBuffer struct {
	UsedBytes int64    `json:"used_bytes"`
	MaxBytes  int64    `json:"max_bytes"`
	AutonomyH *float64 `json:"autonomy_h,omitempty"`
}

// HealthProbes counts the station's sensors (configured probes and devices publishing on
// its broker) and names the failing ones.
type HealthProbes struct {
	Total   int            `json:"total"`
	Online  int            `json:"online"`
	Failing []FailingProbe `json:"failing"`
}

// FailingProbe is a sensor that is offline or whose last attempt failed, and why.
type FailingProbe struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// CalibrationDue is when a calibratable probe is next due for calibration.
type CalibrationDue struct {
	Probe string    `json:"probe"`
	Param string    `json:"param,omitempty"`
	DueAt time.Time `json:"due_at"`
}

// HealthBroker is the station's MQTT broker: clients connected now and publishes refused
// since the agent started.
type HealthBroker struct {
	Clients int64 `json:"clients"`
	Rejects int64 `json:"rejects"`
}

// Bounds of a health record.
const (
	// MaxHealthList bounds each list of a health record.
	MaxHealthList = 32
	// MaxHealthBytes bounds a health record as JSON; the bounds of its fields keep a
	// valid one well under it.
	MaxHealthBytes = 24 << 10
	// MaxReasonLen bounds why a probe is failing.
	MaxReasonLen = 128
	maxCount     = 1 << 30 // sensors, clients: far beyond any station, and within a 32-bit int
)

// Validate checks a health record and names the first bad field (health.probes.failing[2].name).
func (h *Health) Validate() error {
	const at = "health."
	switch {
	case h.Time.IsZero():
		return bad(at+"time", "missing")
	case math.IsNaN(h.UptimeS) || h.UptimeS < 0 || math.IsInf(h.UptimeS, 0):
		return bad(at+"uptime_s", "must be a finite number of seconds, not negative")
	case h.Buffer.UsedBytes < 0 || h.Buffer.MaxBytes < 0:
		return bad(at+"buffer", "byte counts must not be negative")
	case h.Buffer.AutonomyH != nil && (math.IsNaN(*h.Buffer.AutonomyH) || *h.Buffer.AutonomyH < 0 || math.IsInf(*h.Buffer.AutonomyH, 0)):
		return bad(at+"buffer.autonomy_h", "must be a finite number of hours, not negative")
	case h.Backlog < 0:
		return bad(at+"backlog", "must not be negative")
	case h.Probes.Total < 0 || h.Probes.Total > maxCount || h.Probes.Online < 0 || h.Probes.Online > h.Probes.Total:
		return bad(at+"probes", "online %d of total %d: want 0 ≤ online ≤ total", h.Probes.Online, h.Probes.Total)
	case len(h.Probes.Failing) > MaxHealthList:
		return bad(at+"probes.failing", "%d entries (at most %d)", len(h.Probes.Failing), MaxHealthList)
	case len(h.CalibrationDue) > MaxHealthList:
		return bad(at+"calibration_due", "%d entries (at most %d)", len(h.CalibrationDue), MaxHealthList)
	case h.Broker.Clients < 0 || h.Broker.Clients > maxCount || h.Broker.Rejects < 0:
		return bad(at+"broker", "counts must not be negative")
	}
	if err := telemetry.CheckName(h.Version, maxAgentLen); err != nil {
		return bad(at+"version", "%v", err)
	}
	for i, f := range h.Probes.Failing {
		if err := telemetry.CheckName(f.Name, telemetry.MaxSensorLen); err != nil {
			return bad(fmt.Sprintf("%sprobes.failing[%d].name", at, i), "%v", err)
		}
		if err := telemetry.CheckName(f.Reason, MaxReasonLen); err != nil {
			return bad(fmt.Sprintf("%sprobes.failing[%d].reason", at, i), "%v", err)
		}
	}
	for i, c := range h.CalibrationDue {
		if err := telemetry.CheckName(c.Probe, telemetry.MaxSensorLen); err != nil {
			return bad(fmt.Sprintf("%scalibration_due[%d].probe", at, i), "%v", err)
		}
		if c.Param != "" && !telemetry.Param(c.Param).Valid() {
			return bad(fmt.Sprintf("%scalibration_due[%d].param", at, i), "%q is not a canonical parameter", clip(c.Param))
		}
		if c.DueAt.IsZero() {
			return bad(fmt.Sprintf("%scalibration_due[%d].due_at", at, i), "missing")
		}
	}
	return nil
}

// Package alerting raises the station's alerts locally, with or without a network.
//
// Rules are evaluated as readings arrive (thresholds against the station's CPCB class and
// optional rule sets, sensor faults, anomalies), as the WQI changes (a bad class), and on a
// periodic tick (sensors offline, the station silent). Conditions raised by other parts of
// the agent (a full buffer, a failing store) come in through Set.
//
// Each alert goes opened → (acknowledged) → resolved, with hysteresis (shared/alertrule),
// and may be escalated when its severity rises. Every transition is one Event: persisted,
// published on the local broker, handed to the exec hooks and logged. If persisting fails
// (a dying SD card), the event is still published, hooked and logged, and its write is
// retried on the next tick: alerting keeps working when storage does not.
//
// A Manager is safe for concurrent use. It owns no goroutine; Hooks owns one (see Run).
package alerting

import (
	"time"

	"github.com/purehealth/purehealth/shared/alert"
)

// Alert is an alert's current record, Severity its grade and State its place in the
// lifecycle: the shapes the sync format and the cloud share (shared/alert), named here
// for the rules that raise them.
type (
	Alert    = alert.Record
	Severity = alert.Severity
	State    = alert.State
)

// The severities and states.
const (
	Info         = alert.Info
	Warning      = alert.Warning
	Critical     = alert.Critical
	Active       = alert.Active
	Acknowledged = alert.Acknowledged
	Resolved     = alert.Resolved
)

// Transition names an event.
type Transition string

// The transitions; hooks subscribe to them by name.
const (
	Opened          Transition = "opened"
	AcknowledgedTr  Transition = "acknowledged"
	Escalated       Transition = "escalated"
	ResolvedTr      Transition = "resolved"
	transitionCount            = 4
)

// The rules (contract: the "rule" field of alerts).
const (
	RuleThreshold      = "threshold"
	RuleWQI            = "wqi"
	RuleOffline        = "offline"
	RuleStationSilent  = "station_silent"
	RuleSensorFault    = "sensor_fault"
	RuleAnomaly        = "anomaly"
	RuleBufferOverflow = "buffer_overflow"
	RuleStoreFailure   = "store_failure"
	RuleCalibrationDue = "calibration_due"
	RuleSensorLimit    = "sensor_limit"
)

// Event is one transition of one alert, with the alert as it is after it.
type Event struct {
	Transition Transition `json:"transition"`
	Time       time.Time  `json:"time"`
	Alert
}

// Condition is a rule's finding about one key.
type Condition struct {
	Key      string
	Rule     string
	Param    string
	Sensor   string
	Severity Severity
	Message  string
	// Describe, when set, writes Message only if the condition changes an alert: rules
	// evaluated on every reading should not format a sentence for every reading.
	Describe func() string
	Value    *float64
	Limit    *float64
}

func (c Condition) message() string {
	if c.Message == "" && c.Describe != nil {
		return c.Describe()
	}
	return c.Message
}

func ptr(v float64) *float64 { return &v }

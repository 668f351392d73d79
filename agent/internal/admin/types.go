// Package admin is the running agent's local control surface: a small JSON API served on
// a unix socket (mode 0660, so only root and the agent's group can reach it) and the client
// the CLI uses to talk to it over SSH on a station.
//
// The response types here are also the CLI's `--json` output, whose shapes are a contract
// (see design §4): fields may be added, never renamed.
package admin

import (
	"encoding/json"
	"time"

	"github.com/purehealth/purehealth/agent/internal/alerting"
)

// Status answers `ph-agent status`.
type Status struct {
	Station      string           `json:"station"`
	Name         string           `json:"name,omitempty"`
	Class        string           `json:"class"`
	Version      string           `json:"version"`
	StartedAt    time.Time        `json:"started_at"`
	UptimeS      float64          `json:"uptime_s"`
	Now          time.Time        `json:"now"`
	Broker       BrokerStatus     `json:"broker"`
	Uplink       Queue            `json:"uplink"`
	Buffer       BufferStatus     `json:"buffer"`
	Ingest       IngestStatus     `json:"ingest"`
	Clock        ClockStatus      `json:"clock"`
	WQI          json.RawMessage  `json:"wqi"` // the WQI message, or null
	ActiveAlerts []alerting.Alert `json:"active_alerts"`
	// Config is absent until the configuration was reloaded (SIGHUP).
	Config *ConfigStatus `json:"config,omitempty"`
}

// ConfigStatus says what the reloads of the configuration did.
type ConfigStatus struct {
	Path         string    `json:"path,omitempty"`
	Reloads      uint64    `json:"reloads"` // applied
	Failed       uint64    `json:"failed"`  // refused: the file did not load, or could not be applied
	LastReloadAt time.Time `json:"last_reload_at,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	// RestartNeeded lists the keys changed in the file that take effect only after a
	// restart; the running agent keeps their old values.
	RestartNeeded []string `json:"restart_needed,omitempty"`
}

// BrokerStatus summarizes the embedded MQTT broker.
type BrokerStatus struct {
	Listen   string           `json:"listen"`
	Clients  int64            `json:"clients"`
	Received int64            `json:"messages_received"`
	Rejects  map[string]int64 `json:"rejects"`
}

// BufferStatus summarizes the durable buffer.
type BufferStatus struct {
	Path         string    `json:"path"`
	UsedBytes    int64     `json:"used_bytes"`
	FileBytes    int64     `json:"file_bytes"`
	MaxBytes     int64     `json:"max_bytes"`
	Readings     int       `json:"readings"`
	Unforwarded  int       `json:"unforwarded"`
	OldestUnsent time.Time `json:"oldest_unsent_at,omitzero"`
	// AutonomyHours is how long the buffer absorbs the current ingest rate with the uplink
	// down before it starts evicting; null when nothing is arriving.
	AutonomyHours *float64         `json:"autonomy_hours"`
	Evicted       map[string]int64 `json:"evicted"`
	Quarantined   string           `json:"quarantined,omitempty"`
}

// IngestStatus counts what the pipeline did.
type IngestStatus struct {
	Accepted      uint64  `json:"accepted"`
	Rejected      uint64  `json:"rejected"`
	Bad           uint64  `json:"bad"`
	Suspect       uint64  `json:"suspect"`
	StoreFailures uint64  `json:"store_failures"`
	StoreFailing  bool    `json:"store_failing"`
	RatePerS      float64 `json:"rate_per_s"`
}

// ClockStatus says whether the wall clock is trusted.
type ClockStatus struct {
	Synced bool   `json:"synced"`
	Reason string `json:"reason,omitempty"`
}

// Queue answers `ph-agent queue` (and is the uplink part of Status). backlog,
// oldest_unsent_at, last_acked_seq and last_success_at are the contract keys.
type Queue struct {
	Configured bool   `json:"configured"`
	URL        string `json:"url,omitempty"`
	// State is "not configured", "stopped", "idle", "sending", "backing off",
	// "auth failed" or "budget exhausted".
	State string `json:"state"`
	// Backlog is the readings not yet in the cloud.
	Backlog        int       `json:"backlog"`
	OldestUnsentAt time.Time `json:"oldest_unsent_at,omitzero"`
	LastAckedSeq   uint64    `json:"last_acked_seq"`
	LastSuccessAt  time.Time `json:"last_success_at,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	LastErrorAt    time.Time `json:"last_error_at,omitzero"`
	// ConsecutiveFailures counts the failed attempts since the last success; NextRetryAt
	// is when the next one is due (backing off, auth failed), or when the backlog resumes
	// (budget exhausted).
	ConsecutiveFailures int       `json:"consecutive_failures"`
	NextRetryAt         time.Time `json:"next_retry_at,omitzero"`
	// BytesToday is what the uplink put on the wire this UTC day; DailyBytes the budget
	// (0: none).
	BytesToday int64 `json:"bytes_today"`
	DailyBytes int64 `json:"daily_bytes"`
	// Rejected counts records set aside because the cloud refused them (or they could not
	// be encoded): they will not reach the cloud.
	Rejected uint64 `json:"rejected"`
	// BatchLimit is the records per batch now; less than BatchMax after the cloud found a
	// batch too large.
	BatchLimit int    `json:"batch_limit,omitempty"`
	BatchMax   int    `json:"batch_max,omitempty"`
	Lanes      []Lane `json:"lanes,omitempty"`
}

// MarshalJSON writes oldest_unsent_at and last_success_at as null while there is no such
// time: both keys belong to the `queue --json` contract, so they are always present.
func (q Queue) MarshalJSON() ([]byte, error) {
	type plain Queue // without this method
	return json.Marshal(struct {
		plain
		OldestUnsentAt *time.Time `json:"oldest_unsent_at"`
		LastSuccessAt  *time.Time `json:"last_success_at"`
	}{plain(q), timeOrNil(q.OldestUnsentAt), timeOrNil(q.LastSuccessAt)})
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Lane is one forwarded stream.
type Lane struct {
	Stream string `json:"stream"`
	// Backlog is the records not yet in the cloud; Live of them go first when the link is
	// up (the live lane: unsent alerts, the latest WQI, the newest readings), the rest drain
	// behind in seq order (the backlog lane).
	Backlog int `json:"backlog"`
	Live    int `json:"live"`
	// AckedAhead counts seqs above the cursor the cloud already confirmed (sent by the live
	// lane); the cursor jumps over them when the backlog reaches them.
	AckedAhead uint64 `json:"acked_ahead"`
	Cursor     uint64 `json:"cursor"`
	LastSeq    uint64 `json:"last_seq"`
}

// Sensor is one row of `ph-agent sensors`.
type Sensor struct {
	Name          string            `json:"name"`
	Kind          string            `json:"kind"`
	Param         string            `json:"param"`
	Online        bool              `json:"online"`
	Expected      bool              `json:"expected"`
	LastReadingAt *time.Time        `json:"last_reading_at"`
	LastValue     *float64          `json:"last_value,omitempty"`
	IntervalS     float64           `json:"interval_s,omitempty"`
	RatePerMin    float64           `json:"rate_per_min"`
	Readings      uint64            `json:"readings"`
	Errors        uint64            `json:"errors"`
	ErrorsByKind  map[string]uint64 `json:"errors_by_kind,omitempty"`
	Reconnects    uint64            `json:"reconnects"`
	Quality       QualityShare      `json:"quality"`
	CalibratedAt  *time.Time        `json:"calibrated_at,omitempty"`
}

// Probes answers `ph-agent probe status`.
type Probes struct {
	Probes []Probe `json:"probes"`
}

// Probe is one configured probe: its kind and the driver's own status.
type Probe struct {
	Name        string          `json:"name"`
	Kind        string          `json:"kind"`
	Param       string          `json:"param"`
	Status      json.RawMessage `json:"status"`
	Calibration json.RawMessage `json:"calibration,omitempty"` // the last recorded calibration
}

// CalibrateRequest is the body of POST /v1/probes/{name}/calibrate.
type CalibrateRequest struct {
	Point string  `json:"point"`
	Value float64 `json:"value"`
}

// QualityShare is the fraction of a sensor's readings in each grade.
type QualityShare struct {
	Good    float64 `json:"good"`
	Suspect float64 `json:"suspect"`
	Bad     float64 `json:"bad"`
}

// Sensors answers `ph-agent sensors`.
type Sensors struct {
	Sensors []Sensor `json:"sensors"`
}

// Reading is one row of `ph-agent readings`.
type Reading struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Param   string    `json:"param"`
	Value   float64   `json:"value"`
	Unit    string    `json:"unit"`
	Quality string    `json:"quality"`
	Source  string    `json:"source"`
	Sensor  string    `json:"sensor"`
	Flags   []string  `json:"flags,omitempty"`
	// A lab or field sample's provenance (source manual).
	SampleID string `json:"sample_id,omitempty"`
	Lab      string `json:"lab,omitempty"`
	Method   string `json:"method,omitempty"`
}

// SampleRequest asks the agent to store a lab or field-kit result (`ph-agent sample
// add`). Time is when the sample was taken.
type SampleRequest struct {
	Param    string    `json:"param"`
	Value    float64   `json:"value"`
	Unit     string    `json:"unit,omitempty"`
	Time     time.Time `json:"time"`
	SampleID string    `json:"sample_id,omitempty"`
	Lab      string    `json:"lab,omitempty"`
	Method   string    `json:"method,omitempty"`
}

// Readings answers `ph-agent readings`, newest first.
type Readings struct {
	Readings []Reading `json:"readings"`
}

// ReadingsQuery selects readings.
type ReadingsQuery struct {
	Param string
	Since time.Duration
	Limit int
}

// Alerts answers `ph-agent alerts`.
type Alerts struct {
	Alerts []alerting.Alert `json:"alerts"`
}

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`
}

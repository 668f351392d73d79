package admin

import (
	"encoding/json"
	"time"
)

// Summary is the retained message the agent publishes on purehealth/<station>/status
// (contract topic), for local dashboards: the headline of Status.
type Summary struct {
	Station      string          `json:"station"`
	Version      string          `json:"version"`
	Time         time.Time       `json:"time"`
	UptimeS      float64         `json:"uptime_s"`
	ClockSynced  bool            `json:"clock_synced"`
	WQI          json.RawMessage `json:"wqi"`
	ActiveAlerts int             `json:"active_alerts"`
	Backlog      int             `json:"backlog"` // unsent readings in the buffer
	Uplink       string          `json:"uplink"`  // the uplink's state (see Queue.State)
	BufferUsed   int64           `json:"buffer_used_bytes"`
	BufferMax    int64           `json:"buffer_max_bytes"`
	Clients      int64           `json:"mqtt_clients"`
}

// Summary returns the headline of s.
func (s Status) Summary() Summary {
	wqi := s.WQI
	if len(wqi) == 0 {
		wqi = json.RawMessage("null")
	}
	return Summary{
		Station: s.Station, Version: s.Version, Time: s.Now, UptimeS: s.UptimeS,
		ClockSynced: s.Clock.Synced, WQI: wqi, ActiveAlerts: len(s.ActiveAlerts),
		Backlog: s.Buffer.Unforwarded, Uplink: s.Uplink.State,
		BufferUsed: s.Buffer.UsedBytes, BufferMax: s.Buffer.MaxBytes, Clients: s.Broker.Clients,
	}
}

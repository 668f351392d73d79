package admin

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/alerting"
)

func TestSummary(t *testing.T) {
	now := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	st := Status{
		Station: "MH-PUNE-001", Version: "v1.2.3", Now: now, UptimeS: 90,
		Broker: BrokerStatus{Clients: 4}, Uplink: Queue{State: "backing off", Backlog: 7},
		Buffer: BufferStatus{UsedBytes: 1 << 20, MaxBytes: 512 << 20, Unforwarded: 9},
		Clock:  ClockStatus{Synced: true}, WQI: json.RawMessage(`{"wqi":71.2}`),
		ActiveAlerts: []alerting.Alert{{ID: 1}, {ID: 2}},
	}
	raw, err := json.Marshal(st.Summary())
	require.NoError(t, err)
	assert.JSONEq(t, `{"station":"MH-PUNE-001","version":"v1.2.3","time":"2026-07-01T10:00:00Z",
		"uptime_s":90,"clock_synced":true,"wqi":{"wqi":71.2},"active_alerts":2,"backlog":9,
		"uplink":"backing off","buffer_used_bytes":1048576,"buffer_max_bytes":536870912,"mqtt_clients":4}`, string(raw))

	raw, err = json.Marshal(Status{Uplink: Queue{State: "not configured"}}.Summary())
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"wqi":null`, "no index yet: null, as before the first one")
}

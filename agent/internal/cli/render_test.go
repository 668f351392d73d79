package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/agent/internal/alerting"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var now = time.Date(2026, 11, 27, 6, 30, 0, 0, time.UTC)

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file: run go test -update")
	assert.Equal(t, string(want), string(got), "output differs from %s (go test -update to accept)", path)
}

// fixture reads a JSON response saved in testdata.
func fixture[T any](t *testing.T, name string) T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	var v T
	require.NoError(t, json.Unmarshal(b, &v))
	return v
}

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		render func(*bytes.Buffer) error
	}{
		{"status", "status.txt", func(b *bytes.Buffer) error {
			return renderStatus(b, fixture[admin.Status](t, "status.json"), now)
		}},
		{"status after reloads", "status-reloaded.txt", func(b *bytes.Buffer) error {
			st := fixture[admin.Status](t, "status.json")
			st.Config = &admin.ConfigStatus{Reloads: 2, Failed: 1, LastReloadAt: now.Add(-2 * time.Minute),
				LastError:     "configuration not reloaded: agent.yaml:4: field colour not found in type config.Station",
				RestartNeeded: []string{"mqtt.listen", "uplink.url"}}
			return renderStatus(b, st, now)
		}},
		{"status offline and failing", "status-degraded.txt", func(b *bytes.Buffer) error {
			return renderStatus(b, fixture[admin.Status](t, "status-degraded.json"), now)
		}},
		{"sensors", "sensors.txt", func(b *bytes.Buffer) error {
			return renderSensors(b, fixture[admin.Sensors](t, "sensors.json").Sensors, now)
		}},
		{"no sensors", "sensors-empty.txt", func(b *bytes.Buffer) error { return renderSensors(b, nil, now) }},
		{"readings", "readings.txt", func(b *bytes.Buffer) error {
			return renderReadings(b, fixture[admin.Readings](t, "readings.json").Readings, now)
		}},
		{"wqi", "wqi.txt", func(b *bytes.Buffer) error {
			return renderWQI(b, fixture[json.RawMessage](t, "wqi.json"), now)
		}},
		{"wqi none", "wqi-none.txt", func(b *bytes.Buffer) error {
			return renderWQI(b, json.RawMessage(`{"wqi":null,"reason":"no fresh values of do, fc, ph or bod"}`), now)
		}},
		{"alerts all", "alerts-all.txt", func(b *bytes.Buffer) error {
			return renderAlerts(b, fixture[admin.Alerts](t, "alerts.json").Alerts, now, true)
		}},
		{"alerts none", "alerts-none.txt", func(b *bytes.Buffer) error {
			return renderAlerts(b, []alerting.Alert{}, now, false)
		}},
		{"probes", "probes.txt", func(b *bytes.Buffer) error {
			return renderProbes(b, fixture[admin.Probes](t, "probes.json").Probes, now)
		}},
		{"serial exchange", "exchange-serial.txt", func(b *bytes.Buffer) error {
			return renderExchange(b, fixture[json.RawMessage](t, "exchange-serial.json"))
		}},
		{"http exchange", "exchange-http.txt", func(b *bytes.Buffer) error {
			return renderExchange(b, fixture[json.RawMessage](t, "exchange-http.json"))
		}},
		{"queue", "queue.txt", func(b *bytes.Buffer) error {
			return renderQueue(b, fixture[admin.Queue](t, "queue.json"), now)
		}},
		{"queue backing off", "queue-backing-off.txt", func(b *bytes.Buffer) error {
			return renderQueue(b, fixture[admin.Queue](t, "queue-backing-off.json"), now)
		}},
		{"queue budget exhausted", "queue-budget.txt", func(b *bytes.Buffer) error {
			return renderQueue(b, fixture[admin.Queue](t, "queue-budget.json"), now)
		}},
		{"queue idle", "queue-idle.txt", func(b *bytes.Buffer) error {
			return renderQueue(b, fixture[admin.Queue](t, "queue-idle.json"), now)
		}},
		{"status backing off", "status-backing-off.txt", func(b *bytes.Buffer) error {
			s := fixture[admin.Status](t, "status.json")
			s.Uplink = fixture[admin.Queue](t, "queue-backing-off.json")
			return renderStatus(b, s, now)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, tt.render(&b))
			golden(t, tt.golden, b.Bytes())
		})
	}
}

func TestAge(t *testing.T) {
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{0, "just now"},
		{4 * time.Second, "just now"},
		{12 * time.Second, "12s ago"},
		{2*time.Minute + 59*time.Second, "2m ago"},
		{3 * time.Hour, "3h ago"},
		{47 * time.Hour, "47h ago"},
		{4 * 24 * time.Hour, "4d ago"},
		{-time.Minute, "in 1m"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, age(now.Add(-tt.ago), now), "age of %s", tt.ago)
	}
	assert.Equal(t, "never", age(time.Time{}, now))
}

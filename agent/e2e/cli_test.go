package e2e

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/pahotest"
)

// The technician's commands against a running agent: each answers, and each --json output
// has the keys the design names as its contract. With the agent stopped, every query says
// so in one line on stderr and exits non-zero.
func TestCLIAgainstRunningAgent(t *testing.T) {
	cfg := newConfig(t, 8<<20)
	agent := startAgent(t, cfg)

	device := pahotest.Connect(t, cfg.Listen, "e2e", guard)
	// A full set of WQI inputs; DO 3 then 2 mg/L, both below class B's minimum of 5.
	for _, m := range []struct{ leaf, body string }{
		{"ph", `{"value": 7.4, "unit": "pH"}`},
		{"bod", `{"value": 2.1, "unit": "mg/L"}`},
		{"fc", `{"value": 350, "unit": "MPN/100mL"}`},
		{"temp", `{"value": 26.5, "unit": "degC"}`},
		{"do", `{"value": 3, "unit": "mg/L"}`},
		{"do", `{"value": 2, "unit": "mg/L"}`},
	} {
		pahotest.PublishAcked(t, device, cfg.Topic(m.leaf), m.body, guard)
	}
	pahotest.Disconnect(device)

	t.Run("status", func(t *testing.T) {
		out := mustCLI(t, cfg, "status")
		assert.Contains(t, out, cfg.Station)
		assert.Contains(t, out, "WQI")
		var st map[string]any
		require.NoError(t, json.Unmarshal([]byte(mustCLI(t, cfg, "status", "--json")), &st))
		assert.Equal(t, cfg.Station, st["station"])
		assertKeys(t, st, "station", "version", "uptime_s", "broker", "uplink", "buffer", "wqi", "active_alerts")
	})

	t.Run("sensors", func(t *testing.T) {
		out := mustCLI(t, cfg, "sensors")
		for _, name := range []string{"ph", "do", "bod", "fc", "temp"} {
			assert.Contains(t, out, name)
		}
		var got struct{ Sensors []map[string]any }
		require.NoError(t, json.Unmarshal([]byte(mustCLI(t, cfg, "sensors", "--json")), &got))
		require.Len(t, got.Sensors, 5)
		for _, s := range got.Sensors {
			assertKeys(t, s, "name", "kind", "param", "online", "last_reading_at", "readings", "errors")
		}
	})

	t.Run("readings", func(t *testing.T) {
		var top map[string]json.RawMessage
		out := mustCLI(t, cfg, "readings", "--param", "do", "--json")
		require.NoError(t, json.Unmarshal([]byte(out), &top))
		assert.Equal(t, []string{"readings"}, slices.Sorted(maps.Keys(top)))
		var rows []map[string]any
		require.NoError(t, json.Unmarshal(top["readings"], &rows))
		require.Len(t, rows, 2)
		for _, r := range rows {
			assertKeys(t, r, "seq", "time", "param", "value", "unit", "quality", "source", "sensor")
			assert.Equal(t, "do", r["param"])
			assert.Equal(t, "mg/L", r["unit"])
			assert.Equal(t, "good", r["quality"])
			assert.Equal(t, "sensor", r["source"])
			_, err := time.Parse(time.RFC3339Nano, r["time"].(string))
			assert.NoError(t, err, "time is RFC 3339")
		}
		assert.Equal(t, []any{2.0, 3.0}, []any{rows[0]["value"], rows[1]["value"]}, "newest first")
		assert.Greater(t, rows[0]["seq"], rows[1]["seq"], "newest first")
	})

	t.Run("wqi", func(t *testing.T) {
		var w map[string]any
		require.NoError(t, json.Unmarshal([]byte(mustCLI(t, cfg, "wqi", "--json")), &w))
		assertKeys(t, w, "wqi", "class", "category", "sub_indices", "do_saturation_pct", "partial", "missing")
		assert.Equal(t, false, w["partial"])
		assert.Equal(t, []any{}, w["missing"])
		require.IsType(t, map[string]any{}, w["sub_indices"])
		assertKeys(t, w["sub_indices"].(map[string]any), "do", "fc", "ph", "bod")
		assert.IsType(t, 0.0, w["wqi"])
		assert.Contains(t, mustCLI(t, cfg, "wqi"), w["class"].(string))
	})

	t.Run("alerts ack", func(t *testing.T) {
		var active struct{ Alerts []map[string]any }
		require.NoError(t, json.Unmarshal([]byte(mustCLI(t, cfg, "alerts", "--json")), &active))
		var id string
		for _, a := range active.Alerts {
			assertKeys(t, a, "id", "rule", "param", "severity", "state", "opened_at", "resolved_at", "message")
			if a["rule"] == "threshold" && a["param"] == "do" {
				id = strconv.FormatFloat(a["id"].(float64), 'f', -1, 64)
				assert.Equal(t, "active", a["state"])
				assert.Nil(t, a["resolved_at"])
			}
		}
		require.NotEmpty(t, id, "no active DO threshold alert in %+v", active.Alerts)
		assert.Contains(t, mustCLI(t, cfg, "alerts"), "threshold")

		assert.Contains(t, mustCLI(t, cfg, "alerts", "ack", id), "Alert "+id+" acknowledged")

		var all struct{ Alerts []map[string]any }
		require.NoError(t, json.Unmarshal([]byte(mustCLI(t, cfg, "alerts", "--all", "--json")), &all))
		var state any
		for _, a := range all.Alerts {
			if strconv.FormatFloat(a["id"].(float64), 'f', -1, 64) == id {
				state = a["state"]
			}
		}
		assert.Equal(t, "acknowledged", state, "alert %s after ack", id)

		res := runCLI(t, cfg, "alerts", "ack", "999999")
		assert.NotEqual(t, 0, res.Code, "acknowledging an unknown alert")
		assert.Equal(t, 1, strings.Count(res.Stderr, "\n"), "one line on stderr: %q", res.Stderr)
	})

	t.Run("queue", func(t *testing.T) {
		var q map[string]any
		require.NoError(t, json.Unmarshal([]byte(mustCLI(t, cfg, "queue", "--json")), &q))
		assertKeys(t, q, "backlog", "oldest_unsent_at", "last_acked_seq", "last_success_at")
		assert.Equal(t, 6.0, q["backlog"], "every reading waits for the uplink")
		assert.Equal(t, 0.0, q["last_acked_seq"])
		mustCLI(t, cfg, "queue")
	})

	agent.Stop(t)

	t.Run("agent stopped", func(t *testing.T) {
		for _, args := range [][]string{
			{"status"}, {"status", "--json"}, {"sensors"}, {"readings", "--param", "do", "--json"},
			{"wqi", "--json"}, {"alerts"}, {"alerts", "--all", "--json"}, {"alerts", "ack", "1"},
			{"queue", "--json"}, {"flush"},
		} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				res := runCLI(t, cfg, args...)
				assert.NotEqual(t, 0, res.Code, "exit code")
				assert.Empty(t, res.Stdout)
				assert.Equal(t, 1, strings.Count(res.Stderr, "\n"), "one line on stderr: %q", res.Stderr)
				assert.True(t, strings.HasPrefix(res.Stderr, "ph-agent: agent not running: no socket at "+cfg.Socket),
					"stderr: %q", res.Stderr)
			})
		}
	})
}

// assertKeys checks that the JSON object m has every key in keys.
func assertKeys(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		assert.Contains(t, m, k, "key %q missing from %v", k, slices.Sorted(maps.Keys(m)))
	}
}

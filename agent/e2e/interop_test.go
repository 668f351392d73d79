package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/internal/testtool"
)

// Mosquitto's own clients against the real agent: QoS 1 publishes over MQTT 3.1.1 and 5 are
// stored (mosquitto_pub exits 0 only after the PUBACK), and a subscriber to the WQI topic
// gets the retained index at once.
func TestMosquittoClientsAgainstAgent(t *testing.T) {
	pub := testtool.LookPath(t, "mosquitto-clients", "mosquitto_pub")
	sub := testtool.LookPath(t, "mosquitto-clients", "mosquitto_sub")
	cfg := newConfig(t, 8<<20)
	startAgent(t, cfg)
	host, port, err := net.SplitHostPort(cfg.Listen)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	sent := []struct {
		version, leaf, body string
		value               float64
	}{
		{"mqttv311", "ph", `{"value": 7.3, "unit": "pH"}`, 7.3},
		{"mqttv5", "do", `6.4`, 6.4},
		{"mqttv311", "bod", `{"value": 1.8, "unit": "mg/L"}`, 1.8},
		{"mqttv5", "fc", `{"value": 220, "unit": "MPN/100mL"}`, 220},
	}
	for _, m := range sent {
		out, err := exec.CommandContext(ctx, pub, "-h", host, "-p", port, "-V", m.version, "-q", "1",
			"-i", "e2e-pub-"+m.leaf, "-t", cfg.Topic(m.leaf), "-m", m.body).CombinedOutput()
		require.NoError(t, err, "mosquitto_pub -V %s %s: %s", m.version, m.leaf, out)
	}

	rs, err := admin.NewClient(cfg.Socket).Readings(ctx, admin.ReadingsQuery{Limit: 10})
	require.NoError(t, err)
	stored := map[string]float64{}
	for _, r := range rs.Readings {
		stored[r.Param] = r.Value
	}
	for _, m := range sent {
		assert.Equal(t, m.value, stored[m.leaf], "%s sent over %s", m.leaf, m.version)
	}
	assert.Len(t, rs.Readings, len(sent))

	for _, version := range []string{"mqttv311", "mqttv5"} {
		t.Run("subscribe "+version, func(t *testing.T) {
			// -C 1: exit after one message; -W: give up (non-zero exit) if none comes.
			cmd := exec.CommandContext(ctx, sub, "-h", host, "-p", port, "-V", version, "-q", "1",
				"-t", cfg.Topic("wqi"), "-C", "1", "-W", "20", "-v")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			require.NoError(t, err, "mosquitto_sub: %s", stderr.String())
			topic, payload, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
			require.True(t, ok, "mosquitto_sub -v prints topic and payload: %q", out)
			assert.Equal(t, cfg.Topic("wqi"), topic)
			var w map[string]any
			require.NoError(t, json.Unmarshal([]byte(payload), &w), "WQI payload %s", payload)
			assert.Equal(t, cfg.Station, w["station"])
			assert.IsType(t, 0.0, w["wqi"])
			assert.Equal(t, false, w["partial"], "all four index inputs were sent")
			assert.NotEmpty(t, w["class"])
			subs, _ := w["sub_indices"].(map[string]any)
			assert.ElementsMatch(t, []string{"do", "fc", "ph", "bod"}, slices.Collect(maps.Keys(subs)))
		})
	}
}

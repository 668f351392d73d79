package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleHealth() *Health {
	autonomy := 30.5
	oldest := t0.Add(-5 * time.Minute)
	return &Health{
		Time: t0, Version: "v1.4.0", UptimeS: 3600, ClockSynced: true,
		Buffer:  HealthBuffer{UsedBytes: 1 << 20, MaxBytes: 512 << 20, AutonomyH: &autonomy},
		Backlog: 12, OldestUnsentAt: &oldest,
		Probes:         HealthProbes{Total: 3, Online: 2, Failing: []FailingProbe{{Name: "do-1", Reason: "offline: nothing for 3m"}}},
		CalibrationDue: []CalibrationDue{{Probe: "ph-1", Param: "ph", DueAt: t0.AddDate(0, 0, 12)}},
		Broker:         HealthBroker{Clients: 2, Rejects: 5},
	}
}

func TestHealthRoundTrip(t *testing.T) {
	in := &Batch{V: Version, Station: "MH-PUNE-001", Agent: "v1.4.0", SentAt: t0, Health: sampleHealth()}
	data, err := Encode(in)
	require.NoError(t, err)
	out, err := Decode(bytes.NewReader(data), true)
	require.NoError(t, err)
	assert.Equal(t, in, out)
	require.NoError(t, out.Validate())
}

// A cloud that predates health records ignores the field, as it ignores any field of a
// newer agent: the batch (here with a reading beside it) decodes as it did before.
func TestHealthUnknownToOlderDecoderShape(t *testing.T) {
	body := `{"v":1,"station":"S","health_v2":{"x":[1,2,3]},"readings":[]}`
	b, err := Decode(strings.NewReader(body), false)
	require.NoError(t, err)
	assert.Nil(t, b.Health)
}

func TestHealthRefusals(t *testing.T) {
	health := func(mutate func(h map[string]any)) string {
		raw, err := json.Marshal(sampleHealth())
		require.NoError(t, err)
		var h map[string]any
		require.NoError(t, json.Unmarshal(raw, &h))
		mutate(h)
		out, err := json.Marshal(map[string]any{"v": 1, "station": "S", "health": h})
		require.NoError(t, err)
		return string(out)
	}
	failing := func(n int, name string) []any {
		var out []any
		for range n {
			out = append(out, map[string]any{"name": name, "reason": "offline"})
		}
		return out
	}
	tests := []struct {
		name, body, field string
	}{
		{"no time", health(func(h map[string]any) { delete(h, "time") }), "health.time"},
		{"negative uptime", health(func(h map[string]any) { h["uptime_s"] = -1 }), "health.uptime_s"},
		{"version with an escape", health(func(h map[string]any) { h["version"] = "\u001b[2J" }), "health.version"},
		{"no version", health(func(h map[string]any) { h["version"] = "" }), "health.version"},
		{"negative autonomy", health(func(h map[string]any) { h["buffer"].(map[string]any)["autonomy_h"] = -2 }), "health.buffer.autonomy_h"},
		{"more online than total", health(func(h map[string]any) { h["probes"].(map[string]any)["online"] = 9 }), "health.probes"},
		{"too many failing", health(func(h map[string]any) {
			h["probes"].(map[string]any)["failing"] = failing(MaxHealthList+1, "p")
		}), "health.probes.failing"},
		{"NUL in a probe name", health(func(h map[string]any) {
			h["probes"].(map[string]any)["failing"] = failing(1, "p\x00")
		}), "health.probes.failing[0].name"},
		{"long reason", health(func(h map[string]any) {
			h["probes"].(map[string]any)["failing"] = []any{map[string]any{"name": "p", "reason": strings.Repeat("r", MaxReasonLen+1)}}
		}), "health.probes.failing[0].reason"},
		{"unknown calibration param", health(func(h map[string]any) {
			h["calibration_due"] = []any{map[string]any{"probe": "p", "param": "salinity", "due_at": "2026-01-01T00:00:00Z"}}
		}), "health.calibration_due[0].param"},
		{"calibration without a date", health(func(h map[string]any) {
			h["calibration_due"] = []any{map[string]any{"probe": "p"}}
		}), "health.calibration_due[0].due_at"},
		{"type error", health(func(h map[string]any) { h["backlog"] = "many" }), "health.backlog"},
		{"twice", `{"v":1,"station":"S","health":null,"health":null}`, "health"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tt.body), false)
			require.ErrorIs(t, err, ErrMalformed)
			fe, ok := errors.AsType[*FieldError](err)
			require.True(t, ok, "want a FieldError, got %v", err)
			assert.Equal(t, tt.field, fe.Field)
		})
	}
}

// The record's own bound holds before it is unmarshalled: one padded with whitespace
// past MaxHealthBytes is refused for its size.
func TestHealthBoundedBeforeDecoding(t *testing.T) {
	raw, err := json.Marshal(sampleHealth())
	require.NoError(t, err)
	padded := strings.Replace(string(raw), `"time"`, strings.Repeat(" ", MaxHealthBytes)+`"time"`, 1)
	_, err = Decode(strings.NewReader(fmt.Sprintf(`{"v":1,"station":"S","health":%s}`, padded)), false)
	fe, ok := errors.AsType[*FieldError](err)
	require.True(t, ok, "want a FieldError, got %v", err)
	assert.Equal(t, "health", fe.Field)
	assert.Contains(t, fe.Msg, "at most")
}

// The largest record the bounds allow fits MaxHealthBytes, so an agent that keeps to the
// bounds is never refused for size.
func TestLargestValidHealthFits(t *testing.T) {
	h := sampleHealth()
	h.Version = strings.Repeat("v", maxAgentLen)
	h.Probes.Failing = nil
	h.CalibrationDue = nil
	for range MaxHealthList {
		h.Probes.Failing = append(h.Probes.Failing, FailingProbe{Name: strings.Repeat("n", 128), Reason: strings.Repeat("r", MaxReasonLen)})
		h.CalibrationDue = append(h.CalibrationDue, CalibrationDue{Probe: strings.Repeat("n", 128), Param: "conductivity", DueAt: t0})
	}
	require.NoError(t, h.Validate())
	raw, err := json.Marshal(h)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(raw), MaxHealthBytes)
}

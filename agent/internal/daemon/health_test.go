package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/probestatus"
	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
)

func TestProbeHealth(t *testing.T) {
	now := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	sensors := []state.Sensor{
		{Name: "ph-1", Expected: true, Interval: time.Minute, LastReadingAt: now.Add(-30 * time.Second)},
		{Name: "do-1", Expected: true, Interval: time.Minute, LastReadingAt: now.Add(-10 * time.Minute)},
		{Name: "turb-1", Expected: true, Interval: time.Minute},
		{Name: "cond-1", Expected: true, Interval: time.Hour}, // never reported, not yet overdue
		{Name: "temp-1", Expected: true, Interval: time.Minute, LastReadingAt: now.Add(-20 * time.Second)},
		{Name: "mqtt-dev", Interval: 30 * time.Second, Learned: true, LastReadingAt: now.Add(-time.Hour)},
		{Name: "mqtt-once", LastReadingAt: now.Add(-time.Hour)}, // no interval: nothing to judge
	}
	counts := map[string]probestatus.Counts{
		"ph-1":   {LastReadingAt: now.Add(-30 * time.Second), LastError: "timeout: no answer", LastErrorAt: now.Add(-40 * time.Second)},
		"turb-1": {LastError: "connect: connection refused", LastErrorAt: now.Add(-time.Second)},
		"temp-1": {LastReadingAt: now.Add(-20 * time.Second), LastError: "garbage: \x1b[2Jxx", LastErrorAt: now.Add(-5 * time.Second)},
	}
	got := probeHealth(now, now.Add(-time.Hour), 3, sensors, counts)
	assert.Equal(t, 7, got.Total)
	assert.Equal(t, 3, got.Online, "ph-1, temp-1 and the device with no interval")
	assert.Equal(t, []wire.FailingProbe{
		{Name: "do-1", Reason: "offline: no reading for 10m0s (expected every 1m0s)"},
		{Name: "mqtt-dev", Reason: "offline: no reading for 1h0m0s (expected every 30s)"},
		{Name: "temp-1", Reason: "failing: garbage:  [2Jxx"},
		{Name: "turb-1", Reason: "no reading since the agent started; last error: connect: connection refused"},
	}, got.Failing, "ph-1's error is older than its last reading: recovered; cond-1 has 3 h to report")
	h := wire.Health{Time: now, Version: "v1", Probes: got}
	require.NoError(t, h.Validate(), "what the agent makes, the cloud takes")

	var many []state.Sensor
	for i := range wire.MaxHealthList + 10 {
		many = append(many, state.Sensor{Name: fmt.Sprintf("p-%03d", i), Expected: true, Interval: time.Minute})
	}
	got = probeHealth(now, now.Add(-time.Hour), 3, many, nil)
	assert.Empty(t, probeHealth(now, now.Add(-time.Minute), 3, many, nil).Failing,
		"just started: no probe has had its chance to report yet")
	assert.Equal(t, wire.MaxHealthList+10, got.Total, "the count covers all")
	assert.Len(t, got.Failing, wire.MaxHealthList, "the list is bounded")
	assert.Equal(t, "p-000", got.Failing[0].Name)
}

func TestFitText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a\nb\x00c", "a b c"},
		{"\x01\x02", "?"},
		{strings.Repeat("é", 100), strings.Repeat("é", 62) + "…"},
		{"bad \xff utf-8", "bad ? utf-8"},
	} {
		got := fitText(tt.in, 128)
		assert.Equal(t, tt.want, got)
		assert.True(t, utf8.ValidString(got))
		assert.NoError(t, telemetry.CheckName(got, 128))
	}
}

// The record of a running daemon: its probes (the dead one failing), no calibration due
// for HTTP probes, and it passes the cloud's validation.
func TestHealthRecordOfRunningDaemon(t *testing.T) {
	f := startReloadFixture(t, "")
	require.Eventually(t, func() bool {
		return len(f.d.health().Probes.Failing) == 1
	}, guard, 20*time.Millisecond, "dead-1 failing")
	h := f.d.health()
	require.NoError(t, h.Validate())
	assert.Equal(t, 2, h.Probes.Total)
	assert.Equal(t, "dead-1", h.Probes.Failing[0].Name)
	assert.Empty(t, h.CalibrationDue, "HTTP probes are not calibrated from the agent")
	assert.Positive(t, h.Buffer.MaxBytes)
	assert.Positive(t, h.UptimeS)
}

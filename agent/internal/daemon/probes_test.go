package daemon

import (
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/config"
)

// TestCalibrationDue checks the calibration alert's lifecycle with explicit times: it
// counts from the probe's first run, fires past the configured age, and resolves once a
// calibration is on record. The probes are built but never run.
func TestCalibrationDue(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(`
station: {id: MH-D-003, class: B}
data_dir: ` + filepath.Join(dir, "data") + `
mqtt: {listen: "127.0.0.1:0", allow_anonymous: true}
clock: {sync_check: none}
alerts: {calibration_due: 720h}
probes:
  - {name: ph-1, kind: serial, device: /dev/null-ph, param: ph}
  - {name: turb-1, kind: http, url: "http://127.0.0.1:1/turbidity", param: turbidity}
`))
	require.NoError(t, err)
	d, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, d.spool.Close()) })
	ctx := t.Context()
	due := func() []alerting.Alert {
		var out []alerting.Alert
		for _, a := range d.alerts.Active() {
			if a.Rule == alerting.RuleCalibrationDue {
				out = append(out, a)
			}
		}
		return out
	}

	start := time.Now()
	d.checkCalibrations(ctx, start)
	assert.Empty(t, due(), "a probe first seen now is not yet due")
	d.checkCalibrations(ctx, start.Add(29*24*time.Hour))
	assert.Empty(t, due())
	d.checkCalibrations(ctx, start.Add(31*24*time.Hour))
	active := due()
	require.Len(t, active, 1, "only the serial probe can be calibrated, so only it is due")
	assert.Equal(t, "ph-1", active[0].Sensor)
	assert.Contains(t, active[0].Message, "never calibrated")

	rec, err := json.Marshal(Calibration{Probe: "ph-1", Point: "mid", Value: 7, At: start.Add(31 * 24 * time.Hour)})
	require.NoError(t, err)
	require.NoError(t, d.spool.Put(ctx, calibrationKey+"ph-1", rec))
	d.checkCalibrations(ctx, start.Add(31*24*time.Hour+time.Minute))
	assert.Empty(t, due(), "a fresh calibration resolves the alert")

	_, err = backend{d}.ProbeCalibrate(ctx, "turb-1", "mid", 7)
	assert.ErrorIs(t, err, admin.ErrBadRequest, "an HTTP probe cannot be calibrated")
	_, err = backend{d}.ProbeTest(ctx, "nope")
	assert.ErrorIs(t, err, admin.ErrNotFound)
}

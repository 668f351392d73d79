package daemon

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/agent/internal/config"
)

// TestProbeCommands: the admin API reaches the configured probes by name, and only a
// serial probe can be calibrated. The probes are built but never run.
func TestProbeCommands(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(`
station: {id: MH-D-003, class: B}
data_dir: ` + filepath.Join(dir, "data") + `
mqtt: {listen: "127.0.0.1:0", allow_anonymous: true}
clock: {sync_check: none}
probes:
  - {name: ph-1, kind: serial, device: /dev/null-ph, param: ph}
  - {name: turb-1, kind: http, url: "http://127.0.0.1:1/turbidity", param: turbidity}
`))
	require.NoError(t, err)
	d, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, d.Close()) })
	ctx := t.Context()

	_, err = backend{d}.ProbeCalibrate(ctx, "turb-1", "mid", 7)
	assert.ErrorIs(t, err, admin.ErrBadRequest, "an HTTP probe cannot be calibrated")
	_, err = backend{d}.ProbeTest(ctx, "nope")
	assert.ErrorIs(t, err, admin.ErrNotFound)
	probes, err := backend{d}.Probes(ctx)
	require.NoError(t, err)
	require.Len(t, probes.Probes, 2)
	assert.Nil(t, probes.Probes[0].Calibration, "never calibrated")
}

package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/fleet"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/shared/wire"
)

var updateFleet = flag.Bool("update-fleet", false, "rewrite testdata/fleet/fleet.txt")

func TestRenderFleetGolden(t *testing.T) {
	now := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	ptr := func(t time.Time) *time.Time { return &t }
	rec := func(id string, seen time.Time, version string, autonomy *float64, failing []wire.FailingProbe, due []wire.CalibrationDue) store.FleetStation {
		uptime, synced, backlog := 3*24*3600.0, true, int64(12)
		return store.FleetStation{ID: id, LastSeen: &seen, Online: true, HealthAt: &seen, Version: &version,
			UptimeS: &uptime, ClockSynced: &synced, Backlog: &backlog,
			Buffer:         &wire.HealthBuffer{UsedBytes: 1 << 20, MaxBytes: 512 << 20, AutonomyH: autonomy},
			Probes:         &wire.HealthProbes{Total: 3, Online: 3 - len(failing), Failing: failing},
			CalibrationDue: due}
	}
	h := func(v float64) *float64 { return &v }
	a := rec("MH-PUNE-001", now.Add(-20*time.Second), "v1.4.0", h(130), nil,
		[]wire.CalibrationDue{{Probe: "ph-1", DueAt: now.Add(12 * 24 * time.Hour)}})
	b := rec("MH-NASIK-001", now.Add(-3*time.Minute), "v1.3.2", h(18.5),
		[]wire.FailingProbe{{Name: "do-1", Reason: "offline"}, {Name: "turb-1", Reason: "failing: timeout"}},
		[]wire.CalibrationDue{{Probe: "ph-2", DueAt: now.Add(-50 * time.Hour)}})
	b.Online = false
	synced := false
	b.ClockSynced = &synced
	c := rec("MH-SANGLI-001", now.Add(-time.Minute), "dev", nil, nil, nil)
	d := store.FleetStation{ID: "MH-NEW-001", LastSeen: ptr(now.Add(-time.Hour)), Online: true}
	view := fleet.Build([]store.FleetStation{b, d, a, c})

	var out bytes.Buffer
	require.NoError(t, renderFleet(&out, view, now))
	path := filepath.Join("testdata", "fleet", "fleet.txt")
	if *updateFleet {
		require.NoError(t, os.WriteFile(path, out.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "no golden file: go test -run RenderFleet -update-fleet")
	assert.Equal(t, string(want), out.String(), "%s differs (go test -run RenderFleet -update-fleet rewrites it)", path)

	out.Reset()
	require.NoError(t, renderFleet(&out, fleet.Build(nil), now))
	assert.Contains(t, out.String(), "no stations")
}

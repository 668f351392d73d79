package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/shared/wire"
)

// ph-cloud fleet over a real database: a station that reported and one that did not.
func TestFleetCommand(t *testing.T) {
	url := pgtest.New(t)
	cfg := writeConfig(t, url)
	require.NoError(t, run(t, "migrate", "--config", cfg).err)
	for _, id := range []string{"MH-PUNE-001", "MH-NEW-001"} {
		r := run(t, "station", "add", id, "--name", "Station "+id, "--config", cfg)
		require.NoError(t, r.err, r.stderr)
	}
	st, err := store.Open(t.Context(), url, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	autonomy := 12.0
	_, err = st.Ingest(t.Context(), "MH-PUNE-001", &wire.Batch{V: wire.Version, Station: "MH-PUNE-001", SentAt: time.Now(),
		Health: &wire.Health{Time: time.Now().UTC(), Version: "v1.4.0", UptimeS: 3600, ClockSynced: true,
			Buffer: wire.HealthBuffer{MaxBytes: 1 << 29, AutonomyH: &autonomy},
			Probes: wire.HealthProbes{Total: 2, Online: 2, Failing: []wire.FailingProbe{}}}})
	require.NoError(t, err)

	r := run(t, "fleet", "--json", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	var view struct {
		NewestVersion string `json:"newest_version"`
		Stations      []struct {
			ID          string                       `json:"id"`
			Version     *string                      `json:"version"`
			AutonomyLow bool                         `json:"autonomy_low"`
			Probes      *struct{ Total, Online int } `json:"probes"`
		} `json:"stations"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &view), r.stdout)
	assert.Equal(t, "v1.4.0", view.NewestVersion)
	require.Len(t, view.Stations, 2)
	assert.Equal(t, "MH-NEW-001", view.Stations[0].ID)
	assert.Nil(t, view.Stations[0].Version)
	assert.True(t, view.Stations[1].AutonomyLow, "12 h is under a day")
	assert.Equal(t, 2, view.Stations[1].Probes.Online)

	r = run(t, "fleet", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 3, r.stdout)
	assert.Contains(t, lines[0], "AUTONOMY")
	assert.Contains(t, lines[1], "no health record yet")
	assert.Contains(t, lines[2], "12h LOW")
}

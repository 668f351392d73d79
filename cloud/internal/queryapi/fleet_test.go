package queryapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/shared/wire"
)

func health(at time.Time, version string, autonomy float64) *wire.Health {
	return &wire.Health{Time: at, Version: version, UptimeS: 60, ClockSynced: true,
		Buffer:  wire.HealthBuffer{UsedBytes: 1 << 20, MaxBytes: 64 << 20, AutonomyH: &autonomy},
		Probes:  wire.HealthProbes{Total: 2, Online: 1, Failing: []wire.FailingProbe{{Name: "do-1", Reason: "offline"}}},
		Backlog: 5}
}

// GET /v1/fleet and a station's health history over a real database.
func TestFleet(t *testing.T) {
	e := newEnv(t) // MH-PUNE-001
	for _, id := range []string{"MH-B-001", "MH-C-001"} {
		storetest.AddStation(t, e.store, id)
	}
	for _, rec := range []struct {
		station string
		h       *wire.Health
	}{
		{station, health(now.Add(-2*time.Minute), "v1.4.0", 100)},
		{station, health(now.Add(-time.Minute), "v1.4.0", 90)},
		{"MH-B-001", health(now.Add(-time.Minute), "v1.3.2", 12)},
	} {
		b := storetest.Batch(rec.station, nil)
		b.Health = rec.h
		e.ingest(t, b)
	}

	var view struct {
		NewestVersion string                       `json:"newest_version"`
		Stations      []map[string]json.RawMessage `json:"stations"`
	}
	require.Equal(t, http.StatusOK, e.get(t, "/v1/fleet", &view))
	assert.Equal(t, "v1.4.0", view.NewestVersion)
	require.Len(t, view.Stations, 3)
	for _, s := range view.Stations {
		for _, k := range []string{"id", "last_seen", "version", "uptime_s", "clock_synced", "buffer", "backlog",
			"probes", "calibration_due", "version_lags", "autonomy_low"} {
			assert.Contains(t, s, k)
		}
	}
	byID := map[string]map[string]json.RawMessage{}
	for _, s := range view.Stations {
		var id string
		require.NoError(t, json.Unmarshal(s["id"], &id))
		byID[id] = s
	}
	assert.JSONEq(t, `true`, string(byID["MH-B-001"]["version_lags"]))
	assert.JSONEq(t, `true`, string(byID["MH-B-001"]["autonomy_low"]))
	assert.JSONEq(t, `{"total":2,"online":1,"failing":[{"name":"do-1","reason":"offline"}]}`, string(byID["MH-B-001"]["probes"]))
	assert.JSONEq(t, `false`, string(byID[station]["autonomy_low"]))
	assert.JSONEq(t, `null`, string(byID["MH-C-001"]["version"]), "a station that never reported")
	assert.JSONEq(t, `[]`, string(byID["MH-C-001"]["calibration_due"]))

	var hist struct {
		Station string              `json:"station"`
		History []store.HealthPoint `json:"history"`
	}
	require.Equal(t, http.StatusOK, e.get(t, "/v1/fleet/"+station+"/history", &hist))
	require.Len(t, hist.History, 2, "the last day's records by default")
	assert.Equal(t, 90.0, *hist.History[0].AutonomyH, "newest first")
	require.Equal(t, http.StatusOK, e.get(t, "/v1/fleet/"+station+"/history?limit=1&from="+
		now.Add(-90*time.Second).Format(time.RFC3339), &hist))
	require.Len(t, hist.History, 1)

	for _, c := range []struct {
		query, field string
		status       int
	}{
		{"/v1/fleet?station=x", "station", http.StatusBadRequest},
		{"/v1/fleet/" + station + "/history?limit=0", "limit", http.StatusBadRequest},
		{"/v1/fleet/" + station + "/history?from=yesterday", "from", http.StatusBadRequest},
		{"/v1/fleet/" + station + "/history?from=2026-07-02T00:00:00Z&to=2026-07-01T00:00:00Z", "to", http.StatusBadRequest},
		{"/v1/fleet/MH%2FA/history", "id", http.StatusBadRequest},
		{"/v1/fleet/MH-Z-009/history", "id", http.StatusNotFound},
	} {
		var werr wire.Error
		assert.Equal(t, c.status, e.get(t, c.query, &werr), c.query)
		assert.Equal(t, c.field, werr.Field, c.query)
		assert.NotEmpty(t, werr.Error)
	}
}

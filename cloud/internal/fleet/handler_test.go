package fleet_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/fleet"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/shared/wire"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var now = time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)

func get(t *testing.T, url string, into any) int {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.NoError(t, json.Unmarshal(body, into), "%s", body)
	return resp.StatusCode
}

func health(at time.Time, version string, autonomy float64) *wire.Health {
	return &wire.Health{Time: at, Version: version, UptimeS: 60, ClockSynced: true,
		Buffer:  wire.HealthBuffer{UsedBytes: 1 << 20, MaxBytes: 64 << 20, AutonomyH: &autonomy},
		Probes:  wire.HealthProbes{Total: 2, Online: 1, Failing: []wire.FailingProbe{{Name: "do-1", Reason: "offline"}}},
		Backlog: 5}
}

// GET /v1/fleet and the history over a real database.
func TestFleetEndpoints(t *testing.T) {
	st, _ := storetest.Open(t, store.Options{Now: func() time.Time { return now }})
	for _, id := range []string{"MH-A-001", "MH-B-001", "MH-C-001"} {
		storetest.AddStation(t, st, id)
	}
	for i, rec := range []struct {
		station string
		h       *wire.Health
	}{
		{"MH-A-001", health(now.Add(-2*time.Minute), "v1.4.0", 100)},
		{"MH-A-001", health(now.Add(-time.Minute), "v1.4.0", 90)},
		{"MH-B-001", health(now.Add(-time.Minute), "v1.3.2", 12)},
	} {
		b := storetest.Batch(rec.station, nil)
		b.Health = rec.h
		_, err := st.Ingest(t.Context(), rec.station, b)
		require.NoError(t, err, "record %d", i)
	}
	mux := http.NewServeMux()
	fleet.New(st, fleet.Options{Now: func() time.Time { return now }}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	var view struct {
		NewestVersion string                       `json:"newest_version"`
		Stations      []map[string]json.RawMessage `json:"stations"`
	}
	require.Equal(t, http.StatusOK, get(t, srv.URL+"/v1/fleet", &view))
	assert.Equal(t, "v1.4.0", view.NewestVersion)
	require.Len(t, view.Stations, 3)
	for _, s := range view.Stations {
		for _, k := range []string{"id", "last_seen", "version", "uptime_s", "clock_synced", "buffer", "backlog",
			"probes", "calibration_due", "version_lags", "autonomy_low"} {
			assert.Contains(t, s, k)
		}
	}
	assert.JSONEq(t, `"MH-B-001"`, string(view.Stations[1]["id"]))
	assert.JSONEq(t, `true`, string(view.Stations[1]["version_lags"]))
	assert.JSONEq(t, `true`, string(view.Stations[1]["autonomy_low"]))
	assert.JSONEq(t, `{"total":2,"online":1,"failing":[{"name":"do-1","reason":"offline"}]}`, string(view.Stations[1]["probes"]))
	assert.JSONEq(t, `null`, string(view.Stations[2]["version"]), "a station that never reported")
	assert.JSONEq(t, `[]`, string(view.Stations[2]["calibration_due"]))

	var hist struct {
		Station string              `json:"station"`
		History []store.HealthPoint `json:"history"`
	}
	require.Equal(t, http.StatusOK, get(t, srv.URL+"/v1/fleet/MH-A-001/history", &hist))
	require.Len(t, hist.History, 2)
	assert.Equal(t, 90.0, *hist.History[0].AutonomyH, "newest first")
	require.Equal(t, http.StatusOK, get(t, srv.URL+"/v1/fleet/MH-A-001/history?limit=1&from="+
		now.Add(-90*time.Second).Format(time.RFC3339), &hist))
	require.Len(t, hist.History, 1)

	for _, c := range []struct {
		query, field string
		status       int
	}{
		{"/v1/fleet/MH-A-001/history?limit=0", "limit", http.StatusBadRequest},
		{"/v1/fleet/MH-A-001/history?limit=99999999", "limit", http.StatusBadRequest},
		{"/v1/fleet/MH-A-001/history?from=yesterday", "from", http.StatusBadRequest},
		{"/v1/fleet/MH-A-001/history?from=2026-07-02T00:00:00Z&to=2026-07-01T00:00:00Z", "from", http.StatusBadRequest},
		{"/v1/fleet/MH%2FA/history", "id", http.StatusBadRequest},
		{"/v1/fleet/MH-Z-009/history", "id", http.StatusNotFound},
	} {
		var e wire.Error
		assert.Equal(t, c.status, get(t, srv.URL+c.query, &e), c.query)
		assert.Equal(t, c.field, e.Field, c.query)
		assert.NotEmpty(t, e.Error)
	}
}

package store_test

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/internal/testclock"
	"github.com/purehealth/purehealth/shared/wire"
)

// healthRecord is a station's health record taken at at.
func healthRecord(at time.Time, version string, autonomy float64) *wire.Health {
	return &wire.Health{
		Time: at.UTC().Truncate(time.Microsecond), Version: version, UptimeS: 7200, ClockSynced: true,
		Buffer:  wire.HealthBuffer{UsedBytes: 3 << 20, MaxBytes: 512 << 20, AutonomyH: &autonomy},
		Backlog: 42,
		Probes: wire.HealthProbes{Total: 3, Online: 2,
			Failing: []wire.FailingProbe{{Name: "do-1", Reason: "offline: no reading for 10m0s (expected every 1m0s)"}}},
		CalibrationDue: []wire.CalibrationDue{{Probe: "ph-1", Param: "ph", DueAt: at.Add(72 * time.Hour).UTC().Truncate(time.Second)}},
		Broker:         wire.HealthBroker{Clients: 2, Rejects: 1},
	}
}

// A station's health records: the newest by its own time is kept whole (an older one
// arriving late changes nothing and announces nothing), every one is in the history
// once, each new newest is announced by a status event carrying the station's fleet
// entry, the fleet lists every station (one without a record with null fields), and
// the history expires by retention.health while the newest stays.
func testFleetHealth(t *testing.T, l layout) {
	clk := testclock.New(time.Now().UTC())
	s, url := l.open(t, store.Options{Now: clk.Now})
	storetest.AddStation(t, s, station)
	storetest.AddStation(t, s, "MH-AAA-000") // never sends one
	ctx := t.Context()
	t1 := clk.Now().Add(-2 * time.Minute)
	t2 := t1.Add(time.Minute)

	send := func(h *wire.Health, readings ...wire.Reading) store.IngestResult {
		t.Helper()
		b := storetest.Batch(station, readings)
		b.Health = h
		res, err := s.Ingest(ctx, station, b)
		require.NoError(t, err)
		return res
	}
	assert.True(t, send(healthRecord(t1, "v1.3.0", 40)).NewHealth)
	assert.True(t, send(healthRecord(t2, "v1.4.0", 20), storetest.Readings(1, 2, t2, time.Second)...).NewHealth,
		"a record rides with readings too")
	assert.False(t, send(healthRecord(t1, "v1.3.0", 40)).NewHealth, "an older record arriving late")

	fleet, err := s.Fleet(ctx)
	require.NoError(t, err)
	require.Len(t, fleet, 2)
	none, got := fleet[0], fleet[1]
	assert.Equal(t, "MH-AAA-000", none.ID)
	assert.Nil(t, none.Version)
	assert.Nil(t, none.Buffer)
	assert.Nil(t, none.LastSeen)
	assert.Equal(t, []wire.CalibrationDue{}, none.CalibrationDue)

	assert.Equal(t, station, got.ID)
	assert.Equal(t, "Station "+station, got.Name)
	require.NotNil(t, got.Version)
	assert.Equal(t, "v1.4.0", *got.Version, "the newest record by its time")
	assert.Equal(t, t2.Truncate(time.Microsecond), *got.HealthAt)
	assert.Equal(t, 20.0, *got.Buffer.AutonomyH)
	assert.Equal(t, int64(42), *got.Backlog)
	assert.Equal(t, 3, got.Probes.Total)
	assert.Equal(t, "do-1", got.Probes.Failing[0].Name)
	assert.Equal(t, "ph-1", got.CalibrationDue[0].Probe)
	require.NotNil(t, got.LastSeen)
	assert.True(t, got.Online)

	// The contract's keys, and null for what is unknown.
	raw, err := json.Marshal(fleet)
	require.NoError(t, err)
	var keyed []map[string]any
	require.NoError(t, json.Unmarshal(raw, &keyed))
	for _, k := range []string{"id", "last_seen", "version", "uptime_s", "clock_synced", "buffer", "backlog", "probes", "calibration_due"} {
		assert.Contains(t, keyed[0], k)
		assert.Contains(t, keyed[1], k)
	}
	assert.ElementsMatch(t, []string{"used_bytes", "max_bytes", "autonomy_h"}, slices.Collect(maps.Keys(keyed[1]["buffer"].(map[string]any))))
	assert.ElementsMatch(t, []string{"total", "online", "failing"}, slices.Collect(maps.Keys(keyed[1]["probes"].(map[string]any))))

	evs, err := s.Events(ctx, store.EventQuery{Limit: 100})
	require.NoError(t, err)
	var health []store.FleetHealth
	for _, e := range evs {
		var d store.FleetHealth
		if e.Type == store.EventStatus && json.Unmarshal(e.Data, &d) == nil && d.Health.ID != "" {
			health = append(health, d)
		}
	}
	require.Len(t, health, 2, "one event per new newest record, none for the late one")
	assert.Equal(t, "v1.3.0", *health[0].Health.Version)
	assert.Equal(t, "v1.4.0", *health[1].Health.Version)
	assert.Equal(t, "Station "+station, health[1].Health.Name)

	hist, err := s.HealthHistory(ctx, station, t1.Add(-time.Hour), t2.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, hist, 2, "each record once")
	assert.Equal(t, "v1.4.0", hist[0].Version, "newest first")
	assert.Equal(t, []string{"do-1"}, hist[0].Failing)
	assert.Equal(t, 40.0, *hist[1].AutonomyH)
	_, err = s.HealthHistory(ctx, "MH-NONE-9", t1, t2, 10)
	assert.ErrorIs(t, err, store.ErrNotFound)

	clk.Advance(31 * 24 * time.Hour)
	_, err = s.Maintain(ctx)
	require.NoError(t, err)
	assert.Zero(t, count(t, url, `SELECT count(*) FROM station_health_history`), "the history expired")
	assert.Equal(t, int64(1), count(t, url, `SELECT count(*) FROM station_health`), "the newest stays")
}

// A health record the cloud cannot hold is refused with the field it names, and
// nothing of its batch is stored.
func testFleetHealthRefused(t *testing.T, l layout) {
	s, url := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	h := healthRecord(time.Now(), "v1\x00", 10)
	b := storetest.Batch(station, storetest.Readings(1, 2, time.Now().Add(-time.Minute), time.Second))
	b.Health = h
	_, err := s.Ingest(t.Context(), station, b)
	fe, ok := errors.AsType[*wire.FieldError](err)
	require.True(t, ok, "want a field error, got %v", err)
	assert.Equal(t, "health.version", fe.Field)
	assert.Zero(t, count(t, url, `SELECT count(*) FROM measurements`))
	assert.Zero(t, count(t, url, `SELECT count(*) FROM station_health`))
}

package fusedwqi_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/fusedwqi"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/cloud/internal/upstream/upstreamtest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
)

func TestMain(m *testing.M) {
	os.Exit(upstreamtest.Wrap(func() int { return pgtest.Main(m) }))
}

const station = "MH-KOLHAPUR-001"

// A station with DO and pH probes: its own index is partial. A lab's BOD and the
// government programme's FC, arriving days apart, make the fused one complete; when the
// lab value ages out the index turns partial again and says so.
func TestFusedWQIFollowsItsInputs(t *testing.T) {
	now := time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	st, _ := storetest.Open(t, store.Options{Now: clock})
	storetest.AddStation(t, st, station)
	u := fusedwqi.New(st, fusedwqi.Options{Now: clock})
	ctx := t.Context()

	_, err := st.Ingest(ctx, station, storetest.Batch(station, []wire.Reading{
		{Seq: 1, Time: now.Add(-5 * time.Minute), Sensor: "do-1", Param: "do", Value: 6.8, Unit: "mg/L", Quality: "good", Source: "sensor"},
		{Seq: 2, Time: now.Add(-5 * time.Minute), Sensor: "ph-1", Param: "ph", Value: 7.6, Unit: "pH", Quality: "good", Source: "sensor"},
	}))
	require.NoError(t, err)
	require.NoError(t, u.UpdateAll(ctx))
	w, err := st.LatestFusedWQI(ctx, station)
	require.NoError(t, err)
	require.NotNil(t, w)
	assert.True(t, w.Result.Partial)
	assert.ElementsMatch(t, []telemetry.Param{telemetry.FC, telemetry.BOD}, w.Result.Missing)

	_, err = st.StoreSamples(ctx, "lab-kolhapur", []store.Sample{{Station: station, Param: telemetry.BOD, Value: 2.4,
		Unit: "mg/L", Time: now.Add(-10 * 24 * time.Hour), Quality: telemetry.Good, SampleID: "K-77", Lab: "MPCB Kolhapur"}})
	require.NoError(t, err)
	sink := fusedwqi.Sink{Store: st, Updater: u}
	info, _ := telemetry.Info(telemetry.FC)
	stored, err := sink.StoreUpstream(ctx, []upstream.Reading{{
		Reading: telemetry.Reading{Station: station, Sensor: "cpcb-nwmp", Param: telemetry.FC, Value: 1100, Unit: info.Unit,
			Time: now.AddDate(0, 0, -40), Source: telemetry.SourceAPI, Quality: telemetry.Good},
		Origin: upstream.Origin{Source: "cpcb-nwmp", RecordID: "1153-2025-10"},
	}})
	require.NoError(t, err)
	assert.Equal(t, 1, stored.New)

	w, err = st.LatestFusedWQI(ctx, station)
	require.NoError(t, err)
	require.NotNil(t, w)
	assert.False(t, w.Result.Partial, "the sink updated the index: complete from three sources")
	got := map[string]string{}
	for p, in := range w.Inputs {
		got[p] = in.Source
	}
	assert.Equal(t, map[string]string{"do": "sensor", "ph": "sensor", "bod": "manual", "fc": "api"}, got)
	assert.Equal(t, (40 * 24 * time.Hour).Seconds(), w.Inputs["fc"].AgeSeconds)

	// Nothing changed: nothing stored.
	_, changed, err := u.Update(ctx, station)
	require.NoError(t, err)
	assert.False(t, changed)

	// 22 days later the lab's BOD (31 days old) is past manual's 744 h; the probes are silent too.
	now = now.Add(22 * 24 * time.Hour)
	require.NoError(t, u.UpdateAll(ctx))
	w, err = st.LatestFusedWQI(ctx, station)
	require.NoError(t, err)
	require.NotNil(t, w)
	assert.Equal(t, []telemetry.Param{telemetry.DO, telemetry.PH, telemetry.BOD}, w.Result.Missing)
	assert.Equal(t, "api", w.Inputs["fc"].Source)

	evs, err := st.Events(ctx, store.EventQuery{Limit: 100})
	require.NoError(t, err)
	var fused []map[string]any
	for _, e := range evs {
		if e.Type == store.EventWQI {
			var m map[string]any
			require.NoError(t, json.Unmarshal(e.Data, &m))
			fused = append(fused, m)
		}
	}
	require.Len(t, fused, 3, "partial, complete, aged: one live event each")
	for _, m := range fused {
		assert.Equal(t, "fused", m["source"])
		assert.Contains(t, m, "inputs")
	}
}

func count(t *testing.T, url, sql string, args ...any) int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int64
	require.NoError(t, conn.QueryRow(t.Context(), sql, args...).Scan(&n), sql)
	return n
}

package fusedwqi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/apicall"
	"github.com/purehealth/purehealth/cloud/internal/fusedwqi"
	"github.com/purehealth/purehealth/cloud/internal/govdata"
	"github.com/purehealth/purehealth/cloud/internal/satellite"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/cloud/internal/upstream/upstreamtest"
	"github.com/purehealth/purehealth/shared/telemetry"
)

var demoStations = map[string]string{"2683": "MH-PUNE-001", "1190": "MH-NASHIK-001", "1152": "MH-SANGLI-001",
	"1153": "MH-KOLHAPUR-001"}

// Government data from `ph-sim ogd` through the OGD client and the collector into
// PostgreSQL: a republished value becomes a revision, the fused WQI of every station is
// updated, and a restarted collector resumes from the stored cursor.
func TestOGDIntoTheDatabase(t *testing.T) {
	sim := upstreamtest.StartSim(t, "ogd", 1, "--api-key", "demo-key", "--months", "12", "--revise-after", "-1s")
	st, url := storetest.Open(t, store.Options{})
	for _, id := range demoStations {
		storetest.AddStation(t, st, id)
	}
	base, resource, ok := strings.Cut(sim.URLs[0], "/resource/")
	require.True(t, ok)
	o := govdata.Defaults(govdata.OGD)
	o.BaseURL, o.ResourceID, o.APIKey = base, resource, "demo-key"
	o.HTTP = apicall.Options{Rate: -1, Attempts: 3, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
	o.Mapping = govdata.Mapping{
		StationField: "station_code", TimeField: "sampling_date", TimeFormat: "02-01-2006",
		Params: map[string]string{"ph": "ph", "do": "dissolved_oxygen", "bod": "bod", "fc": "fecal_coliform",
			"temp": "temperature", "conductivity": "conductivity"},
		Units:    map[string]string{"conductivity": "µmhos/cm"},
		Stations: demoStations,
	}
	client, err := govdata.New(o, nil)
	require.NoError(t, err)
	u := fusedwqi.New(st, fusedwqi.Options{})
	c, err := upstream.NewCollector("cpcb-nwmp", client, fusedwqi.Sink{Store: st, Updater: u}, st, nil, nil)
	require.NoError(t, err)
	ctx := t.Context()

	require.NoError(t, c.Collect(ctx))
	first := c.Status()
	require.Positive(t, first.New)
	stored := count(t, url, `SELECT count(*) FROM external_readings WHERE origin = 'cpcb-nwmp' AND source = 'api'`)
	assert.EqualValues(t, first.New, stored)
	cursor, err := st.Cursor(ctx, "cpcb-nwmp")
	require.NoError(t, err)
	assert.NotEmpty(t, cursor, "the cursor is in the database")

	// CPCB republishes the resource with one corrected value. The simulator stamps a
	// publication to the second, like the gateway: a republication within the second it
	// started in would carry the stamp the first round saw, so wait for the next one.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	resp, err := http.Post(base+"/_sim/revise", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300)
	c2, err := upstream.NewCollector("cpcb-nwmp", client, fusedwqi.Sink{Store: st, Updater: u}, st, nil, nil)
	require.NoError(t, err)
	require.NoError(t, c2.Collect(ctx), "a new collector, as after a restart")
	assert.EqualValues(t, 1, c2.Status().Revised, "%+v", c2.Status().LastRound)
	revised, err := st.Readings(ctx, store.ReadingsQuery{Station: "MH-PUNE-001", Param: "bod", Limit: 1000, Revisions: true})
	require.NoError(t, err)
	superseded := 0
	for _, r := range revised {
		if r.Current != nil && !*r.Current {
			superseded++
			assert.Equal(t, "cpcb-nwmp", r.Origin)
			assert.NotEmpty(t, r.RecordID)
		}
	}
	assert.Equal(t, 1, superseded, "the old value is kept beside its revision")
	assert.EqualValues(t, stored+1, count(t, url, `SELECT count(*) FROM external_readings`))
}

// Satellite estimates from `ph-sim stats` with the cache in the database: a restarted
// service (a new client over a reopened store) asks the API for nothing it asked before
// except the week still open, and stores nothing twice.
func TestSatelliteCacheInTheDatabase(t *testing.T) {
	sim := upstreamtest.StartSim(t, "stats", 2, "--client-id", "pure-health", "--client-secret", "s3", "--seed", "2")
	_, url := storetest.Open(t, store.Options{})
	now := time.Date(2025, 3, 13, 12, 0, 0, 0, time.UTC)
	areas := map[string]satellite.Area{"MH-PUNE-001": {Lat: 18.5293, Lon: 73.8627, RadiusM: 150}}
	round := func() (satellite.CacheStats, upstream.Status) {
		st := storetest.OpenURL(t, url, store.Options{})
		defer st.Close()
		if _, err := st.Station(t.Context(), "MH-PUNE-001"); err != nil {
			storetest.AddStation(t, st, "MH-PUNE-001")
		}
		client, err := satellite.New(satellite.Options{
			BaseURL: sim.URLs[0], TokenURL: sim.URLs[1], ClientID: "pure-health", ClientSecret: "s3",
			Areas: areas, Lookback: 4 * 7 * 24 * time.Hour, Cache: st.SatelliteCache(),
			HTTP: apicall.Options{Rate: -1, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond},
			Now:  func() time.Time { return now },
		}, nil)
		require.NoError(t, err)
		c, err := upstream.NewCollector("copernicus", client, st, st, nil, func() time.Time { return now })
		require.NoError(t, err)
		require.NoError(t, c.Collect(t.Context()))
		return client.CacheStats(), c.Status()
	}
	cache1, st1 := round()
	require.Positive(t, cache1.Puts)
	require.Positive(t, st1.New)
	rows := count(t, url, `SELECT count(*) FROM external_readings WHERE source = 'satellite'`)
	assert.EqualValues(t, st1.New, rows)
	assert.Positive(t, count(t, url, `SELECT count(*) FROM external_readings WHERE source = 'satellite' AND pixels > 0 AND scene_date IS NOT NULL`))

	// A restart resumes from the cursor in the database: settled weeks are not asked for.
	cache2, st2 := round()
	assert.Zero(t, cache2.Puts+cache2.Hits+cache2.Misses-cache2.Misses, "%+v", cache2)
	assert.Zero(t, st2.New)
	assert.Zero(t, st2.Revised)

	// Even without its cursor, every settled week comes from the cache in the database.
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), `DELETE FROM upstream_cursors`)
	require.NoError(t, err)
	require.NoError(t, conn.Close(t.Context()))
	cache3, st3 := round()
	assert.Equal(t, cache1.Puts, cache3.Hits)
	assert.Zero(t, cache3.Puts)
	assert.Zero(t, st3.New, "nothing is stored twice")
	assert.Zero(t, st3.Revised)
	assert.EqualValues(t, rows, count(t, url, `SELECT count(*) FROM external_readings`))
	for _, p := range []telemetry.Param{telemetry.Turbidity, telemetry.Chla, telemetry.Temp} {
		assert.Positive(t, count(t, url, `SELECT count(*) FROM external_readings WHERE param = $1`, string(p)), p)
	}
}

package store_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/fusion"
	"github.com/purehealth/purehealth/cloud/internal/satellite"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
	"github.com/purehealth/purehealth/shared/wqi"
)

// nwmp is a monthly value of CPCB's river programme as the collector hands it over.
func nwmp(p telemetry.Param, v float64, at time.Time) upstream.Reading {
	info, _ := telemetry.Info(p)
	return upstream.Reading{
		Reading: telemetry.Reading{Station: station, Sensor: "cpcb-nwmp", Param: p, Value: v, Unit: info.Unit,
			Time: at, Source: telemetry.SourceAPI, Quality: telemetry.Good},
		Origin: upstream.Origin{Source: "cpcb-nwmp", RecordID: "rec-" + at.Format("200601") + "-" + string(p), StationCode: "1153"},
	}
}

func testUpstreamRevisionsKeepHistory(t *testing.T, l layout) {
	now := time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)
	s, url := l.open(t, store.Options{Now: func() time.Time { return now }})
	storetest.AddStation(t, s, station)
	ctx := t.Context()
	june := time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC) // years old, as NWMP publishes

	st, err := s.StoreUpstream(ctx, []upstream.Reading{nwmp(telemetry.BOD, 18.5, june), nwmp(telemetry.FC, 1.2e5, june)})
	require.NoError(t, err)
	assert.Equal(t, upstream.Stored{New: 2}, st)

	// Republished: BOD corrected, FC the same.
	res, err := s.StoreUpstreamReadings(ctx, []upstream.Reading{nwmp(telemetry.BOD, 21, june), nwmp(telemetry.FC, 1.2e5, june)})
	require.NoError(t, err)
	assert.Equal(t, upstream.Stored{Revised: 1, Unchanged: 1}, res.Stored)
	assert.Equal(t, []string{station}, res.Stations)

	// Unchanged again: nothing is added, no station changed.
	res, err = s.StoreUpstreamReadings(ctx, []upstream.Reading{nwmp(telemetry.BOD, 21, june)})
	require.NoError(t, err)
	assert.Equal(t, upstream.Stored{Unchanged: 1}, res.Stored)
	assert.Empty(t, res.Stations)
	assert.EqualValues(t, 3, count(t, url, `SELECT count(*) FROM external_readings`))

	current, err := s.Readings(ctx, store.ReadingsQuery{Station: station, Limit: 10})
	require.NoError(t, err)
	require.Len(t, current, 2, "current values only")
	byParam := map[string]store.Reading{}
	for _, r := range current {
		byParam[r.Param] = r
	}
	bod := byParam["bod"]
	assert.Equal(t, 21.0, bod.Value)
	assert.Equal(t, "api", bod.Source)
	assert.Equal(t, "cpcb-nwmp", bod.Origin)
	assert.Equal(t, "rec-202106-bod", bod.RecordID)
	assert.Equal(t, "1153", bod.StationCode)
	assert.Equal(t, 2, bod.Revision)
	require.NotNil(t, bod.Current)
	assert.True(t, *bod.Current)
	assert.Equal(t, june, bod.Time)

	all, err := s.Readings(ctx, store.ReadingsQuery{Station: station, Param: "bod", Limit: 10, Revisions: true})
	require.NoError(t, err)
	require.Len(t, all, 2, "both revisions")
	assert.Equal(t, []float64{21, 18.5}, []float64{all[0].Value, all[1].Value}, "newest revision first")
	assert.False(t, *all[1].Current)
	require.NotNil(t, all[1].SupersededAt)
	assert.Equal(t, now, *all[1].SupersededAt)

	// JSON carries the provenance.
	b, err := json.Marshal(bod)
	require.NoError(t, err)
	for _, want := range []string{`"origin":"cpcb-nwmp"`, `"record_id":"rec-202106-bod"`, `"station_code":"1153"`,
		`"revision":2`, `"current":true`, `"seq":0`} {
		assert.Contains(t, string(b), want)
	}

	// A station nobody registered: the whole call fails and nothing is stored.
	other := nwmp(telemetry.DO, 6, june)
	other.Station = "MH-NOWHERE-009"
	_, err = s.StoreUpstream(ctx, []upstream.Reading{nwmp(telemetry.PH, 7.9, june), other})
	require.ErrorIs(t, err, store.ErrNotFound)
	assert.ErrorContains(t, err, "MH-NOWHERE-009")
	assert.EqualValues(t, 3, count(t, url, `SELECT count(*) FROM external_readings`))
}

func testSatelliteProvenance(t *testing.T, l layout) {
	s, _ := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	week := time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)
	r := upstream.Reading{
		Reading: telemetry.Reading{Station: station, Sensor: "sentinel-2-l2a", Param: telemetry.Turbidity, Value: 14.2,
			Unit: "NTU", Time: week, Source: telemetry.SourceSatellite, Quality: telemetry.Good},
		Origin: upstream.Origin{Source: "copernicus", Collection: "sentinel-2-l2a", Scene: week.Add(3 * 24 * time.Hour),
			Scenes: 2, Pixels: 412},
	}
	_, err := s.StoreUpstream(t.Context(), []upstream.Reading{r})
	require.NoError(t, err)
	got, err := s.Readings(t.Context(), store.ReadingsQuery{Station: station, Limit: 5})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "satellite", got[0].Source)
	assert.Equal(t, "sentinel-2-l2a", got[0].Collection)
	require.NotNil(t, got[0].SceneDate)
	assert.Equal(t, week.Add(3*24*time.Hour), *got[0].SceneDate)
	assert.Equal(t, 2, got[0].Scenes)
	assert.Equal(t, 412, got[0].Pixels)
}

func testSamplesAreIdempotent(t *testing.T, l layout) {
	s, url := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	ctx := t.Context()
	at := time.Date(2025, 11, 1, 9, 30, 0, 0, time.UTC)
	withID := store.Sample{Station: station, Param: telemetry.BOD, Value: 4.2, Unit: "mg/L", Time: at,
		Quality: telemetry.Good, SampleID: "PUN-2025-1101-03", Lab: "MPCB Pune", Method: "APHA 5210 B"}
	noID := store.Sample{Station: station, Param: telemetry.FC, Value: 2400, Unit: "MPN/100mL", Time: at,
		Quality: telemetry.Good, Lab: "MPCB Pune"}

	res, err := s.StoreSamples(ctx, "lab-pune", []store.Sample{withID, noID})
	require.NoError(t, err)
	assert.Equal(t, upstream.Stored{New: 2}, res.Stored)

	res, err = s.StoreSamples(ctx, "lab-pune", []store.Sample{withID, noID})
	require.NoError(t, err)
	assert.Equal(t, upstream.Stored{Unchanged: 2}, res.Stored, "the same samples again add nothing")

	// The same sample id with a corrected time is the same sample, corrected.
	moved := withID
	moved.Time = at.Add(time.Hour)
	res, err = s.StoreSamples(ctx, "lab-pune", []store.Sample{moved})
	require.NoError(t, err)
	assert.Equal(t, upstream.Stored{Revised: 1}, res.Stored)
	// Without a sample id, another time is another sample.
	later := noID
	later.Time = at.Add(24 * time.Hour)
	res, err = s.StoreSamples(ctx, "lab-pune", []store.Sample{later})
	require.NoError(t, err)
	assert.Equal(t, upstream.Stored{New: 1}, res.Stored)
	assert.EqualValues(t, 4, count(t, url, `SELECT count(*) FROM external_readings`))
	assert.EqualValues(t, 3, count(t, url, `SELECT count(*) FROM external_readings WHERE current`))
	assert.EqualValues(t, 4, count(t, url, `SELECT count(*) FROM external_readings WHERE submitted_by = 'lab-pune' AND source = 'manual'`))

	got, err := s.Readings(ctx, store.ReadingsQuery{Station: station, Param: "bod", Limit: 5})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "PUN-2025-1101-03", got[0].SampleID)
	assert.Equal(t, "MPCB Pune", got[0].Lab)
	assert.Equal(t, "MPCB Pune", got[0].Sensor)
	assert.Equal(t, "APHA 5210 B", got[0].Method)
	assert.Equal(t, store.OriginManual, got[0].Origin)
	assert.Equal(t, at.Add(time.Hour), got[0].Time)

	// All or none: an unknown station fails the call, naming it.
	bad := noID
	bad.Station = "MH-NOWHERE-009"
	_, err = s.StoreSamples(ctx, "lab-pune", []store.Sample{{Station: station, Param: telemetry.PH, Value: 7, Unit: "pH",
		Time: at, Quality: telemetry.Good}, bad})
	var unknown *store.UnknownStationError
	require.ErrorAs(t, err, &unknown)
	assert.Equal(t, []string{"MH-NOWHERE-009"}, unknown.Stations)
	assert.EqualValues(t, 4, count(t, url, `SELECT count(*) FROM external_readings`))
}

func testReadingsMergeStationAndExternal(t *testing.T, l layout) {
	s, url := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	ctx := t.Context()
	start := time.Date(2025, 11, 13, 0, 0, 0, 0, time.UTC)
	rs := storetest.Readings(1, 40, start, time.Minute)
	_, err := s.Ingest(ctx, station, storetest.Batch(station, rs))
	require.NoError(t, err)
	var ups []upstream.Reading
	for i := range 15 {
		// Some at exactly a station reading's time, to exercise the tie order.
		ups = append(ups, nwmp(telemetry.BOD, float64(i), start.Add(time.Duration(i*3)*time.Minute)))
		ups[i].Origin.RecordID = "r" + itoa(i)
	}
	_, err = s.StoreUpstream(ctx, ups)
	require.NoError(t, err)

	// Fresh statistics: the plans of a busy table, not of an empty one, are walked.
	execSQL(t, url, "ANALYZE")
	walk := func(oldest bool, limit int) []store.Reading {
		var out []store.Reading
		q := store.ReadingsQuery{Station: station, Limit: limit, Oldest: oldest}
		for range 100 {
			page, err := s.Readings(ctx, q)
			require.NoError(t, err)
			out = append(out, page...)
			if len(page) < limit {
				return out
			}
			p := page[len(page)-1].Position()
			q.After = &p
		}
		t.Fatal("the walk does not end")
		return nil
	}
	newest := walk(false, 7)
	require.Len(t, newest, 55, "every reading once")
	assert.True(t, slices.IsSortedFunc(newest, func(a, b store.Reading) int { return b.Time.Compare(a.Time) }), "newest first")
	oldest := walk(true, 6)
	slices.Reverse(oldest)
	assert.Equal(t, newest, oldest, "both orders visit the same rows")

	var exported []store.Reading
	require.NoError(t, s.ExportReadings(ctx, store.ReadingsQuery{Station: station, Oldest: true}, func(r store.Reading) error {
		exported = append(exported, r)
		return nil
	}))
	slices.Reverse(exported)
	assert.Equal(t, newest, exported)
}

func testExternalReadingsOutliveRawRetention(t *testing.T, l layout) {
	now := time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)
	s, url := l.open(t, store.Options{Now: func() time.Time { return now },
		SourceRetention: map[string]time.Duration{"imd": 365 * 24 * time.Hour}})
	storetest.AddStation(t, s, station)
	ctx := t.Context()
	old := now.AddDate(-5, 0, 0)
	rain := nwmp(telemetry.Rainfall, 12, old)
	rain.Origin.Source = "imd"
	_, err := s.StoreUpstream(ctx, []upstream.Reading{nwmp(telemetry.BOD, 3, old), rain,
		nwmp(telemetry.BOD, 4, now.AddDate(-11, 0, 0))})
	require.NoError(t, err)
	_, err = s.Maintain(ctx)
	require.NoError(t, err)
	// The five-year-old NWMP value stays (default ten years); IMD's is past its year; the
	// eleven-year-old one is past the default.
	assert.EqualValues(t, 1, count(t, url, `SELECT count(*) FROM external_readings`))
	assert.EqualValues(t, 1, count(t, url, `SELECT count(*) FROM external_readings WHERE origin = 'cpcb-nwmp' AND time = $1`, old))
}

func testCursorsAndCacheSurviveRestart(t *testing.T, l layout) {
	s, url := l.open(t, store.Options{})
	ctx := t.Context()
	c, err := s.Cursor(ctx, "cpcb-nwmp")
	require.NoError(t, err)
	assert.Empty(t, c)
	require.NoError(t, s.SetCursor(ctx, "cpcb-nwmp", "2025-06-01T00:00:00Z"))
	require.NoError(t, s.SetCursor(ctx, "cpcb-nwmp", "2025-07-01T00:00:00Z"))
	k := satellite.CacheKey{Station: station, Collection: "sentinel-2-l2a", From: time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC),
		To: time.Date(2025, 3, 17, 0, 0, 0, 0, time.UTC), Digest: "0123abcd"}
	_, ok, err := s.SatelliteCache().Get(ctx, k)
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, s.SatelliteCache().Put(ctx, k, []byte(`{"status":"OK"}`)))
	assert.Error(t, s.SetCursor(ctx, "x", "nul\x00"), "text the database cannot hold")
	s.Close()

	s2 := storetest.OpenURL(t, url, store.Options{})
	c, err = s2.Cursor(ctx, "cpcb-nwmp")
	require.NoError(t, err)
	assert.Equal(t, "2025-07-01T00:00:00Z", c)
	body, ok, err := s2.SatelliteCache().Get(ctx, k)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.JSONEq(t, `{"status":"OK"}`, string(body))
	k.Digest = "ffff"
	_, ok, err = s2.SatelliteCache().Get(ctx, k)
	require.NoError(t, err)
	assert.False(t, ok, "another request digest misses")
}

func testTokensWithRoles(t *testing.T, l layout) {
	s, _ := l.open(t, store.Options{})
	ctx := t.Context()
	stationToken := storetest.AddStation(t, s, station)
	lab, err := s.AddToken(ctx, "lab-pune", store.RoleLab)
	require.NoError(t, err)
	viewer, err := s.AddToken(ctx, "wall-screen", store.RoleViewer)
	require.NoError(t, err)
	_, err = s.AddToken(ctx, "lab-pune", store.RoleOperator)
	assert.ErrorIs(t, err, store.ErrExists)
	_, err = s.AddToken(ctx, "root", store.RoleStation)
	assert.ErrorIs(t, err, store.ErrInvalid, "station tokens come with stations")
	_, err = s.AddToken(ctx, "bad name", store.RoleLab)
	assert.ErrorIs(t, err, store.ErrInvalid)

	for _, tc := range []struct {
		token string
		want  store.Principal
	}{
		{lab, store.Principal{Name: "lab-pune", Role: store.RoleLab}},
		{viewer, store.Principal{Name: "wall-screen", Role: store.RoleViewer}},
		{stationToken, store.Principal{Name: station, Role: store.RoleStation, Station: station}},
	} {
		p, err := s.AuthenticateToken(ctx, tc.token)
		require.NoError(t, err)
		assert.Equal(t, tc.want, p)
	}
	_, err = s.AuthenticateToken(ctx, "pht_nobody")
	assert.ErrorIs(t, err, store.ErrNotFound)

	list, err := s.Tokens(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, "lab-pune", list[0].Name)
	assert.Equal(t, store.RoleLab, list[0].Role)

	require.NoError(t, s.RevokeToken(ctx, "lab-pune"))
	_, err = s.AuthenticateToken(ctx, lab)
	assert.ErrorIs(t, err, store.ErrNotFound, "a revoked token stops working at once")
	assert.ErrorIs(t, s.RevokeToken(ctx, "lab-pune"), store.ErrNotFound)
}

func testFusedWQIStoredWhenItChanges(t *testing.T, l layout) {
	now := time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)
	s, url := l.open(t, store.Options{Now: func() time.Time { return now }})
	storetest.AddStation(t, s, station)
	ctx := t.Context()
	// The station measures DO and pH; a lab gave BOD; the government programme FC.
	_, err := s.Ingest(ctx, station, storetest.Batch(station, []wire.Reading{
		{Seq: 1, Time: now.Add(-10 * time.Minute), Sensor: "do-1", Param: "do", Value: 6.5, Unit: "mg/L", Quality: "good", Source: "sensor"},
		{Seq: 2, Time: now.Add(-10 * time.Minute), Sensor: "ph-1", Param: "ph", Value: 7.4, Unit: "pH", Quality: "good", Source: "sensor"},
	}))
	require.NoError(t, err)
	_, err = s.StoreSamples(ctx, "lab-pune", []store.Sample{{Station: station, Param: telemetry.BOD, Value: 2.1, Unit: "mg/L",
		Time: now.Add(-5 * 24 * time.Hour), Quality: telemetry.Good, Lab: "MPCB Pune"}})
	require.NoError(t, err)
	_, err = s.StoreUpstream(ctx, []upstream.Reading{nwmp(telemetry.FC, 900, now.AddDate(0, -1, 0))})
	require.NoError(t, err)

	latest, err := s.LatestValues(ctx, station)
	require.NoError(t, err)
	sources := map[string]string{}
	cands := make([]fusion.Candidate, 0, len(latest))
	for _, x := range latest {
		sources[x.Param] = x.Source
		cands = append(cands, fusion.Candidate{Param: x.Param, Source: x.Source, Time: x.Time, Value: x.Value,
			Unit: x.Unit, Quality: x.Quality, Sensor: x.Sensor, Origin: x.Origin})
	}
	assert.Equal(t, map[string]string{"do": "sensor", "ph": "sensor", "bod": "manual", "fc": "api"}, sources)

	w, err := fusion.ComputeWQI(fusion.Fuse(fusion.DefaultPolicy(), now, cands), now, wqi.BensonKrause, 1)
	require.NoError(t, err)
	assert.False(t, w.Result.Partial, "three sources make the index complete")
	stored, err := s.StoreFusedWQI(ctx, station, w)
	require.NoError(t, err)
	assert.True(t, stored)
	later := w
	later.Time = now.Add(time.Minute)
	stored, err = s.StoreFusedWQI(ctx, station, later)
	require.NoError(t, err)
	assert.False(t, stored, "the same index a minute later is not stored again")
	assert.EqualValues(t, 1, count(t, url, `SELECT count(*) FROM fused_wqi`))

	got, err := s.LatestFusedWQI(ctx, station)
	require.NoError(t, err)
	require.NotNil(t, got)
	assert.Equal(t, "manual", got.Inputs["bod"].Source)
	assert.Equal(t, "cpcb-nwmp", got.Inputs["fc"].Origin)
	assert.InDelta(t, w.Result.WQI, got.Result.WQI, 0.005)

	evs, err := s.Events(ctx, store.EventQuery{Limit: 100})
	require.NoError(t, err)
	var fused []store.Event
	for _, e := range evs {
		if e.Type == store.EventWQI {
			fused = append(fused, e)
		}
	}
	require.Len(t, fused, 1, "one live wqi event for the one stored result")
	want, err := json.Marshal(w)
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(fused[0].Data))
	assert.Contains(t, string(fused[0].Data), `"source":"fused"`)
}

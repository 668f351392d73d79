package queryapi_test

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/fusion"
	"github.com/purehealth/purehealth/cloud/internal/readingcsv"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
)

func nwmp(p telemetry.Param, v float64, at time.Time) upstream.Reading {
	info, _ := telemetry.Info(p)
	return upstream.Reading{
		Reading: telemetry.Reading{Station: station, Sensor: "cpcb-nwmp", Param: p, Value: v, Unit: info.Unit,
			Time: at, Source: telemetry.SourceAPI, Quality: telemetry.Good},
		Origin: upstream.Origin{Source: "cpcb-nwmp", RecordID: "rec-" + string(p) + at.Format("20060102"), StationCode: "1153"},
	}
}

type provPage struct {
	Readings []struct {
		Seq          uint64     `json:"seq"`
		Time         time.Time  `json:"time"`
		Param        string     `json:"param"`
		Value        float64    `json:"value"`
		Source       string     `json:"source"`
		Origin       string     `json:"origin"`
		RecordID     string     `json:"record_id"`
		StationCode  string     `json:"station_code"`
		Revision     int        `json:"revision"`
		Current      *bool      `json:"current"`
		SupersededAt *time.Time `json:"superseded_at"`
		SampleID     string     `json:"sample_id"`
		Lab          string     `json:"lab"`
	} `json:"readings"`
	Next string `json:"next"`
}

func TestRevisionsAndProvenance(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	june := time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)
	_, err := e.store.StoreUpstream(ctx, []upstream.Reading{nwmp(telemetry.BOD, 18.5, june)})
	require.NoError(t, err)
	_, err = e.store.StoreUpstream(ctx, []upstream.Reading{nwmp(telemetry.BOD, 21, june)})
	require.NoError(t, err)
	e.ingest(t, storetest.Batch(station, storetest.Readings(1, 5, june.Add(-2*time.Minute), time.Minute)))

	base := "/v1/stations/" + station + "/readings?param=bod"
	var cur provPage
	require.Equal(t, http.StatusOK, e.get(t, base, &cur))
	require.Len(t, cur.Readings, 1, "the current value only")
	r := cur.Readings[0]
	assert.Equal(t, 21.0, r.Value)
	assert.Equal(t, "api", r.Source)
	assert.Equal(t, "cpcb-nwmp", r.Origin)
	assert.Equal(t, "rec-bod20230601", r.RecordID)
	assert.Equal(t, "1153", r.StationCode)
	assert.Equal(t, 2, r.Revision)

	var all provPage
	require.Equal(t, http.StatusOK, e.get(t, base+"&revisions=all", &all))
	require.Len(t, all.Readings, 2)
	assert.Equal(t, []float64{21, 18.5}, []float64{all.Readings[0].Value, all.Readings[1].Value})
	require.NotNil(t, all.Readings[1].Current)
	assert.False(t, *all.Readings[1].Current)
	assert.NotNil(t, all.Readings[1].SupersededAt)

	// Pages of one walk through station and upstream readings together: each once.
	var seen []string
	path := "/v1/stations/" + station + "/readings?limit=2&revisions=all"
	for range 20 {
		var page provPage
		require.Equal(t, http.StatusOK, e.get(t, path, &page))
		for _, x := range page.Readings {
			seen = append(seen, fmt.Sprintf("%s/%d/%v", x.Source, x.Seq, x.Value))
		}
		if page.Next == "" {
			break
		}
		path = "/v1/stations/" + station + "/readings?limit=2&revisions=all&cursor=" + page.Next
	}
	assert.Len(t, seen, 7)
	assert.Len(t, slices.Compact(slices.Sorted(slices.Values(seen))), 7, "no row twice: %v", seen)
}

func TestCSVExport(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	start := now.Add(-48 * time.Hour)
	// More than one export page, so the stream crosses pages.
	rs := storetest.Readings(1, store.ExportPage+300, start, 30*time.Second)
	for i := 0; i < len(rs); i += 1000 {
		e.ingest(t, storetest.Batch(station, rs[i:min(i+1000, len(rs))]))
	}
	_, err := e.store.StoreUpstream(ctx, []upstream.Reading{nwmp(telemetry.FC, 900, start.Add(time.Hour))})
	require.NoError(t, err)
	_, err = e.store.StoreSamples(ctx, "lab", []store.Sample{{Station: station, Param: telemetry.BOD, Value: 3.5,
		Unit: "mg/L", Time: start.Add(2 * time.Hour), Quality: telemetry.Good, SampleID: "S-1", Lab: "MPCB Pune", Method: "APHA 5210 B"}})
	require.NoError(t, err)

	resp, err := http.Get(e.srv.URL + "/v1/stations/" + station + "/readings?format=csv")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/csv; charset=utf-8", resp.Header.Get("Content-Type"))
	rows, err := csv.NewReader(resp.Body).ReadAll()
	require.NoError(t, err)
	require.Equal(t, readingcsv.Header, rows[0])
	assert.Equal(t, "time,station_id,param,value,unit,quality,source,sensor", strings.Join(rows[0][:8], ","))
	require.Len(t, rows, 1+len(rs)+2, "every reading, whatever its source")
	var times []time.Time
	sources := map[string]int{}
	for _, row := range rows[1:] {
		ts, err := time.Parse(time.RFC3339Nano, row[0])
		require.NoError(t, err)
		times = append(times, ts)
		sources[row[6]]++
		assert.Equal(t, station, row[1])
		if row[6] == "manual" {
			assert.Equal(t, []string{"S-1", "MPCB Pune", "APHA 5210 B"}, row[16:19])
		}
	}
	assert.True(t, slices.IsSortedFunc(times, func(a, b time.Time) int { return a.Compare(b) }), "oldest first")
	assert.Equal(t, map[string]int{"sensor": len(rs), "api": 1, "manual": 1}, sources)

	// A range.
	resp2, err := http.Get(e.srv.URL + "/v1/stations/" + station + "/readings?format=csv&param=fc&from=" +
		start.Format(time.RFC3339) + "&to=" + now.Format(time.RFC3339))
	require.NoError(t, err)
	defer resp2.Body.Close()
	rows, err = csv.NewReader(resp2.Body).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, "900", rows[1][3])

	for q, field := range map[string]string{"format=csv&limit=5": "limit", "format=csv&bucket=1h": "bucket",
		"format=xml": "format", "revisions=some": "revisions"} {
		var body wire.Error
		assert.Equal(t, http.StatusBadRequest, e.get(t, "/v1/stations/"+station+"/readings?"+q, &body), q)
		assert.Equal(t, field, body.Field, q)
	}
}

func TestStatusFusedWQIFromThreeSources(t *testing.T) {
	e := newEnvWith(t, fusion.DefaultPolicy())
	ctx := t.Context()
	e.ingest(t, storetest.Batch(station, []wire.Reading{
		{Seq: 1, Time: now.Add(-10 * time.Minute), Sensor: "do-1", Param: "do", Value: 6.5, Unit: "mg/L", Quality: "good", Source: "sensor"},
		{Seq: 2, Time: now.Add(-10 * time.Minute), Sensor: "ph-1", Param: "ph", Value: 7.4, Unit: "pH", Quality: "good", Source: "sensor"},
		{Seq: 3, Time: now.Add(-3 * time.Hour), Sensor: "bod-1", Param: "bod", Value: 9, Unit: "mg/L", Quality: "good", Source: "sensor"},
	}))
	_, err := e.store.StoreSamples(ctx, "lab", []store.Sample{{Station: station, Param: telemetry.BOD, Value: 2.1,
		Unit: "mg/L", Time: now.Add(-5 * 24 * time.Hour), Quality: telemetry.Good, Lab: "MPCB Pune"}})
	require.NoError(t, err)
	_, err = e.store.StoreUpstream(ctx, []upstream.Reading{nwmp(telemetry.FC, 900, now.AddDate(0, -1, 0))})
	require.NoError(t, err)

	var st struct {
		Params map[string]struct {
			Source string  `json:"source"`
			Origin string  `json:"origin"`
			Value  float64 `json:"value"`
		} `json:"params"`
		FusedWQI *struct {
			Source  string  `json:"source"`
			WQI     float64 `json:"wqi"`
			Partial bool    `json:"partial"`
			Inputs  map[string]struct {
				Source     string    `json:"source"`
				Time       time.Time `json:"time"`
				AgeSeconds float64   `json:"age_seconds"`
			} `json:"inputs"`
		} `json:"fused_wqi"`
	}
	require.Equal(t, http.StatusOK, e.get(t, "/v1/stations/"+station+"/status", &st))
	assert.Equal(t, "manual", st.Params["bod"].Source, "a stale probe gives way to a lab result")
	assert.Equal(t, 2.1, st.Params["bod"].Value)
	assert.Equal(t, "cpcb-nwmp", st.Params["fc"].Origin)
	require.NotNil(t, st.FusedWQI)
	assert.Equal(t, "fused", st.FusedWQI.Source)
	assert.False(t, st.FusedWQI.Partial, "sensor, lab and government values make it complete")
	assert.Equal(t, "sensor", st.FusedWQI.Inputs["do"].Source)
	assert.Equal(t, "manual", st.FusedWQI.Inputs["bod"].Source)
	assert.Equal(t, "api", st.FusedWQI.Inputs["fc"].Source)
	assert.Equal(t, (5 * 24 * time.Hour).Seconds(), st.FusedWQI.Inputs["bod"].AgeSeconds)
	assert.Greater(t, st.FusedWQI.WQI, 0.0)
}

// source= lists the readings of some sources only: the lab, government and satellite
// points of a parameter without its probe's thousands.
func TestReadingsBySource(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	at := now.Add(-3 * time.Hour).UTC().Truncate(time.Second)
	_, err := e.store.StoreUpstream(ctx, []upstream.Reading{nwmp(telemetry.BOD, 18.5, at.Add(-24*time.Hour))})
	require.NoError(t, err)
	_, err = e.store.StoreSamples(ctx, "lab-pune", []store.Sample{{Station: station, Param: telemetry.BOD, Value: 3.5,
		Unit: "mg/L", Time: at, Quality: telemetry.Good, Lab: "MPCB Pune"}})
	require.NoError(t, err)
	e.ingest(t, storetest.Batch(station, []wire.Reading{
		{Seq: 1, Time: at, Sensor: "bod-1", Param: "bod", Value: 2.9, Unit: "mg/L", Quality: "good", Source: "sensor"},
		{Seq: 2, Time: at.Add(time.Minute), Sensor: "bod-1", Param: "bod", Value: 3.0, Unit: "mg/L", Quality: "good", Source: "sensor"},
	}))

	sources := func(q string) []string {
		var page provPage
		require.Equal(t, http.StatusOK, e.get(t, "/v1/stations/"+station+"/readings?param=bod"+q, &page))
		var out []string
		for _, r := range page.Readings {
			out = append(out, r.Source)
		}
		return out
	}
	assert.Equal(t, []string{"sensor", "sensor", "manual", "api"}, sources(""))
	assert.Equal(t, []string{"manual", "api"}, sources("&source=manual,api,satellite"))
	assert.Equal(t, []string{"sensor", "sensor"}, sources("&source=sensor"))
	assert.Equal(t, []string{"api"}, sources("&source=api,api"))

	for q, field := range map[string]string{"&source=lab": "source", "&source=api&bucket=1h": "source", "&source=": ""} {
		var body struct {
			Error string `json:"error"`
			Field string `json:"field"`
		}
		code := e.get(t, "/v1/stations/"+station+"/readings?param=bod"+q, &body)
		if field == "" {
			assert.Equal(t, http.StatusOK, code, q)
			continue
		}
		assert.Equal(t, http.StatusBadRequest, code, q)
		assert.Equal(t, field, body.Field, "%s: %s", q, body.Error)
	}
}

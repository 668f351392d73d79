package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/config"
	"github.com/purehealth/purehealth/cloud/internal/server"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/cloud/internal/upstream/upstreamtest"
	"github.com/purehealth/purehealth/shared/wire"
)

// sourcesGuard bounds each wait for the service's jobs; it only turns a hang into a failure.
const sourcesGuard = 30 * time.Second

// upstreamStats is a source as /stats shows it.
type upstreamStats struct {
	Source              string    `json:"source"`
	Kind                string    `json:"kind"`
	LastSuccess         time.Time `json:"last_success"`
	LastError           string    `json:"last_error"`
	Rounds              int64     `json:"rounds"`
	Failures            int64     `json:"failures"`
	ConsecutiveFailures int64     `json:"consecutive_failures"`
	Records             int64     `json:"records"`
	New                 int64     `json:"new"`
	LagSecond           float64   `json:"lag_s"`
	HTTP                struct {
		Requests int64 `json:"requests"`
	} `json:"http"`
}

type statsDoc struct {
	Upstream map[string]upstreamStats `json:"upstream"`
	Samples  struct {
		Accepted int64 `json:"accepted"`
		Rejected int64 `json:"rejected"`
	} `json:"samples"`
	FusedWQI struct {
		Runs int64 `json:"runs"`
	} `json:"fused_wqi"`
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", u, body)
	require.NoError(t, json.Unmarshal(body, v), "GET %s: %s", u, body)
}

// fusedInputs is the fused WQI the station's status shows: each input's source.
func fusedInputs(t *testing.T, base, station string) (sources map[string]string, partial bool) {
	t.Helper()
	var st struct {
		FusedWQI *struct {
			Partial bool `json:"partial"`
			Inputs  map[string]struct {
				Source string `json:"source"`
			} `json:"inputs"`
		} `json:"fused_wqi"`
	}
	getJSON(t, base+"/v1/stations/"+station+"/status", &st)
	sources = map[string]string{}
	if st.FusedWQI == nil {
		return sources, true
	}
	for p, in := range st.FusedWQI.Inputs {
		sources[p] = in.Source
	}
	return sources, st.FusedWQI.Partial
}

// The service with a government source (`ph-sim ogd`) and the satellite (`ph-sim stats`)
// configured, over a real PostgreSQL: both are collected on their schedules into the
// station's readings, a lab posts a sample, the station sends its probes, and the fused
// WQI, stored with its live event, takes each input from the most trusted fresh source.
// /stats and /metrics show every source; a source that fails (503 on every request)
// shows its error while the other goes on and the service keeps serving, and it
// recovers by itself.
func TestSourcesWired(t *testing.T) {
	ogd := upstreamtest.StartSim(t, "ogd", 1, "--api-key", "k3y", "--months", "3", "--revise-after", "-1s")
	stats := upstreamtest.StartSim(t, "stats", 2, "--client-id", "ph", "--client-secret", "s3")
	ogdBase, resource, ok := strings.Cut(ogd.URLs[0], "/resource/")
	require.True(t, ok)

	dbURL := storetest.Migrated(t)
	cfg, err := config.Parse(fmt.Appendf(nil, `database_url: %q
fusion: {interval: 1s}
upstream:
  - name: cpcb-nwmp
    kind: ogd
    base_url: %q
    api_key: k3y
    resource_id: %q
    interval: 1s
    station_field: station_code
    time_field: sampling_date
    time_format: "02-01-2006"
    params: {ph: ph, do: dissolved_oxygen, bod: bod, fc: fecal_coliform, temp: temperature}
    stations: {"2683": MH-PUNE-001}
    http: {attempts: 1, rate: -1, backoff_base: 10ms, backoff_max: 50ms}
satellite:
  base_url: %q
  token_url: %q
  client_id: ph
  client_secret: s3
  interval: 1s
  lookback: 7d
  areas: {MH-PUNE-001: {lat: 18.5293, lon: 73.8627, radius_m: 150}}
  http: {rate: -1, backoff_base: 10ms, backoff_max: 50ms}
`, dbURL, ogdBase, resource, stats.URLs[0], stats.URLs[1]))
	require.NoError(t, err)
	st := storetest.OpenURL(t, dbURL, store.Options{})
	stationToken := storetest.AddStation(t, st, "MH-PUNE-001")
	labToken, err := st.AddToken(t.Context(), "lab-pune", store.RoleLab)
	require.NoError(t, err)
	viewerToken, err := st.AddToken(t.Context(), "watcher", store.RoleViewer)
	require.NoError(t, err)

	srv, err := server.New(cfg, st, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()
	runServer(t, srv, ln)

	var doc statsDoc
	require.Eventually(t, func() bool {
		getJSON(t, base+"/stats", &doc)
		return !doc.Upstream["cpcb-nwmp"].LastSuccess.IsZero() && !doc.Upstream["copernicus"].LastSuccess.IsZero()
	}, sourcesGuard, 50*time.Millisecond, "both sources collected: %+v", doc.Upstream)
	ogdStats, sat := doc.Upstream["cpcb-nwmp"], doc.Upstream["copernicus"]
	assert.Equal(t, "ogd", ogdStats.Kind)
	assert.Equal(t, "satellite", sat.Kind)
	assert.Positive(t, ogdStats.New, "government records stored")
	assert.Positive(t, ogdStats.Records)
	assert.Positive(t, ogdStats.LagSecond, "the newest record is days old")
	assert.Positive(t, sat.New, "satellite estimates stored")
	assert.Positive(t, sat.HTTP.Requests)

	// The fused WQI from government data alone: every input from the OGD source.
	require.Eventually(t, func() bool {
		src, _ := fusedInputs(t, base, "MH-PUNE-001")
		return src["bod"] == "api" && src["do"] == "api"
	}, sourcesGuard, 50*time.Millisecond)
	w, err := st.LatestFusedWQI(t.Context(), "MH-PUNE-001")
	require.NoError(t, err)
	require.NotNil(t, w, "the upstream round stored the fused WQI")
	assert.Equal(t, "api", w.Inputs["bod"].Source)

	// A lab posts BOD; only lab and operator tokens may.
	sampledAt := time.Now().Add(-26 * time.Hour).UTC().Format(time.RFC3339)
	csv := "station_id,param,value,unit,sampled_at,sample_id,lab\nMH-PUNE-001,bod,4.2,mg/L," + sampledAt + ",PUN-1,MPCB Pune\n"
	code, body := postSamples(t, base, viewerToken, csv)
	assert.Equal(t, http.StatusForbidden, code, "%s", body)
	code, body = postSamples(t, base, "", csv)
	assert.Equal(t, http.StatusUnauthorized, code, "%s", body)
	code, body = postSamples(t, base, labToken, csv)
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.JSONEq(t, `{"accepted": 1, "duplicates": 0, "revised": 0}`, body)

	// The station's probes: pH and DO now.
	now := time.Now().UTC()
	batch := storetest.Batch("MH-PUNE-001", []wire.Reading{
		{Seq: 1, Time: now, Sensor: "ph-1", Param: "ph", Value: 7.6, Unit: "pH", Quality: "good", Source: "sensor"},
		{Seq: 2, Time: now, Sensor: "do-1", Param: "do", Value: 6.1, Unit: "mg/L", Quality: "good", Source: "sensor"},
	})
	require.Equal(t, http.StatusOK, postBatch(t, base, stationToken, batch))

	// The stored fused WQI follows both without waiting for fusion.interval's sweep:
	// sensor pH and DO, the lab's BOD, the government's FC.
	require.Eventually(t, func() bool {
		w, err := st.LatestFusedWQI(t.Context(), "MH-PUNE-001")
		return err == nil && w != nil && w.Inputs["bod"].Source == "manual" && w.Inputs["ph"].Source == "sensor" &&
			w.Inputs["do"].Source == "sensor" && w.Inputs["fc"].Source == "api"
	}, sourcesGuard, 50*time.Millisecond)
	src, partial := fusedInputs(t, base, "MH-PUNE-001")
	assert.Equal(t, map[string]string{"ph": "sensor", "do": "sensor", "bod": "manual", "fc": "api", "temp": "api"}, src)
	assert.False(t, partial, "the index is complete")

	metrics := getBody(t, base+"/metrics")
	for _, want := range []string{
		`ph_upstream_rounds_total{source="cpcb-nwmp"}`, `ph_upstream_rounds_total{source="copernicus"}`,
		`ph_upstream_readings_total{change="new",source="cpcb-nwmp"}`, `ph_upstream_lag_seconds{source="cpcb-nwmp"}`,
		`ph_upstream_last_success_timestamp_seconds{source="copernicus"}`, `ph_upstream_http_requests_total{source="copernicus"}`,
		`ph_samples_total{result="accepted"} 1`, `ph_samples_total{result="rejected"} 2`, `ph_fused_wqi_updates_total`,
	} {
		assert.Contains(t, metrics, want)
	}

	// data.gov.in answers 503 to everything: the source shows its error, the satellite
	// goes on, the service serves.
	fault(t, ogdBase, url.Values{"kind": {"503"}, "count": {"10000"}})
	getJSON(t, base+"/stats", &doc)
	satRounds := doc.Upstream["copernicus"].Rounds
	require.Eventually(t, func() bool {
		getJSON(t, base+"/stats", &doc)
		return doc.Upstream["cpcb-nwmp"].ConsecutiveFailures >= 2
	}, sourcesGuard, 50*time.Millisecond, "%+v", doc.Upstream["cpcb-nwmp"])
	failing := doc.Upstream["cpcb-nwmp"]
	assert.Contains(t, failing.LastError, "503")
	assert.False(t, failing.LastSuccess.IsZero(), "the last success is kept")
	require.Eventually(t, func() bool {
		getJSON(t, base+"/stats", &doc)
		return doc.Upstream["copernicus"].Rounds > satRounds+1
	}, sourcesGuard, 50*time.Millisecond, "the satellite is collected meanwhile")
	assert.Zero(t, doc.Upstream["copernicus"].ConsecutiveFailures)
	code, _ = getHealth(t, base)
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, getBody(t, base+"/metrics"), `ph_upstream_consecutive_failures{source="cpcb-nwmp"}`)

	// The gateway is back: the source recovers on its own.
	req, err := http.NewRequest(http.MethodDelete, ogdBase+"/_sim/fault", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Eventually(t, func() bool {
		getJSON(t, base+"/stats", &doc)
		return doc.Upstream["cpcb-nwmp"].ConsecutiveFailures == 0
	}, sourcesGuard, 50*time.Millisecond, "%+v", doc.Upstream["cpcb-nwmp"])
}

func postSamples(t *testing.T, base, token, csv string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/samples", strings.NewReader(csv))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "text/csv")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// fault queues a fault at a simulator (POST /_sim/fault).
func fault(t *testing.T, base string, form url.Values) {
	t.Helper()
	resp, err := http.PostForm(base+"/_sim/fault", form)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
}

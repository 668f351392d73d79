package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/browsertest"
	"github.com/purehealth/purehealth/internal/pahotest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/internal/testproc"
)

// sourceStats is one upstream source in /stats.
type sourceStats struct {
	Kind                string    `json:"kind"`
	LastSuccess         time.Time `json:"last_success"`
	LastError           string    `json:"last_error"`
	Rounds              int64     `json:"rounds"`
	Failures            int64     `json:"failures"`
	ConsecutiveFailures int64     `json:"consecutive_failures"`
	New                 int64     `json:"new"`
	Revised             int64     `json:"revised"`
	LagSecond           float64   `json:"lag_s"`
	HTTP                struct {
		RateLimited int64 `json:"rate_limited"`
	} `json:"http"`
}

// fusedStatus is the fused WQI of /v1/stations/{id}/status.
type fusedStatus struct {
	FusedWQI *struct {
		WQI     float64  `json:"wqi"`
		Partial bool     `json:"partial"`
		Missing []string `json:"missing"`
		Inputs  map[string]struct {
			Source string  `json:"source"`
			Origin string  `json:"origin"`
			Value  float64 `json:"value"`
		} `json:"inputs"`
	} `json:"fused_wqi"`
	Params map[string]struct {
		Source string `json:"source"`
	} `json:"params"`
}

// Every source of a station's water quality meets in the cloud: ph-cloud reads a
// government resource from `ph-sim ogd` and satellite statistics from `ph-sim stats`
// (real processes, the cloud configured as an operator would), the station's probes
// publish at a real ph-agent, and a lab result is entered at the station with
// `ph-agent sample add`. The station's fused WQI then takes its inputs from three
// sources (probes, the lab, the government programme) and is complete, while the
// station's own index stays without FC. /stats shows both upstream sources. When
// data.gov.in rate-limits every request, /stats shows that source's error while the
// satellite source goes on and the service serves. The dashboard, in headless Chromium,
// shows each value's source badge, the lab value as a distinct marker on its chart, and
// the fused index with the source of each input, following a new probe reading live.
func TestSources(t *testing.T) {
	up := startUpstreams(t, upstreamOptions{Months: 3, Interval: 2 * time.Second, Timeout: 5 * time.Second,
		Lookback: 14 * 24 * time.Hour})
	up.Fusion = "2s"
	c := newCloud(t, pgtest.New(t))
	c.readFrom(t, up)
	c.serve.Start(t)

	a := newAgent(t, c.URL(), c.TokenFile, agentOptions{})
	a.Start(t)
	mq := pahotest.Connect(t, a.Listen, "sources", guard)
	for _, p := range []struct{ param, value string }{{"ph", "7.4"}, {"do", "6.8"}, {"temp", "26"}} {
		pahotest.PublishAcked(t, mq, a.Topic(p.param), p.value, guard)
	}
	// The lab's BOD, sampled two days ago, entered at the station.
	sampled := time.Now().Add(-48 * time.Hour).In(time.FixedZone("IST", 5*3600+1800)).Format("2006-01-02T15:04-07:00")
	out := mustCmd(t, a.bin, "sample", "add", "bod", "3.4", "--unit", "mg/L", "--at", sampled, "--id", "PUN-E2E-01",
		"--lab", "MPCB Pune", "--config", a.Config)
	assert.Contains(t, out, "stored as seq")

	// The fused WQI: probes for pH, DO and temperature, the lab for BOD, the government
	// programme for FC.
	var st fusedStatus
	waitFor(t, "the fused WQI from three sources", func() bool {
		getCloudJSON(t, c.URL()+"/v1/stations/"+station+"/status", &st)
		w := st.FusedWQI
		return w != nil && !w.Partial && w.Inputs["ph"].Source == "sensor" && w.Inputs["do"].Source == "sensor" &&
			w.Inputs["bod"].Source == "manual" && w.Inputs["fc"].Source == "api"
	}, func() string { return fmt.Sprintf("%+v", st.FusedWQI) })
	assert.Equal(t, govSource, st.FusedWQI.Inputs["fc"].Origin)
	assert.Equal(t, 3.4, st.FusedWQI.Inputs["bod"].Value)
	assert.Equal(t, "satellite", st.Params["chla"].Source, "chlorophyll-a comes only from the satellite")
	var own struct {
		Partial bool     `json:"partial"`
		Missing []string `json:"missing"`
	}
	require.NoError(t, json.Unmarshal([]byte(mustCmd(t, a.bin, "wqi", "--json", "--config", a.Config)), &own))
	assert.True(t, own.Partial, "the station has no FC of its own")
	assert.Equal(t, []string{"fc"}, own.Missing)

	var doc struct {
		Upstream map[string]sourceStats `json:"upstream"`
	}
	getCloudJSON(t, c.URL()+"/stats", &doc)
	require.Contains(t, doc.Upstream, "cpcb-nwmp")
	require.Contains(t, doc.Upstream, "copernicus")
	assert.Equal(t, "ogd", doc.Upstream[govSource].Kind)
	assert.Positive(t, doc.Upstream[govSource].New)
	assert.Positive(t, doc.Upstream[govSource].LagSecond)
	assert.Positive(t, doc.Upstream[satSource].New)
	assert.False(t, doc.Upstream[satSource].LastSuccess.IsZero())

	// The dashboard, while everything answers.
	ctx := browsertest.New(t, testDir(t))
	console := browsertest.WatchConsole(ctx)
	defer console.Stop()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.URL()+"/#/station/"+station)))
	badge := func(param, src string) string {
		return `document.querySelector('#st-now tr[data-key="` + param + `"] .src-badge[data-source="` + src + `"]') !== null`
	}
	waitPage(t, ctx, console, "the dashboard LIVE", `document.querySelector('#conn').dataset.state === 'live'`)
	waitPage(t, ctx, console, "a sensor badge on pH", badge("ph", "sensor"))
	waitPage(t, ctx, console, "a lab badge on BOD with its age",
		badge("bod", "manual")+` && document.querySelector('#st-now tr[data-key="bod"] .src-badge').textContent.includes('2d ago')`)
	waitPage(t, ctx, console, "a government badge on FC", badge("fc", "api"))
	waitPage(t, ctx, console, "a satellite badge on chlorophyll-a", badge("chla", "satellite"))
	waitPage(t, ctx, console, "the fused WQI complete beside the station's own",
		`document.querySelector('#st-fused')?.dataset.state === 'complete' &&
		document.querySelector('#st-fused .fused-own')?.textContent.includes('partial')`)
	for p, src := range map[string]string{"ph": "sensor", "do": "sensor", "bod": "manual", "fc": "api"} {
		waitPage(t, ctx, console, "the fused input "+p+" from "+src,
			`document.querySelector('#st-fused li[data-param="`+p+`"][data-source="`+src+`"] .src-badge') !== null`)
	}
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-range="7d"]`))))
	waitPage(t, ctx, console, "the lab's BOD drawn as its own marker",
		`document.querySelector('#st-charts figure[data-key="bod"] path.marker-manual') !== null`)
	shot(t, ctx, "dashboard-sources-station")

	// A new DO reading at the station reaches the fused index on the page without a reload.
	pahotest.PublishAcked(t, mq, a.Topic("do"), "5.93", guard)
	waitPage(t, ctx, console, "the fused input DO follows the probe live",
		`document.querySelector('#st-fused li[data-param="do"]')?.textContent.includes('5.93')`)
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = '#/'`)))
	waitPage(t, ctx, console, "the overview card says the fused index is complete",
		`document.querySelector('#station-list li[data-key="`+station+`"] .st-fused')?.dataset.state === 'complete'`)
	shot(t, ctx, "dashboard-sources-overview")
	assert.Empty(t, console.Problems(), "the page logged errors")

	// data.gov.in answers 429 to every request: the source fails and says so, the satellite
	// goes on, the service serves.
	up.queueFault(t, govSource, "429", 10000, "")
	getCloudJSON(t, c.URL()+"/stats", &doc)
	satRounds := doc.Upstream[satSource].Rounds
	waitFor(t, "the government source failing in /stats", func() bool {
		getCloudJSON(t, c.URL()+"/stats", &doc)
		return doc.Upstream[govSource].ConsecutiveFailures > 0 && doc.Upstream[satSource].Rounds > satRounds
	}, func() string { return fmt.Sprintf("%+v", doc.Upstream) })
	assert.Contains(t, doc.Upstream[govSource].LastError, "429")
	assert.Zero(t, doc.Upstream[satSource].ConsecutiveFailures, "the satellite source is not affected")
	c.waitHealth(t, http.StatusOK, guard)
	metrics := getCloudText(t, c.URL()+"/metrics")
	assert.Contains(t, metrics, `ph_upstream_consecutive_failures{source="cpcb-nwmp"}`)
	assert.Contains(t, metrics, `ph_upstream_http_rate_limited_total{source="cpcb-nwmp"}`)
}

// startSim runs `ph-sim KIND --listen 127.0.0.1:0 ARGS...` until the test ends and returns
// the lines it prints once listening (its endpoints).
func startSim(t *testing.T, kind string, lines int, args ...string) []string {
	t.Helper()
	bin := bins.Binary(t, "ph-sim", "github.com/purehealth/purehealth/firmware-sim", false)
	p := testproc.Start(t, bin, append([]string{kind, "--listen", "127.0.0.1:0", "--log-level", "warn"}, args...)...)
	out := make([]string, lines)
	for i := range out {
		out[i] = strings.TrimSpace(p.Line(t, guard))
	}
	return out
}

// waitFor polls ok until it holds; on timeout it fails with what state says.
func waitFor(t *testing.T, what string, ok func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("want %s within %v; last: %s", what, guard, state())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getCloudJSON(t *testing.T, u string, v any) {
	t.Helper()
	body := getCloudText(t, u)
	require.NoError(t, json.Unmarshal([]byte(body), v), "GET %s: %s", u, body)
}

func getCloudText(t *testing.T, u string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", u, b)
	return string(b)
}

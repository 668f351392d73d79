package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The cloud's upstream sources in the system tests: ph-sim ogd stands for data.gov.in's
// CPCB river-monitoring resource and ph-sim stats for the Copernicus Statistical API,
// each a real process on 127.0.0.1 serving the services' response shapes, and ph-cloud
// reads them as an operator would configure it (the sources block of cloud.yaml.tmpl).

// The sources' names: the origin of the readings they deliver and their keys in /stats.
const (
	govSource = "cpcb-nwmp"
	satSource = "copernicus"
)

// The simulators' credentials.
const (
	ogdKey               = "e2e-key"
	satClient, satSecret = "e2e", "s3"
)

// ogdStationCode is the test station's code in ph-sim ogd's resource (`ph-sim ogd --help`
// lists its stations).
const ogdStationCode = "2683"

// ogdParams maps our parameters to the fields of the NWMP resource.
var ogdParams = map[string]string{"ph": "ph", "do": "dissolved_oxygen", "bod": "bod", "fc": "fecal_coliform",
	"temp": "temperature", "conductivity": "conductivity"}

// satArea is the water whose pixels the satellite estimates count: a reach of the
// Mula-Mutha at Sangam around the station, [lon, lat] (the simulator tells the station
// by the area's centre).
var satArea = [][2]float64{{73.8612, 18.5278}, {73.8642, 18.5278}, {73.8642, 18.5308}, {73.8612, 18.5308}, {73.8612, 18.5278}}

// The satellite source's quality limits: scenes of tiles more cloudy than satMaxCloudPct
// are left out, a scene needs satMinPixels valid water pixels.
const (
	satMaxCloudPct = 20
	satMinPixels   = 10
)

// upstreams are the two simulators, running until the test ends, and the settings of the
// cloud's sources that read them (the template's .Sources).
type upstreams struct {
	// OGDBase is the gateway (its fault control is OGDBase/_sim/fault), Resource the id
	// of the resource it serves.
	OGDBase, Resource string
	// StatsBase is the Statistical API (its fault control is StatsBase/_sim/fault),
	// TokenURL its OAuth2 token endpoint.
	StatsBase, TokenURL string

	Station, StationCode string
	GovName, SatName     string
	OGDKey               string
	SatClient, SatSecret string
	Params               map[string]string
	Area                 [][2]float64
	MaxCloudPct          float64
	MinPixels            int
	// PageSize is the OGD records a page; the resource has 6 records a month.
	PageSize int
	// Interval is how often each source is read; Timeout bounds one HTTP attempt;
	// Lookback is how far back the satellite source reads; Fusion, when set, is the fused
	// WQI's interval.
	Interval, Timeout, Lookback, Fusion string
}

// upstreamOptions vary the simulators and the cloud's sources.
type upstreamOptions struct {
	Months   int           // of monthly samples in the OGD resource
	Interval time.Duration // each source's interval
	Timeout  time.Duration // one HTTP attempt
	Lookback time.Duration // the satellite's
}

// startUpstreams runs both simulators until the test ends: the OGD resource with o.Months
// of samples, republished only on demand (POST /_sim/revise), a 429 asking for a second's
// wait (in seconds at the gateway, in milliseconds at the Statistical API) and the slow
// fault holding an answer far longer than the cloud's timeout.
func startUpstreams(t *testing.T, o upstreamOptions) *upstreams {
	t.Helper()
	slow := (4 * o.Timeout).String()
	ogd := startSim(t, "ogd", 1, "--api-key", ogdKey, "--months", strconv.Itoa(o.Months), "--revise-after", "-1s",
		"--retry-after", "1s", "--slow", slow)
	stats := startSim(t, "stats", 2, "--client-id", satClient, "--client-secret", satSecret,
		"--retry-after", "300ms", "--slow", slow)
	base, resource, ok := strings.Cut(ogd[0], "/resource/")
	require.True(t, ok, "ph-sim ogd printed %q, want a resource URL", ogd[0])
	return &upstreams{
		OGDBase: base, Resource: resource, StatsBase: stats[0], TokenURL: stats[1],
		Station: station, StationCode: ogdStationCode, GovName: govSource, SatName: satSource,
		OGDKey: ogdKey, SatClient: satClient, SatSecret: satSecret, Params: ogdParams, Area: satArea,
		MaxCloudPct: satMaxCloudPct, MinPixels: satMinPixels, PageSize: 50,
		Interval: o.Interval.String(), Timeout: o.Timeout.String(), Lookback: o.Lookback.String(),
	}
}

// readFrom makes the cloud read up's sources: its configuration is written again with
// them. Call it before the service starts.
func (c *cloud) readFrom(t *testing.T, up *upstreams) {
	t.Helper()
	c.Sources = up
	writeTemplate(t, "cloud.yaml.tmpl", c.Config, c)
	out := mustCmd(t, cloudBin(t), "config", "check", c.Config)
	require.Contains(t, out, ": ok", "ph-cloud config check of the configuration with upstream sources")
}

// faultControl is the fault control of the simulator serving source.
func (u *upstreams) faultControl(source string) string {
	if source == u.SatName {
		return u.StatsBase + "/_sim/fault"
	}
	return u.OGDBase + "/_sim/fault"
}

// simCall sends one request to a simulator and requires the status want; it returns the
// body.
func simCall(t *testing.T, method, u string, form url.Values, want int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return simSend(t, req, want)
}

// simSend sends req to a simulator and requires the status want; it returns the body.
func simSend(t *testing.T, req *http.Request, want int) []byte {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "%s %s", req.Method, req.URL)
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	require.NoError(t, err, "%s %s", req.Method, req.URL)
	require.Equal(t, want, resp.StatusCode, "%s %s: %s", req.Method, req.URL, b)
	return b
}

// queueFault makes the next count requests to source's simulator whose path starts with
// path answer with the fault kind (429, 500, 502, 503, slow, malformed).
func (u *upstreams) queueFault(t *testing.T, source, kind string, count int, path string) {
	t.Helper()
	simCall(t, http.MethodPost, u.faultControl(source),
		url.Values{"kind": {kind}, "count": {strconv.Itoa(count)}, "path": {path}}, http.StatusNoContent)
}

// clearFaults drops the faults still queued at source's simulator.
func (u *upstreams) clearFaults(t *testing.T, source string) {
	t.Helper()
	simCall(t, http.MethodDelete, u.faultControl(source), nil, http.StatusNoContent)
}

// queuedFaults is how many requests the faults queued at source's simulator are still
// waiting for.
func (u *upstreams) queuedFaults(t *testing.T, source string) int {
	t.Helper()
	var doc struct {
		Queue []struct {
			Count int `json:"count"`
		} `json:"queue"`
	}
	b := simCall(t, http.MethodGet, u.faultControl(source), nil, http.StatusOK)
	require.NoError(t, json.Unmarshal(b, &doc), "GET /_sim/fault: %s", b)
	n := 0
	for _, q := range doc.Queue {
		n += q.Count
	}
	return n
}

// upstreamStats reads every upstream source's part of /stats.
func (c *cloud) upstreamStats(t *testing.T) map[string]sourceStats {
	t.Helper()
	var doc struct {
		Upstream map[string]sourceStats `json:"upstream"`
	}
	getCloudJSON(t, c.URL()+"/stats", &doc)
	return doc.Upstream
}

// waitSource polls /stats until ok accepts source's part of it, and returns that.
func (c *cloud) waitSource(t *testing.T, source, what string, ok func(sourceStats) bool) sourceStats {
	t.Helper()
	var st sourceStats
	waitFor(t, source+": "+what, func() bool {
		st = c.upstreamStats(t)[source]
		return ok(st)
	}, func() string { return fmt.Sprintf("%+v", st) })
	return st
}

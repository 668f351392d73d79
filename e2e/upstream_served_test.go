package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// What the upstream simulators serve, read by the test itself and turned into the
// readings the cloud should take from it. The rules come from the science notes
// (science.md §3–4), written here apart from the cloud's clients, so that a bug in them
// cannot hide behind the same bug here.

// apiID is a government value: its parameter, the time it describes and its value.
type apiID struct {
	param string
	at    int64 // Unix microseconds
	value float64
}

// ist is India Standard Time, the zone of every time the portals print without an offset.
var ist = time.FixedZone("IST", 5*3600+30*60)

// ogdServed reads the test station's records as ph-sim ogd serves them now, page by page,
// and returns their values: a JSON number, or a string holding one ("7.42"), at the
// sampling date's midnight in IST. "NA", "NAN", "-", "" and "BDL" are no value.
func (u *upstreams) ogdServed(t *testing.T) []apiID {
	t.Helper()
	var out []apiID
	for offset := 0; ; {
		q := url.Values{"api-key": {ogdKey}, "format": {"json"}, "offset": {strconv.Itoa(offset)}, "limit": {"100"},
			"filters[station_code]": {u.StationCode}}
		b := simCall(t, http.MethodGet, u.OGDBase+"/resource/"+u.Resource+"?"+q.Encode(), nil, http.StatusOK)
		var page struct {
			Total   int                          `json:"total"`
			Records []map[string]json.RawMessage `json:"records"`
		}
		require.NoError(t, json.Unmarshal(b, &page), "an OGD page: %.200s", b)
		for _, r := range page.Records {
			var date string
			require.NoError(t, json.Unmarshal(r["sampling_date"], &date), "sampling_date of %v", r)
			day, err := time.ParseInLocation("02-01-2006", date, ist)
			require.NoError(t, err)
			for param, field := range u.Params {
				if v, ok := jsonNumber(r[field]); ok {
					out = append(out, apiID{param, day.UnixMicro(), v})
				}
			}
		}
		offset += len(page.Records)
		if offset >= page.Total || len(page.Records) == 0 {
			require.Equal(t, page.Total, offset, "the OGD resource ended early")
			return out
		}
	}
}

// jsonNumber reads a JSON number, or a string holding one, as a finite number.
func jsonNumber(raw json.RawMessage) (float64, bool) {
	text := string(bytes.TrimSpace(raw))
	if s, err := strconv.Unquote(text); err == nil {
		text = s
	}
	v, err := strconv.ParseFloat(text, 64)
	return v, err == nil && !math.IsNaN(v) && !math.IsInf(v, 0)
}

// satID is a satellite estimate: its parameter and the week it describes (the week's
// Monday 00:00 UTC, ISO 8601).
type satID struct {
	param string
	week  int64 // Unix microseconds
}

// weekOf is the Monday 00:00 UTC of t's week.
func weekOf(t time.Time) time.Time {
	d := t.UTC().Truncate(24 * time.Hour)
	return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
}

// satProduct is a collection the satellite source reads: its resolution and how a
// scene's band means become estimates (science.md §3).
type satProduct struct {
	collection  string
	resolutionM float64
	bands       int
	estimate    func(means []float64, day time.Time) map[string]float64
}

var satProducts = []satProduct{
	{"sentinel-2-l2a", 10, 3, func(m []float64, day time.Time) map[string]float64 {
		// L2A reflectance = (DN + BOA_ADD_OFFSET) / 10000, the offset -1000 from
		// processing baseline 04.00 (25 January 2022) on.
		offset := 0.0
		if !day.Before(time.Date(2022, 1, 25, 0, 0, 0, 0, time.UTC)) {
			offset = -1000
		}
		red, redEdge := (m[0]+offset)/10000, (m[1]+offset)/10000
		out := map[string]float64{}
		// Nechad et al. (2016) on B4: T = A·ρ/(1 − ρ/C), A 366.14, C 0.19563.
		if turb := 366.14 * red / (1 - red/0.19563); red > 0 && turb >= 0 && !math.IsInf(turb, 0) {
			out["turbidity"] = turb
		}
		// Mishra & Mishra (2012): NDCI = (B5 − B4)/(B5 + B4), Chl-a = 14.039 + 86.115·NDCI + 194.325·NDCI².
		if red > 0 && redEdge > 0 {
			ndci := (redEdge - red) / (redEdge + red)
			out["chla"] = 14.039 + 86.115*ndci + 194.325*ndci*ndci
		}
		return out
	}},
	{"landsat-ot-l2", 30, 1, func(m []float64, _ time.Time) map[string]float64 {
		// Collection-2 Level-2 ST_B10: K = DN·0.00341802 + 149.0; DN 0 is no data.
		if m[0] <= 0 {
			return nil
		}
		return map[string]float64{"temp": m[0]*0.00341802 + 149.0 - 273.15}
	}},
}

// satelliteServed asks ph-sim stats, as the cloud does, for the daily statistics of the
// test station's area in every week from first's to last's, and returns the estimate of
// each parameter and week: the median of the estimates of the week's scenes that
// computed, have no masked mean and at least MinPixels valid pixels. Scenes above
// MaxCloudPct are left out by the service.
func (u *upstreams) satelliteServed(t *testing.T, first, last time.Time) map[satID]float64 {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	b := simCall(t, http.MethodPost, u.TokenURL, url.Values{"grant_type": {"client_credentials"},
		"client_id": {u.SatClient}, "client_secret": {u.SatSecret}}, http.StatusOK)
	require.NoError(t, json.Unmarshal(b, &tok), "token: %s", b)
	lat := 0.0
	for _, p := range u.Area {
		lat += p[1] / float64(len(u.Area))
	}
	out := map[satID]float64{}
	for _, p := range satProducts {
		// Degrees of the resolution at the area's latitude (111.32 km a degree of arc).
		resy := p.resolutionM / 111320
		resx := resy / math.Cos(lat*math.Pi/180)
		for w := weekOf(first); !w.After(weekOf(last)); w = w.AddDate(0, 0, 7) {
			req, err := json.Marshal(map[string]any{
				"input": map[string]any{
					"bounds": map[string]any{"geometry": map[string]any{"type": "Polygon", "coordinates": [][][2]float64{u.Area}},
						"properties": map[string]any{"crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
					"data": []any{map[string]any{"type": p.collection, "dataFilter": map[string]any{"maxCloudCoverage": u.MaxCloudPct}}},
				},
				"aggregation": map[string]any{
					"timeRange":           map[string]any{"from": w.Format(time.RFC3339), "to": w.AddDate(0, 0, 7).Format(time.RFC3339)},
					"aggregationInterval": map[string]any{"of": "P1D"},
					"evalscript":          `//VERSION=3 function setup() { return {output: [{id: "water", bands: 3}, {id: "dataMask", bands: 1}]}; }`,
					"resx":                resx, "resy": resy,
				},
			})
			require.NoError(t, err)
			for param, vs := range u.sceneEstimates(t, tok.AccessToken, req, p) {
				out[satID{param, w.UnixMicro()}] = median(vs)
			}
		}
	}
	return out
}

// sceneEstimates posts one statistics request and returns the estimates of the scenes
// that count, by parameter.
func (u *upstreams) sceneEstimates(t *testing.T, token string, req []byte, p satProduct) map[string][]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u.StatsBase+"/api/v1/statistics", bytes.NewReader(req))
	require.NoError(t, err)
	hreq.Header.Set("Authorization", "Bearer "+token)
	hreq.Header.Set("Content-Type", "application/json")
	body := simSend(t, hreq, http.StatusOK)
	var res struct {
		Data []struct {
			Interval struct {
				From time.Time `json:"from"`
			} `json:"interval"`
			Outputs map[string]struct {
				Bands map[string]struct {
					Stats struct {
						Mean        json.RawMessage `json:"mean"` // a number, or "NaN" where every pixel is masked
						SampleCount int             `json:"sampleCount"`
						NoDataCount int             `json:"noDataCount"`
					} `json:"stats"`
				} `json:"bands"`
			} `json:"outputs"`
			Error *struct{} `json:"error"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &res), "statistics response to %s: %.300s", req, body)
	out := map[string][]float64{}
scenes:
	for _, iv := range res.Data {
		if iv.Error != nil {
			continue
		}
		means := make([]float64, p.bands)
		for i := range means {
			b, ok := iv.Outputs["water"].Bands["B"+strconv.Itoa(i)]
			mean, finite := jsonNumber(b.Stats.Mean)
			if !ok || !finite || b.Stats.SampleCount-b.Stats.NoDataCount < u.MinPixels {
				continue scenes
			}
			means[i] = mean
		}
		for param, v := range p.estimate(means, iv.Interval.From) {
			out[param] = append(out[param], v)
		}
	}
	return out
}

// median is the middle value, or the mean of the middle two.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

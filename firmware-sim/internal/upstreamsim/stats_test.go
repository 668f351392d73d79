package upstreamsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/shared/telemetry"
)

func newStatistics(t *testing.T, cfg StatisticsConfig) (*Statistics, *httptest.Server, *clock) {
	t.Helper()
	c := &clock{t: simStart}
	cfg.Now = c.now
	s, err := NewStatistics(cfg, nil)
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv, c
}

func token(t *testing.T, base string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(base+"/oauth/token", form)
	require.NoError(t, err)
	defer resp.Body.Close()
	var v map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	return resp.StatusCode, v
}

var creds = url.Values{"grant_type": {"client_credentials"}, "client_id": {"sh-1"}, "client_secret": {"s3"}}

// circle is a polygon of n vertices around a point, [lon, lat].
func circle(lat, lon, radiusM float64, n int) [][2]float64 {
	var ring [][2]float64
	for i := 0; i <= n; i++ {
		a := 2 * math.Pi * float64(i%n) / float64(n)
		ring = append(ring, [2]float64{
			lon + radiusM*math.Cos(a)/(111320*math.Cos(lat*math.Pi/180)),
			lat + radiusM*math.Sin(a)/110540,
		})
	}
	return ring
}

func statsBody(collection string, from, to time.Time, maxCloud float64, res float64) []byte {
	pune, _ := device.Lookup("MH-PUNE-001")
	req := map[string]any{
		"input": map[string]any{
			"bounds": map[string]any{
				"geometry":   map[string]any{"type": "Polygon", "coordinates": [][][2]float64{circle(pune.Lat, pune.Lon, 150, 32)}},
				"properties": map[string]any{"crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
			},
			"data": []any{map[string]any{"type": collection, "dataFilter": map[string]any{"maxCloudCoverage": maxCloud}}},
		},
		"aggregation": map[string]any{
			"timeRange":           map[string]any{"from": from.Format(time.RFC3339), "to": to.Format(time.RFC3339)},
			"aggregationInterval": map[string]any{"of": "P1D"},
			"evalscript":          `//VERSION=3\nfunction setup(){return {input:[...], output:[{id:"water", bands:3},{id:"dataMask",bands:1}]}}`,
			"resx":                res / (111320 * math.Cos(pune.Lat*math.Pi/180)), "resy": res / 110540,
		},
	}
	b, _ := json.Marshal(req)
	return b
}

func statistics(t *testing.T, base, tok string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/statistics", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

func TestTokens(t *testing.T) {
	_, srv, clk := newStatistics(t, StatisticsConfig{ClientID: "sh-1", ClientSecret: "s3", TokenTTL: 10 * time.Minute})
	code, v := token(t, srv.URL, creds)
	require.Equal(t, 200, code)
	assert.Equal(t, "Bearer", v["token_type"])
	assert.Equal(t, 600.0, v["expires_in"])
	tok := v["access_token"].(string)
	assert.Len(t, tok, 48)

	code, v = token(t, srv.URL, url.Values{"grant_type": {"client_credentials"}, "client_id": {"sh-1"}, "client_secret": {"no"}})
	assert.Equal(t, 401, code)
	assert.Equal(t, "invalid_client", v["error"])
	code, v = token(t, srv.URL, url.Values{"grant_type": {"password"}})
	assert.Equal(t, 400, code)
	assert.Equal(t, "unsupported_grant_type", v["error"])

	body := statsBody(CollectionS2L2A, simStart.AddDate(0, 0, -7), simStart, 100, 10)
	code, _, _ = statistics(t, srv.URL, tok, body)
	assert.Equal(t, 200, code)
	code, _, b := statistics(t, srv.URL, "", body)
	assert.Equal(t, 401, code)
	assert.Contains(t, string(b), `"code":"COMMON_UNAUTHORIZED"`)
	clk.t = simStart.Add(10 * time.Minute)
	code, _, b = statistics(t, srv.URL, tok, body)
	assert.Equal(t, 401, code, "an expired token")
	assert.Contains(t, string(b), "expired")
}

// statsResponse is the response shape of the science notes, decoded loosely.
type statsResponse struct {
	Status string `json:"status"`
	Data   []struct {
		Interval struct{ From, To time.Time } `json:"interval"`
		Outputs  map[string]struct {
			Bands map[string]struct {
				Stats map[string]any `json:"stats"`
			} `json:"bands"`
		} `json:"outputs"`
		Error *struct{ Type string } `json:"error"`
	} `json:"data"`
}

func TestStatisticsIntervals(t *testing.T) {
	s, srv, _ := newStatistics(t, StatisticsConfig{Seed: 4})
	_, v := token(t, srv.URL, creds)
	tok := v["access_token"].(string)

	// A year without a cloud limit: every fifth day a scene; clear winters, monsoon
	// clouds, masked and failed intervals.
	from := time.Date(2024, 11, 1, 0, 0, 0, 0, time.UTC)
	code, _, body := statistics(t, srv.URL, tok, statsBody(CollectionS2L2A, from, from.AddDate(1, 0, 0), 100, 10))
	require.Equal(t, 200, code, "%s", body)
	var r statsResponse
	require.NoError(t, json.Unmarshal(body, &r))
	assert.InDelta(t, 73, len(r.Data), 1, "one scene every 5 days")
	assert.Equal(t, "PARTIAL", r.Status)
	var failed, masked, clear int
	var turbidities []float64
	for _, d := range r.Data {
		assert.Equal(t, 24*time.Hour, d.Interval.To.Sub(d.Interval.From))
		if d.Error != nil {
			assert.Equal(t, "EXECUTION_ERROR", d.Error.Type)
			assert.Empty(t, d.Outputs)
			failed++
			continue
		}
		out, ok := d.Outputs["water"]
		require.True(t, ok, "the evalscript's output id")
		require.Len(t, out.Bands, 3)
		b0 := out.Bands["B0"].Stats
		if b0["mean"] == "NaN" {
			assert.Equal(t, b0["sampleCount"], b0["noDataCount"], "fully masked")
			masked++
			continue
		}
		clear++
		mean := b0["mean"].(float64)
		assert.Less(t, b0["noDataCount"].(float64), b0["sampleCount"].(float64))
		assert.InDelta(t, 707, b0["sampleCount"].(float64), 5, "a 150 m circle at 10 m")
		// Nechad et al. (2016) on B04 after the −1000 offset of baseline 04.00 gives back
		// the river's turbidity.
		rho := (mean - 1000) / 10000
		turbidities = append(turbidities, 366.14*rho/(1-rho/0.19563))
	}
	assert.Positive(t, failed)
	assert.Positive(t, masked)
	assert.Greater(t, clear, 20)
	m := device.New(device.ForStation("MH-PUNE-001"), 4)
	truth := m.Value(telemetry.Turbidity, time.Date(2025, 2, 10, 5, 25, 0, 0, time.UTC))
	assert.InDelta(t, truth, median(turbidities), truth, "turbidities of the order of the river's")

	// With a 20 % cloud limit the monsoon's scenes are gone.
	_, _, body = statistics(t, srv.URL, tok, statsBody(CollectionS2L2A, time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC), 20, 10))
	require.NoError(t, json.Unmarshal(body, &r))
	assert.Empty(t, r.Data, "July and August are overcast")
	assert.Positive(t, s.Counters().Intervals)
}

func TestStatisticsLandsat(t *testing.T) {
	_, srv, _ := newStatistics(t, StatisticsConfig{})
	_, v := token(t, srv.URL, creds)
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	_, _, body := statistics(t, srv.URL, v["access_token"].(string), statsBody(CollectionLOTL2, from, from.AddDate(0, 2, 0), 100, 30))
	var r statsResponse
	require.NoError(t, json.Unmarshal(body, &r))
	assert.InDelta(t, 59/8.0, len(r.Data), 1, "every 8 days")
	for _, d := range r.Data {
		if d.Error != nil {
			continue
		}
		b := d.Outputs["water"].Bands
		require.Len(t, b, 1)
		if mean, ok := b["B0"].Stats["mean"].(float64); ok {
			// Collection 2 Level-2 ST_B10 scaling: K = DN·0.00341802 + 149.
			c := mean*0.00341802 + 149 - 273.15
			assert.True(t, c > 18 && c < 32, "water surface %.1f °C in winter", c)
		}
	}
}

func TestStatisticsRateLimitAndErrors(t *testing.T) {
	_, srv, _ := newStatistics(t, StatisticsConfig{FaultConfig: FaultConfig{RetryAfter: 2500 * time.Millisecond}})
	_, v := token(t, srv.URL, creds)
	tok := v["access_token"].(string)
	control(t, srv.URL, url.Values{"kind": {"429"}, "path": {"/api/v1/statistics"}})
	body := statsBody(CollectionS2L2A, simStart.AddDate(0, 0, -7), simStart, 20, 10)
	code, h, b := statistics(t, srv.URL, tok, body)
	assert.Equal(t, 429, code)
	assert.Equal(t, "2500", h.Get("Retry-After"), "milliseconds")
	assert.JSONEq(t, `{"status":429,"reason":"Too Many Requests","message":"You have exceeded the rate limit of your account.","code":"RATE_LIMIT_EXCEEDED"}`, string(b))
	code, _, _ = statistics(t, srv.URL, tok, body)
	assert.Equal(t, 200, code)

	for name, bad := range map[string]string{
		"not JSON":       `{"input":`,
		"no collection":  `{"input":{"data":[]},"aggregation":{"aggregationInterval":{"of":"P1D"}}}`,
		"other interval": strings.Replace(string(body), `"P1D"`, `"P7D"`, 1),
		"other data":     strings.Replace(string(body), CollectionS2L2A, "sentinel-1-grd", 1),
		"reversed range": strings.Replace(string(body), simStart.Format(time.RFC3339), "2000-01-01T00:00:00Z", 1),
	} {
		code, _, b := statistics(t, srv.URL, tok, []byte(bad))
		assert.Equal(t, 400, code, name)
		assert.Contains(t, string(b), `"code":"COMMON_BAD_PAYLOAD"`, name)
	}
	big := []byte(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", maxStatsBody)))
	code, _, _ = statistics(t, srv.URL, tok, big)
	assert.Equal(t, 413, code)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

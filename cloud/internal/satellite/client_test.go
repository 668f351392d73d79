package satellite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/apicall"
	"github.com/purehealth/purehealth/cloud/internal/apicall/apicalltest"
	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/cloud/internal/upstream/upstreamtest"
	"github.com/purehealth/purehealth/shared/telemetry"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// The fixtures' week: Monday 3 March 2025.
var (
	fixtureWeek = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	pune        = Area{Lat: 18.5293, Lon: 73.8627, RadiusM: 150}
)

// statsReplay answers like the Copernicus token endpoint and Statistical API from
// testdata: the recorded week of each collection, an empty week otherwise, tokens that
// expire, and responses queued by a test. Its clock is time.Now, the bubble's under
// synctest. Safe for concurrent use.
type statsReplay struct {
	t     testing.TB
	ttl   int // expires_in, seconds
	weeks map[string]map[string][]byte

	mu       sync.Mutex
	issued   int
	tokens   map[string]time.Time
	requests []string // "collection from" of each statistics request
	queued   []func(w http.ResponseWriter) bool
}

func newStatsReplay(t testing.TB) *statsReplay {
	return &statsReplay{t: t, ttl: 600, tokens: map[string]time.Time{}, weeks: map[string]map[string][]byte{
		Sentinel2L2A: {"2025-03-03": fixture(t, "s2_week_ok.json"), "2025-03-10": fixture(t, "s2_week_partial.json")},
		LandsatOTL2:  {"2025-03-03": fixture(t, "landsat_week.json")},
	}}
}

func (h *statsReplay) queue(f func(w http.ResponseWriter) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.queued = append(h.queued, f)
}

func (h *statsReplay) counts() (tokens, statistics int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.issued, len(h.requests)
}

func (h *statsReplay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/oauth/token":
		require.NoError(h.t, r.ParseForm())
		if r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_secret") != "s3" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"Invalid client or Invalid client credentials"}`)
			return
		}
		h.mu.Lock()
		h.issued++
		tok := fmt.Sprintf("tok-%d", h.issued)
		h.tokens[tok] = time.Now().Add(time.Duration(h.ttl) * time.Second)
		h.mu.Unlock()
		body := strings.Replace(string(fixture(h.t, "token.json")), `"expires_in":600`, fmt.Sprintf(`"expires_in":%d`, h.ttl), 1)
		body = strings.Replace(body, `"access_token":"eyJ`, `"access_token":"`+tok+`-eyJ`, 1)
		w.Write([]byte(body))
	case statisticsPath:
		var req struct {
			Input struct {
				Data []struct {
					Type string `json:"type"`
				} `json:"data"`
			} `json:"input"`
			Aggregation struct {
				TimeRange struct{ From time.Time } `json:"timeRange"`
			} `json:"aggregation"`
		}
		require.NoError(h.t, json.NewDecoder(r.Body).Decode(&req))
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		tok, _, _ = strings.Cut(tok, "-eyJ")
		h.mu.Lock()
		exp, ok := h.tokens[tok]
		var f func(http.ResponseWriter) bool
		if len(h.queued) > 0 {
			f, h.queued = h.queued[0], h.queued[1:]
		}
		week := req.Aggregation.TimeRange.From.Format(time.DateOnly)
		h.requests = append(h.requests, req.Input.Data[0].Type+" "+week)
		h.mu.Unlock()
		if !ok || !time.Now().Before(exp) {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write(fixture(h.t, "error_401.json"))
			return
		}
		if f != nil && f(w) {
			return
		}
		body, ok := h.weeks[req.Input.Data[0].Type][week]
		if !ok {
			body = fixture(h.t, "empty_week.json")
		}
		w.Write(body)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func replayOptions(h http.Handler, now func() time.Time) Options {
	return Options{
		BaseURL: "https://sh.example", TokenURL: "https://identity.example/oauth/token",
		ClientID: "pure-health", ClientSecret: "s3",
		Areas:    map[string]Area{"MH-PUNE-001": pune},
		Lookback: 2 * week, Settle: 3 * 24 * time.Hour,
		HTTP: apicall.Options{Rate: -1, HTTPClient: apicalltest.Client(h), BackoffBase: 100 * time.Millisecond},
		Now:  now,
	}
}

func newTestClient(t testing.TB, o Options) *Client {
	t.Helper()
	c, err := New(o, nil)
	require.NoError(t, err)
	return c
}

func byParam(rs []upstream.Reading, p telemetry.Param, w time.Time) (upstream.Reading, bool) {
	for _, r := range rs {
		if r.Param == p && r.Time.Equal(w) {
			return r, true
		}
	}
	return upstream.Reading{}, false
}

func TestWeeklyEstimates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newStatsReplay(t)
		// Thursday of the week after the fixture week: that week is still open, the
		// fixture week settled a day ago.
		now := func() time.Time { return time.Date(2025, 3, 13, 12, 0, 0, 0, time.UTC) }
		c := newTestClient(t, replayOptions(h, now))
		b, err := c.Fetch(t.Context(), "")
		require.NoError(t, err)
		_, requests := h.counts()
		assert.Equal(t, 2*3, requests, "two collections, three weeks (24 Feb, 3 and 10 March)")

		turb, ok := byParam(b.Readings, telemetry.Turbidity, fixtureWeek)
		require.True(t, ok)
		// Two clear scenes: DN 1300 and 1500 after baseline 04.00 are ρw 0.03 and 0.05,
		// Nechad 12.9737 and 24.5924 FNU; one scene masked, one with 5 pixels.
		assert.InDelta(t, (12.9737+24.5924)/2, turb.Value, 1e-4)
		assert.Equal(t, "NTU", turb.Unit)
		assert.Equal(t, telemetry.SourceSatellite, turb.Source)
		assert.Equal(t, Sentinel2L2A, turb.Sensor)
		assert.Equal(t, upstream.Origin{RecordID: "sentinel-2-l2a/2025-03-03", Collection: Sentinel2L2A,
			Scene: time.Date(2025, 3, 9, 0, 0, 0, 0, time.UTC), Scenes: 2, Pixels: 247 + 300}, turb.Origin)

		chl, ok := byParam(b.Readings, telemetry.Chla, fixtureWeek)
		require.True(t, ok)
		assert.InDelta(t, (ChlaNDCI(NDCI(0.03, 0.045))+ChlaNDCI(NDCI(0.05, 0.06)))/2, chl.Value, 1e-9)

		temp, ok := byParam(b.Readings, telemetry.Temp, fixtureWeek)
		require.True(t, ok)
		assert.InDelta(t, 26.24288, temp.Value, 1e-9, "ST_B10 44000")
		assert.Equal(t, 40, temp.Origin.Pixels)

		// The open week: one scene of two, the other failed.
		turb, ok = byParam(b.Readings, telemetry.Turbidity, fixtureWeek.Add(week))
		require.True(t, ok)
		assert.Equal(t, 1, turb.Origin.Scenes)

		assert.Equal(t, upstream.Counts{SkipMasked: 1, SkipFewPixels: 1, SkipFailed: 1, SkipNoScene: 3}, b.Skipped)
		assert.Equal(t, "2025-03-10", b.Cursor, "the next round starts at the open week")
		assert.Equal(t, 7, b.Records, "intervals read")
	})
}

func TestTokenRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newStatsReplay(t)
		c := newTestClient(t, replayOptions(h, time.Now))
		fetch := func() {
			t.Helper()
			_, err := c.Fetch(t.Context(), "")
			require.NoError(t, err)
		}
		fetch()
		tokens, _ := h.counts()
		assert.Equal(t, 1, tokens)
		time.Sleep(8 * time.Minute)
		fetch()
		tokens, _ = h.counts()
		assert.Equal(t, 1, tokens, "still valid for two minutes: kept")
		time.Sleep(time.Minute + time.Second)
		fetch()
		tokens, _ = h.counts()
		assert.Equal(t, 2, tokens, "replaced a minute before its expiry")

		// The service revokes the token early: one 401, a new token, the same request.
		h.mu.Lock()
		clear(h.tokens)
		h.mu.Unlock()
		fetch()
		tokens, _ = h.counts()
		assert.Equal(t, 3, tokens)
	})
}

func TestRateLimitRetryAfterMillis(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newStatsReplay(t)
		h.queue(func(w http.ResponseWriter) bool {
			w.Header().Set("Retry-After", "4500")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write(fixture(t, "error_429.json"))
			return true
		})
		o := replayOptions(h, time.Now)
		o.Collections = []string{LandsatOTL2}
		o.Lookback = week
		c := newTestClient(t, o)
		start := time.Now()
		_, err := c.Fetch(t.Context(), "")
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(start), 4500*time.Millisecond, "retry-after counts milliseconds")
		assert.Less(t, time.Since(start), 6*time.Second)
		assert.Equal(t, int64(1), c.Stats().RateLimited)
	})
}

func TestFailuresOfOneWeek(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newStatsReplay(t)
		bad := func(w http.ResponseWriter) bool {
			w.WriteHeader(http.StatusBadRequest)
			w.Write(fixture(t, "error_400.json"))
			return true
		}
		h.queue(bad) // the first request: Sentinel-2, week of 24 February
		now := func() time.Time { return time.Date(2025, 3, 13, 12, 0, 0, 0, time.UTC) }
		c := newTestClient(t, replayOptions(h, now))
		b, err := c.Fetch(t.Context(), "")
		require.Error(t, err)
		assert.ErrorContains(t, err, "MH-PUNE-001 sentinel-2-l2a week of 2025-02-24")
		assert.ErrorContains(t, err, "RENDERER_EXCEPTION: Failed to evaluate script")
		assert.Equal(t, 1, b.Skipped[SkipRequestFailed])
		_, ok := byParam(b.Readings, telemetry.Turbidity, fixtureWeek)
		assert.True(t, ok, "the other weeks are read")
		assert.Equal(t, "2025-02-24", b.Cursor, "the next round starts again at the failed week")
	})
}

func TestBadCredentialsStopTheRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newStatsReplay(t)
		o := replayOptions(h, time.Now)
		o.ClientSecret = "wrong"
		_, err := newTestClient(t, o).Fetch(t.Context(), "")
		require.Error(t, err)
		assert.ErrorIs(t, err, apicall.ErrUnauthorized)
		assert.ErrorContains(t, err, "invalid_client")
		assert.NotContains(t, err.Error(), "wrong", "the secret never shows")
		_, requests := h.counts()
		assert.Zero(t, requests)
	})
}

func TestCacheAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		h := newStatsReplay(t)
		now := func() time.Time { return time.Date(2025, 3, 13, 12, 0, 0, 0, time.UTC) }
		run := func() (upstream.Batch, *Client) {
			cache, err := NewFileCache(dir, 0)
			require.NoError(t, err)
			o := replayOptions(h, now)
			o.Cache = cache
			c := newTestClient(t, o)
			b, err := c.Fetch(t.Context(), "")
			require.NoError(t, err)
			return b, c
		}
		first, c1 := run()
		assert.Equal(t, CacheStats{Misses: 4, Puts: 4}, c1.CacheStats(), "two final weeks, two collections")
		_, requests := h.counts()
		assert.Equal(t, 6, requests)

		// A new process with the same cache directory and no cursor.
		second, c2 := run()
		assert.Equal(t, CacheStats{Hits: 4}, c2.CacheStats())
		_, requests = h.counts()
		assert.Equal(t, 6+2, requests, "only the open week is asked for again")
		assert.Equal(t, first.Readings, second.Readings)
	})
}

func TestPartialAnswersAreNotCached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cache, err := NewFileCache(t.TempDir(), 0)
		require.NoError(t, err)
		h := newStatsReplay(t)
		o := replayOptions(h, func() time.Time { return time.Date(2025, 4, 10, 12, 0, 0, 0, time.UTC) })
		o.Collections = []string{Sentinel2L2A}
		o.Lookback = 4 * week
		o.Cache = cache
		c := newTestClient(t, o)
		_, err = c.Fetch(t.Context(), "2025-03-10")
		require.NoError(t, err)
		assert.Equal(t, int64(3), c.CacheStats().Puts, "weeks of 10 to 31 March are final; the PARTIAL one is not kept")
		_, err = c.Fetch(t.Context(), "2025-03-10")
		require.NoError(t, err)
		assert.Equal(t, int64(3), c.CacheStats().Hits, "the PARTIAL week is asked for again")
	})
}

func TestNewChecksOptions(t *testing.T) {
	_, err := New(Options{BaseURL: "ftp://x", MaxCloudPct: 120, MinPixels: -1, Turbidity: "secchi",
		Collections: []string{"modis"},
		Areas: map[string]Area{"bad id": {Lat: 95, Lon: 0, RadiusM: 10},
			"MH-PUNE-001": {RadiusM: 10, Polygon: [][2]float64{{73, 18}, {74, 18}, {74, 19}}}}}, nil)
	require.Error(t, err)
	for _, want := range []string{"base_url", "client_id is required", "client_secret or client_secret_file is required", "max_cloud_pct 120", "min_pixels -1", `turbidity "secchi"`,
		`collections: "modis"`, `"bad id" is not a station id`, "lat 95", "polygon and radius_m are exclusive"} {
		assert.ErrorContains(t, err, want)
	}
}

func TestAreaRing(t *testing.T) {
	ring := pune.Ring()
	require.Len(t, ring, circleVertices+1)
	assert.Equal(t, ring[0], ring[len(ring)-1], "closed")
	var twice float64
	for i := range len(ring) - 1 {
		twice += ring[i][0]*ring[i+1][1] - ring[i+1][0]*ring[i][1]
		// Every vertex lies radius_m from the station (haversine).
		lat1, lon1 := pune.Lat*math.Pi/180, pune.Lon*math.Pi/180
		lat2, lon2 := ring[i][1]*math.Pi/180, ring[i][0]*math.Pi/180
		a := math.Pow(math.Sin((lat2-lat1)/2), 2) + math.Cos(lat1)*math.Cos(lat2)*math.Pow(math.Sin((lon2-lon1)/2), 2)
		assert.InDelta(t, 150, 2*earthRadiusM*math.Asin(math.Sqrt(a)), 0.01)
	}
	assert.Positive(t, twice, "counter-clockwise")

	poly := Area{Polygon: [][2]float64{{73.86, 18.52}, {73.87, 18.52}, {73.87, 18.53}}}
	require.NoError(t, poly.Validate())
	assert.Len(t, poly.Ring(), 4, "closed")
	assert.Error(t, Area{Lat: 18, Lon: 73, RadiusM: MaxRadiusM + 1}.Validate())
}

func TestParseResponse(t *testing.T) {
	r, err := ParseResponse(fixture(t, "s2_week_ok.json"))
	require.NoError(t, err)
	require.Len(t, r.Intervals, 4)
	masked := r.Intervals[1].Bands[outputID]["B0"]
	assert.True(t, math.IsNaN(masked.Mean), `"NaN" as a string`)
	assert.Zero(t, masked.Valid())
	r, err = ParseResponse(fixture(t, "s2_week_partial.json"))
	require.NoError(t, err)
	assert.Equal(t, "PARTIAL", r.Status)
	assert.Equal(t, "EXECUTION_ERROR", r.Intervals[0].Error)

	for name, body := range map[string]string{
		"noData over samples": `{"data":[{"interval":{"from":"2025-03-04T00:00:00Z","to":"2025-03-05T00:00:00Z"},"outputs":{"water":{"bands":{"B0":{"stats":{"mean":1,"sampleCount":3,"noDataCount":4}}}}}}]}`,
		"reversed interval":   `{"data":[{"interval":{"from":"2025-03-05T00:00:00Z","to":"2025-03-04T00:00:00Z"}}]}`,
		"a word for a mean":   `{"data":[{"interval":{"from":"2025-03-04T00:00:00Z","to":"2025-03-05T00:00:00Z"},"outputs":{"water":{"bands":{"B0":{"stats":{"mean":"high"}}}}}}]}`,
		"infinite mean":       `{"data":[{"interval":{"from":"2025-03-04T00:00:00Z","to":"2025-03-05T00:00:00Z"},"outputs":{"water":{"bands":{"B0":{"stats":{"mean":"Infinity"}}}}}}]}`,
		"truncated":           `{"data":[{"interval":`,
	} {
		_, err := ParseResponse([]byte(body))
		assert.Error(t, err, name)
	}
}

func TestParseToken(t *testing.T) {
	tok, err := ParseToken(fixture(t, "token.json"))
	require.NoError(t, err)
	assert.Equal(t, 600*time.Second, tok.ExpiresIn)
	assert.True(t, strings.HasPrefix(tok.Access, "eyJ"))
	for name, body := range map[string]string{
		"no token":       `{"expires_in":600}`,
		"other type":     `{"access_token":"x","token_type":"mac","expires_in":600}`,
		"no expiry":      `{"access_token":"x"}`,
		"zero expiry":    `{"access_token":"x","expires_in":0}`,
		"header breaker": `{"access_token":"x\r\nX-Evil: 1","expires_in":600}`,
	} {
		_, err := ParseToken([]byte(body))
		assert.Error(t, err, name)
	}
	tok, err = ParseToken([]byte(`{"access_token":"x","expires_in":1e12}`))
	require.NoError(t, err)
	assert.Equal(t, maxTokenLife, tok.ExpiresIn)
}

func FuzzStatisticsResponse(f *testing.F) {
	for _, name := range []string{"s2_week_ok.json", "s2_week_partial.json", "landsat_week.json", "empty_week.json", "error_400.json"} {
		f.Add(fixture(f, name))
	}
	ps := products(Nechad)
	c := &Client{opts: Options{MinPixels: DefaultMinPixels}}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseResponse(body)
		if err != nil {
			return
		}
		for _, p := range ps {
			b := upstream.Batch{Skipped: upstream.Counts{}}
			c.estimates("MH-PUNE-001", p, fixtureWeek, r, &b)
			if b.Records != len(r.Intervals) {
				t.Fatalf("%d intervals, %d counted", len(r.Intervals), b.Records)
			}
			for _, rd := range b.Readings {
				info, ok := telemetry.Info(rd.Param)
				if !ok || rd.Unit != info.Unit || math.IsNaN(rd.Value) || math.IsInf(rd.Value, 0) || rd.Origin.Scenes < 1 {
					t.Fatalf("bad reading %+v", rd)
				}
			}
		}
	})
}

func FuzzTokenResponse(f *testing.F) {
	f.Add(fixture(f, "token.json"))
	f.Add([]byte(`{"error":"invalid_client","error_description":"Invalid client or Invalid client credentials"}`))
	f.Add([]byte(`{"access_token":"a","expires_in":"600"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := ParseToken(body)
		if err != nil {
			return
		}
		if tok.Access == "" || tok.ExpiresIn <= 0 || tok.ExpiresIn > maxTokenLife || strings.ContainsAny(tok.Access, "\r\n ") {
			t.Fatalf("bad token %+v", tok)
		}
	})
}

// The collector keeps the sink in step with revisions of an open week.
func TestOpenWeekRevisions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newStatsReplay(t)
		now := time.Date(2025, 3, 13, 12, 0, 0, 0, time.UTC)
		o := replayOptions(h, func() time.Time { return now })
		o.Collections = []string{Sentinel2L2A}
		c := newTestClient(t, o)
		sink := &upstreamtest.Sink{}
		col, err := upstream.NewCollector("satellite", c, sink, &upstreamtest.Cursors{}, nil, o.Now)
		require.NoError(t, err)
		require.NoError(t, col.Collect(t.Context()))
		// The failed interval of the open week computes now.
		clearScene := `"outputs": {"water": {"bands": {
			"B0": {"stats": {"min": 1600, "max": 1800, "mean": 1700, "stDev": 40, "sampleCount": 707, "noDataCount": 400}},
			"B1": {"stats": {"min": 1700, "max": 1900, "mean": 1800, "stDev": 40, "sampleCount": 707, "noDataCount": 400}},
			"B2": {"stats": {"min": 1100, "max": 1200, "mean": 1150, "stDev": 20, "sampleCount": 707, "noDataCount": 400}}}}}`
		h.mu.Lock()
		h.weeks[Sentinel2L2A]["2025-03-10"] = bytes.Replace(fixture(t, "s2_week_partial.json"),
			[]byte(`"error": {"type": "EXECUTION_ERROR"}`), []byte(clearScene), 1)
		h.mu.Unlock()
		require.NoError(t, col.Collect(t.Context()))
		assert.EqualValues(t, 2, col.Status().Revised, "turbidity and chlorophyll-a of the open week")
	})
}

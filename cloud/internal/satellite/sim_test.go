package satellite

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/apicall"
	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/cloud/internal/upstream/upstreamtest"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// The four demo stations, as in configs/.
var demoAreas = map[string]Area{
	"MH-PUNE-001":     {Lat: 18.5293, Lon: 73.8627, RadiusM: 150},
	"MH-NASHIK-001":   {Lat: 20.0077, Lon: 73.7924, RadiusM: 150},
	"MH-SANGLI-001":   {Lat: 16.8600, Lon: 74.5676, RadiusM: 150},
	"MH-KOLHAPUR-001": {Lat: 16.7120, Lon: 74.2315, RadiusM: 150},
}

func simOptions(sim *upstreamtest.Sim, now time.Time) Options {
	return Options{
		BaseURL: sim.URLs[0], TokenURL: sim.URLs[1], ClientID: "pure-health", ClientSecret: "s3",
		Areas: demoAreas, Lookback: 6 * week,
		HTTP: apicall.Options{Rate: -1, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond},
		Now:  func() time.Time { return now },
	}
}

func simFault(t *testing.T, sim *upstreamtest.Sim, form url.Values) {
	t.Helper()
	resp, err := http.PostForm(sim.URLs[0]+"/_sim/fault", form)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
}

func TestAgainstTheSimulator(t *testing.T) {
	sim := upstreamtest.StartSim(t, "stats", 2, "--client-id", "pure-health", "--client-secret", "s3",
		"--retry-after", "300ms", "--seed", "2")
	dir := t.TempDir()
	dry := time.Date(2025, 3, 13, 12, 0, 0, 0, time.UTC)

	newClient := func(now time.Time) *Client {
		cache, err := NewFileCache(dir, 0)
		require.NoError(t, err)
		o := simOptions(sim, now)
		o.Cache = cache
		return newTestClient(t, o)
	}
	simFault(t, sim, url.Values{"kind": {"429"}, "path": {statisticsPath}})
	c := newClient(dry)
	b, err := c.Fetch(t.Context(), "")
	require.NoError(t, err)
	assert.Equal(t, int64(1), c.Stats().RateLimited, "a 429 with retry-after in ms, then success")

	counts := map[string]map[telemetry.Param]int{}
	for _, r := range b.Readings {
		if counts[r.Station] == nil {
			counts[r.Station] = map[telemetry.Param]int{}
		}
		counts[r.Station][r.Param]++
		info, _ := telemetry.Info(r.Param)
		assert.True(t, info.Plausible.Contains(r.Value), "%s %s %v", r.Station, r.Param, r.Value)
		assert.Positive(t, r.Origin.Pixels)
		if r.Param == telemetry.Temp {
			assert.True(t, r.Value > 18 && r.Value < 34, "%s water at %.1f °C in March", r.Station, r.Value)
		}
	}
	for id := range demoAreas {
		for _, p := range []telemetry.Param{telemetry.Turbidity, telemetry.Chla, telemetry.Temp} {
			assert.GreaterOrEqual(t, counts[id][p], 3, "%s %s: most of seven clear dry-season weeks", id, p)
		}
	}

	// A restart: a new client over the same cache asks only for the weeks not yet final.
	c2 := newClient(dry)
	b2, err := c2.Fetch(t.Context(), "")
	require.NoError(t, err)
	first, second := c.CacheStats(), c2.CacheStats()
	open := 2 // 3 and 10 March: within Settle of their end
	assert.Equal(t, int64(5*len(demoAreas)*2), first.Misses, "five final weeks")
	assert.Equal(t, first.Puts, second.Hits, "every final week kept comes from the cache")
	assert.Equal(t, first.Misses-first.Puts, second.Misses, "only PARTIAL answers are asked for again")
	assert.Equal(t, 1+int64(open*len(demoAreas)*2)+second.Misses, c2.Stats().Requests,
		"a token, the open weeks and the PARTIAL ones")
	assert.Len(t, b2.Readings, len(b.Readings))
}

func TestSimulatedMonsoon(t *testing.T) {
	sim := upstreamtest.StartSim(t, "stats", 2, "--seed", "5")
	monsoon := time.Date(2025, 8, 28, 12, 0, 0, 0, time.UTC)

	// The default cloud limit: the monsoon's overcast tiles never come.
	b, err := newTestClient(t, simOptions(sim, monsoon)).Fetch(t.Context(), "")
	require.NoError(t, err)
	assert.Greater(t, b.Skipped[SkipNoScene], 30, "weeks without a clear scene: %v", b.Skipped)

	// Without a cloud limit the scenes come, many of them masked over the river or failed.
	o := simOptions(sim, monsoon)
	o.MaxCloudPct = 100
	o.Lookback = 12 * week
	b, err = newTestClient(t, o).Fetch(t.Context(), "")
	require.NoError(t, err)
	assert.Positive(t, b.Skipped[SkipMasked], "%v", b.Skipped)
	assert.Positive(t, b.Skipped[SkipFailed], "%v", b.Skipped)
	assert.Positive(t, b.Skipped[SkipFewPixels]+len(b.Readings), "%v", b.Skipped)
}

func TestSimulatorRefusesUnknownClients(t *testing.T) {
	sim := upstreamtest.StartSim(t, "stats", 2, "--client-id", "pure-health", "--client-secret", "other")
	_, err := newTestClient(t, simOptions(sim, time.Now())).Fetch(t.Context(), "")
	require.Error(t, err)
	assert.ErrorIs(t, err, apicall.ErrUnauthorized)
	assert.ErrorContains(t, err, "invalid_client")
	var _ upstream.Source = newTestClient(t, simOptions(sim, time.Now()))
}

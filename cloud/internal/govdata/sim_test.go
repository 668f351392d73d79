package govdata

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/apicall"
	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/cloud/internal/upstream/upstreamtest"
	"github.com/purehealth/purehealth/shared/telemetry"
)

const simKey = "demo-key"

// simSource is the NWMP resource of `ph-sim ogd` as a deployment configures it.
func simSource(t *testing.T, sim *upstreamtest.Sim) Options {
	t.Helper()
	base, resource, ok := strings.Cut(sim.URLs[0], "/resource/")
	require.True(t, ok, sim.URLs[0])
	o := Defaults(OGD)
	o.BaseURL, o.ResourceID, o.APIKey = base, resource, simKey
	o.HTTP = apicall.Options{Rate: -1, Attempts: 3, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
	o.Mapping = Mapping{
		StationField: "station_code", TimeField: "sampling_date", TimeFormat: "02-01-2006",
		Params: map[string]string{"ph": "ph", "do": "dissolved_oxygen", "bod": "bod", "fc": "fecal_coliform",
			"temp": "temperature", "conductivity": "conductivity"},
		Units: map[string]string{"conductivity": "µmhos/cm"},
		Stations: map[string]string{"2683": "MH-PUNE-001", "1190": "MH-NASHIK-001", "1152": "MH-SANGLI-001",
			"1153": "MH-KOLHAPUR-001"},
	}
	return o
}

func simFault(t *testing.T, sim *upstreamtest.Sim, form url.Values) {
	t.Helper()
	base, _, _ := strings.Cut(sim.URLs[0], "/resource/")
	resp, err := http.PostForm(base+"/_sim/fault", form)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
}

func simFaultsServed(t *testing.T, sim *upstreamtest.Sim) map[string]int {
	t.Helper()
	base, _, _ := strings.Cut(sim.URLs[0], "/resource/")
	resp, err := http.Get(base + "/_sim/fault")
	require.NoError(t, err)
	defer resp.Body.Close()
	var v struct{ Served map[string]int }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	return v.Served
}

func TestAgainstTheOGDSimulator(t *testing.T) {
	sim := upstreamtest.StartSim(t, "ogd", 1, "--api-key", simKey, "--months", "12", "--revise-after", "-1s",
		"--retry-after", "1s")
	o := simSource(t, sim)
	o.PageSize = 20
	o.HTTP.Attempts = 4
	c := newTestClient(t, o)
	sink, cursors := &upstreamtest.Sink{}, &upstreamtest.Cursors{}
	col, err := upstream.NewCollector("cpcb-nwmp", c, sink, cursors, nil, nil)
	require.NoError(t, err)

	// Faults along the way: a 429, two gateway errors, a malformed page.
	simFault(t, sim, url.Values{"kind": {"429"}})
	simFault(t, sim, url.Values{"kind": {"502"}, "count": {"2"}})
	simFault(t, sim, url.Values{"kind": {"malformed"}, "offset": {"40"}})
	start := time.Now()
	require.NoError(t, col.Collect(t.Context()))
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "the 429's Retry-After (1 s) was honoured")
	assert.Equal(t, map[string]int{"429": 1, "502": 2, "malformed": 1}, simFaultsServed(t, sim))

	st := col.Status()
	// Six stations, a year of monthly samples (this month's may be yet to come).
	assert.True(t, st.Records >= 6*11 && st.Records <= 6*12, "every page read: %d records", st.Records)
	assert.True(t, st.Skipped[OtherStation] >= 2*11 && st.Skipped[OtherStation] <= 2*12, "%v", st.Skipped)
	for _, kind := range []string{MissingNA, MissingNaN, MissingDash, MissingEmpty, BelowDetection} {
		assert.Positive(t, st.Skipped[kind], "%s counted: %v", kind, st.Skipped)
	}
	bod := map[string][]float64{}
	for _, r := range sink.Current() {
		assert.Equal(t, telemetry.SourceAPI, r.Source)
		assert.NotEmpty(t, r.Origin.RecordID)
		info, _ := telemetry.Info(r.Param)
		assert.Equal(t, info.Unit, r.Unit)
		if r.Param == telemetry.BOD {
			bod[r.Station] = append(bod[r.Station], r.Value)
		}
	}
	require.Len(t, bod, 4, "every mapped station")
	assert.Greater(t, mean(bod["MH-PUNE-001"]), 2*mean(bod["MH-SANGLI-001"]), "Pune's sewage against the Krishna")

	require.NoError(t, col.Collect(t.Context()))
	assert.True(t, col.Status().LastRound.SourceUnchanged, "not republished: one page read")

	// CPCB republishes with a corrected BOD: the next round finds it.
	resp, err := http.Post(strings.TrimSuffix(sim.URLs[0], "/resource/"+o.ResourceID)+"/_sim/revise", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.NoError(t, col.Collect(t.Context()))
	st = col.Status()
	assert.EqualValues(t, 1, st.Revised)
	require.Len(t, sink.Revised(), 1)
	k := sink.Revised()[0]
	assert.Equal(t, "MH-PUNE-001", k.Station)
	assert.Equal(t, telemetry.BOD, k.Param)
	assert.Positive(t, st.LastRound.Stored.Unchanged, "the rest is unchanged")
	require.NoError(t, col.Collect(t.Context()))
	assert.True(t, col.Status().LastRound.SourceUnchanged, "no republication since: one page read")
}

func keys(rs []upstream.Reading) map[upstream.Key]float64 {
	out := map[upstream.Key]float64{}
	for _, r := range rs {
		out[r.Key()] = r.Value
	}
	return out
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func TestOGDSimulatorFailures(t *testing.T) {
	sim := upstreamtest.StartSim(t, "ogd", 1, "--api-key", simKey, "--months", "6")

	o := simSource(t, sim)
	o.APIKey = "stolen"
	_, err := newTestClient(t, o).Fetch(t.Context(), "")
	assert.ErrorIs(t, err, apicall.ErrUnauthorized)
	assert.ErrorContains(t, err, "Key not authorised")
	assert.NotContains(t, err.Error(), "stolen")

	simFault(t, sim, url.Values{"kind": {"malformed"}, "offset": {"10"}, "count": {"3"}})
	o = simSource(t, sim)
	o.PageSize = 10
	_, err = newTestClient(t, o).Fetch(t.Context(), "")
	assert.ErrorIs(t, err, apicall.ErrMalformed)
	assert.ErrorContains(t, err, "page at offset 10")

	// With the station filter only our four stations' records are read.
	all, err := newTestClient(t, simSource(t, sim)).Fetch(t.Context(), "")
	require.NoError(t, err)
	o = simSource(t, sim)
	o.FilterStations = true
	b, err := newTestClient(t, o).Fetch(t.Context(), "")
	require.NoError(t, err)
	assert.Equal(t, all.Records-all.Skipped[OtherStation], b.Records)
	assert.Zero(t, b.Skipped[OtherStation])
	assert.Equal(t, keys(all.Readings), keys(b.Readings), "the same readings")
}

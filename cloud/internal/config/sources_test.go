package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/apicall"
	"github.com/purehealth/purehealth/cloud/internal/config"
	"github.com/purehealth/purehealth/cloud/internal/govdata"
	"github.com/purehealth/purehealth/cloud/internal/satellite"
	"github.com/purehealth/purehealth/cloud/internal/store"
)

// exampleBlock returns the commented-out block of the example that starts with the line
// "# KEY:", uncommented, up to the first blank line.
func exampleBlock(t *testing.T, key string) string {
	t.Helper()
	data, err := os.ReadFile(exampleFile)
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(data), "\n# "+key+":")
	require.True(t, ok, "the example shows %s", key)
	block, _, _ := strings.Cut(key+":"+rest, "\n\n")
	var out strings.Builder
	for _, line := range strings.Split(block, "\n") {
		out.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "#"), " ") + "\n")
	}
	return out.String()
}

// The example's upstream and satellite blocks, uncommented, load and become the options
// the clients take; what they leave out keeps the clients' defaults.
func TestExampleSources(t *testing.T) {
	doc := "database_url: postgres://x@127.0.0.1/db\n" + exampleBlock(t, "upstream") + exampleBlock(t, "satellite")
	cfg, err := config.Parse([]byte(doc))
	require.NoError(t, err, doc)

	require.Len(t, cfg.Upstream, 1)
	u := cfg.Upstream[0]
	assert.Equal(t, "cpcb-nwmp", u.Name)
	assert.Equal(t, 24*time.Hour, u.Interval.Std())
	o := u.Options()
	assert.Equal(t, govdata.OGD, o.Kind)
	assert.Equal(t, "api-key", o.APIKeyParam, "OGD's default key parameter")
	assert.Equal(t, "02-01-2006", o.Mapping.TimeFormat)
	assert.Equal(t, "dissolved_oxygen", o.Mapping.Params["do"])
	assert.Equal(t, "MH-PUNE-001", o.Mapping.Stations["2683"])
	assert.Equal(t, "µmhos/cm", o.Mapping.Units["conductivity"])
	assert.Equal(t, govdata.DefaultLookback, o.Lookback, "left out: govdata's default")
	assert.Equal(t, 16<<20, int(o.HTTP.MaxBody))
	assert.Equal(t, 2*time.Minute, o.HTTP.BackoffMax)

	require.NotNil(t, cfg.Satellite)
	s := cfg.Satellite.Options()
	assert.Equal(t, "copernicus", cfg.Satellite.Name)
	assert.Equal(t, satellite.DefaultBaseURL, s.BaseURL)
	assert.Equal(t, satellite.Area{Lat: 18.5293, Lon: 73.8627, RadiusM: 150}, s.Areas["MH-PUNE-001"])
	assert.Len(t, s.Areas["MH-SANGLI-001"].Polygon, 4)
	assert.Equal(t, [2]float64{74.5605, 16.8510}, s.Areas["MH-SANGLI-001"].Polygon[0], "[lon, lat]")
	assert.Equal(t, 56*24*time.Hour, s.Lookback)
	assert.Equal(t, []string{satellite.Sentinel2L2A, satellite.LandsatOTL2}, s.Collections)

	assert.Equal(t, map[string]time.Duration{"cpcb-nwmp": 3650 * 24 * time.Hour}, cfg.SourceRetention())
}

// A CWC or IMD entry starts from its kind's mapping: the stations are all it needs. A
// params map replaces the kind's rather than adding to it.
func TestUpstreamKindDefaults(t *testing.T) {
	cfg, err := config.Parse([]byte(`database_url: postgres://h/db
upstream:
  - {name: cwc-krishna, kind: cwc, stations: {"32-KRS-001": MH-SANGLI-001}}
  - name: imd-pune
    kind: imd
    interval: 1h
    params: {rainfall: "Last 24 hrs Rainfall"}
    stations: {"43063": MH-PUNE-001}
    retention: 365d
`))
	require.NoError(t, err)
	cwc := cfg.Upstream[0].Options()
	want := govdata.Defaults(govdata.CWC)
	assert.Equal(t, want.BaseURL, cwc.BaseURL)
	assert.Equal(t, want.Mapping.Params, cwc.Mapping.Params)
	assert.Equal(t, want.Mapping.TimeFormat, cwc.Mapping.TimeFormat)
	assert.Equal(t, want.Query, cwc.Query)
	assert.Equal(t, govdata.DefaultInterval, cfg.Upstream[0].Interval.Std())

	imd := cfg.Upstream[1].Options()
	assert.Equal(t, map[string]string{"rainfall": "Last 24 hrs Rainfall"}, imd.Mapping.Params, "no air_temp added from the defaults")
	assert.Equal(t, "Station_Code", imd.Mapping.StationField)
	assert.Equal(t, apicall.DefaultAttempts, imd.HTTP.Attempts)
	assert.Equal(t, map[string]time.Duration{"imd-pune": 365 * 24 * time.Hour}, cfg.SourceRetention())
}

func TestSamplesAndFusionDefaults(t *testing.T) {
	cfg, err := config.Parse([]byte("database_url: postgres://h/db\nsamples: {max_rows: 50, retention: 730d}\n"))
	require.NoError(t, err)
	assert.Equal(t, 50, cfg.Samples.Limits().MaxRows)
	assert.EqualValues(t, 4<<20, cfg.Samples.Limits().MaxBytes)
	assert.Equal(t, 5*time.Minute, cfg.Fusion.Interval.Std())
	assert.Equal(t, store.DefaultExternalRetention, cfg.Retention.External.Std())
	assert.Equal(t, map[string]time.Duration{store.OriginManual: 730 * 24 * time.Hour}, cfg.SourceRetention())
}

func TestSourcesInvalid(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "empty.key")
	require.NoError(t, os.WriteFile(keyFile, []byte("  \n"), 0o600))
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown key names its line", `
upstream:
  - name: a
    kind: ogd
    resourse_id: x
`, []string{"line 6", "resourse_id"}},
		{"an ogd source without its essentials", `
upstream:
  - {name: cpcb, kind: ogd, interval: 10ms, http: {attempts: 0, rate: 0}}
`, []string{`upstream[0] "cpcb".interval: 10ms is shorter than 1s`, `upstream[0] "cpcb".http.attempts`,
			`upstream[0] "cpcb".http.rate`, `upstream[0] "cpcb": resource_id ""`,
			`upstream[0] "cpcb": api_key or api_key_file is required`, `upstream[0] "cpcb": station_field is required`,
			`upstream[0] "cpcb": params: at least one parameter`, `upstream[0] "cpcb": stations: at least one`}},
		{"names", `
upstream:
  - {kind: wfs}
  - {name: manual, kind: imd, stations: {"1": MH-PUNE-001}}
  - {name: gov, kind: imd, stations: {"1": "not a station"}, retention: 1h}
  - {name: gov, kind: imd, stations: {"1": MH-PUNE-001}, api_key_file: ` + keyFile + `}
satellite: {name: gov, client_id: c, client_secret: s, areas: {MH-PUNE-001: {lat: 18.5, lon: 73.8, radius_m: 9000}}}
`, []string{`upstream[0].name: "" must be a name`, `upstream[0]: kind "wfs": want one of ogd, cwc, imd`,
			`upstream[1] "manual".name: "manual" is taken by the origin of posted samples`,
			`upstream[2] "gov": stations: "not a station" for code "1" is not a station id`,
			`upstream[2] "gov".retention: 1h0m0s is shorter than 2d`,
			`upstream[3] "gov".name: "gov" is taken by upstream[2] "gov"`, "api_key_file " + keyFile + " is empty",
			`satellite.name: "gov" is taken`, `satellite: areas: MH-PUNE-001: radius_m 9000`}},
		{"satellite without credentials and areas", "satellite: {max_cloud_pct: 120, turbidity: guess}\n",
			[]string{"satellite: client_secret or client_secret_file is required", "client_id is required",
				"max_cloud_pct 120", `turbidity "guess"`, "areas: at least one station"}},
		{"samples and fusion", "samples: {max_bytes: 10, max_rows: 0, retention: 1d}\nfusion: {interval: 0s}\nretention: {external: 1d}\n",
			[]string{"samples.max_bytes: 10 must be", "samples.max_rows: 0 must be", "samples.retention: 1d is shorter than 2d",
				"fusion.interval: 0s is shorter than 1s", "retention.external: 1d is shorter than 2d"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte("database_url: postgres://h/db\n" + tc.yaml))
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

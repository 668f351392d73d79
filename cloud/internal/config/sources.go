package config

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/apicall"
	"github.com/purehealth/purehealth/cloud/internal/govdata"
	"github.com/purehealth/purehealth/cloud/internal/samples"
	"github.com/purehealth/purehealth/cloud/internal/satellite"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Upstream is one upstream[] entry: a government source. The keys name, kind, base_url,
// api_key, api_key_file, resource_id, interval, station_field, time_field, time_format,
// params and stations are contract; the rest tune what a resource needs. An entry is
// decoded onto govdata.Defaults of its kind, so a CWC or IMD entry needs little more
// than its stations.
type Upstream struct {
	// Name is unique among upstream entries and the satellite; it is the origin of every
	// reading the source delivers, and names the source in /stats, /metrics and the log.
	Name string `yaml:"name"`
	Kind string `yaml:"kind"` // ogd, cwc or imd
	// BaseURL is the OGD gateway (https://api.data.gov.in) or the CWC or IMD endpoint.
	BaseURL     string `yaml:"base_url"`
	APIKey      string `yaml:"api_key"`
	APIKeyFile  string `yaml:"api_key_file"`
	APIKeyParam string `yaml:"api_key_param"` // the query parameter of the key (api-key for OGD)
	ResourceID  string `yaml:"resource_id"`   // OGD
	// Interval is how often the source is read (default govdata.DefaultInterval).
	Interval Duration `yaml:"interval"`
	// Retention keeps what the source delivered this long, counted from the time a value
	// describes; absent or 0: retention.external.
	Retention Duration `yaml:"retention"`

	// The field mapping (govdata.Mapping).
	StationField string            `yaml:"station_field"`
	TimeField    string            `yaml:"time_field"`
	ClockField   string            `yaml:"clock_field"`
	TimeFormat   string            `yaml:"time_format"` // a Go layout; "" RFC 3339 or ISO; "2006": a year
	IDField      string            `yaml:"id_field"`
	KeyFields    []string          `yaml:"key_fields"`
	Params       map[string]string `yaml:"params"` // our parameter -> the field holding it
	Units        map[string]string `yaml:"units"`  // our parameter -> the unit its field is in
	UnitField    string            `yaml:"unit_field"`
	Stations     map[string]string `yaml:"stations"` // upstream station code -> our station id
	Zero         []string          `yaml:"zero"`     // texts that mean a measured zero (IMD's NIL)

	// OGD: filters[field]=value on every request, or one filtered read per station.
	Filters        map[string]string `yaml:"filters"`
	FilterStations bool              `yaml:"filter_stations"`

	// CWC and IMD requests (govdata.Options of the same names).
	Method       string            `yaml:"method"`
	Query        map[string]string `yaml:"query"`
	RecordsPath  string            `yaml:"records_path"`
	StationParam string            `yaml:"station_param"`
	PageParam    string            `yaml:"page_param"`
	SizeParam    string            `yaml:"size_param"`
	FirstPage    int               `yaml:"first_page"`
	FromParam    string            `yaml:"from_param"`
	ToParam      string            `yaml:"to_param"`
	RangeFormat  string            `yaml:"range_format"`
	Lookback     Duration          `yaml:"lookback"`
	Overlap      Duration          `yaml:"overlap"`

	PageSize   int  `yaml:"page_size"`   // records a page
	MaxRecords int  `yaml:"max_records"` // records one round may read
	HTTP       HTTP `yaml:"http"`
}

// HTTP tunes the requests to an outside service (apicall.Options).
type HTTP struct {
	Timeout     Duration `yaml:"timeout"`      // one attempt, default apicall.DefaultTimeout
	Attempts    int      `yaml:"attempts"`     // tries of a request in all, default apicall.DefaultAttempts
	BackoffBase Duration `yaml:"backoff_base"` // first wait between attempts (doubling, jittered)
	BackoffMax  Duration `yaml:"backoff_max"`
	// Rate is the requests a second sent to the service, retries included (negative: no
	// limit); Burst how many may go at once.
	Rate    float64  `yaml:"rate"`
	Burst   int      `yaml:"burst"`
	MaxBody ByteSize `yaml:"max_body"` // largest response read
}

func defaultHTTP() HTTP {
	return HTTP{Timeout: Duration(apicall.DefaultTimeout), Attempts: apicall.DefaultAttempts,
		BackoffBase: Duration(apicall.DefaultBackoffBase), BackoffMax: Duration(apicall.DefaultBackoffMax),
		Rate: apicall.DefaultRate, Burst: 1, MaxBody: apicall.DefaultMaxBody}
}

// Options returns the request options apicall takes.
func (h HTTP) Options() apicall.Options {
	return apicall.Options{Timeout: h.Timeout.Std(), Attempts: h.Attempts, BackoffBase: h.BackoffBase.Std(),
		BackoffMax: h.BackoffMax.Std(), Rate: h.Rate, Burst: h.Burst, MaxBody: int64(h.MaxBody)}
}

func (h HTTP) validate(at string, bad func(string, ...any)) {
	if h.Timeout.Std() < 100*time.Millisecond {
		bad("%s.http.timeout: %s is shorter than 100ms", at, h.Timeout)
	}
	if h.Attempts < 1 || h.Attempts > 20 {
		bad("%s.http.attempts: %d must be 1..20", at, h.Attempts)
	}
	if h.BackoffBase.Std() < time.Millisecond || h.BackoffMax < h.BackoffBase {
		bad("%s.http.backoff_base, backoff_max: %s and %s must be at least 1ms, base no longer than max", at, h.BackoffBase, h.BackoffMax)
	}
	if h.Rate == 0 || h.Rate > 1000 {
		bad("%s.http.rate: %v must be a positive number of requests a second up to 1000 (negative: no limit)", at, h.Rate)
	}
	if h.Burst < 1 {
		bad("%s.http.burst: %d must be at least 1", at, h.Burst)
	}
	if h.MaxBody < 1<<10 || h.MaxBody > 1<<30 {
		bad("%s.http.max_body: %d must be 1KiB..1GiB", at, h.MaxBody)
	}
}

// UnmarshalYAML decodes an entry onto the defaults of its kind. A params, units or query
// map in the file replaces the kind's own rather than adding to it.
func (u *Upstream) UnmarshalYAML(unmarshal func(any) error) error {
	var keys map[string]any
	if err := unmarshal(&keys); err != nil {
		return err
	}
	kind, _ := keys["kind"].(string)
	*u = upstreamDefaults(govdata.Kind(kind))
	for _, k := range []struct {
		key string
		m   *map[string]string
	}{{"params", &u.Params}, {"units", &u.Units}, {"query", &u.Query}} {
		if _, ok := keys[k.key]; ok {
			*k.m = nil
		}
	}
	type plain Upstream
	return unmarshal((*plain)(u))
}

// upstreamDefaults is an entry of kind with every default of govdata.Defaults.
func upstreamDefaults(kind govdata.Kind) Upstream {
	d := govdata.Defaults(kind)
	m := d.Mapping
	return Upstream{
		Kind: string(kind), BaseURL: d.BaseURL, APIKeyParam: d.APIKeyParam, Interval: Duration(govdata.DefaultInterval),
		StationField: m.StationField, TimeField: m.TimeField, ClockField: m.ClockField, TimeFormat: m.TimeFormat,
		IDField: m.IDField, KeyFields: m.KeyFields, Params: maps.Clone(m.Params), Units: maps.Clone(m.Units),
		UnitField: m.UnitField, Zero: m.Zero,
		Filters: d.Filters, FilterStations: d.FilterStations, Method: d.Method, Query: maps.Clone(d.Query),
		RecordsPath: d.RecordsPath, StationParam: d.StationParam, PageParam: d.PageParam, SizeParam: d.SizeParam,
		FirstPage: d.FirstPage, FromParam: d.FromParam, ToParam: d.ToParam, RangeFormat: d.RangeFormat,
		Lookback: Duration(d.Lookback), Overlap: Duration(d.Overlap),
		PageSize: d.PageSize, MaxRecords: d.MaxRecords, HTTP: defaultHTTP(),
	}
}

// Options returns the source's client options (govdata.New checks them).
func (u Upstream) Options() govdata.Options {
	return govdata.Options{
		Kind: govdata.Kind(u.Kind), BaseURL: u.BaseURL, ResourceID: u.ResourceID,
		APIKey: u.APIKey, APIKeyFile: u.APIKeyFile, APIKeyParam: u.APIKeyParam,
		Filters: u.Filters, FilterStations: u.FilterStations,
		Method: u.Method, Query: u.Query, RecordsPath: u.RecordsPath, StationParam: u.StationParam,
		PageParam: u.PageParam, SizeParam: u.SizeParam, FirstPage: u.FirstPage, PageSize: u.PageSize,
		FromParam: u.FromParam, ToParam: u.ToParam, RangeFormat: u.RangeFormat,
		Lookback: u.Lookback.Std(), Overlap: u.Overlap.Std(), MaxRecords: u.MaxRecords,
		Mapping: govdata.Mapping{
			StationField: u.StationField, TimeField: u.TimeField, ClockField: u.ClockField, TimeFormat: u.TimeFormat,
			IDField: u.IDField, KeyFields: u.KeyFields, Params: u.Params, Units: u.Units, UnitField: u.UnitField,
			Stations: u.Stations, Zero: u.Zero,
		},
		HTTP: u.HTTP.Options(),
	}
}

// Satellite is the satellite key: estimates from a Statistical API (contract keys
// base_url, token_url, client_id, client_secret, client_secret_file, interval,
// max_cloud_pct, areas). It is decoded onto satellite.Defaults.
type Satellite struct {
	// Name is the origin of the estimates and names the source in /stats and /metrics
	// (default DefaultSatelliteName); unique among the sources.
	Name             string   `yaml:"name"`
	BaseURL          string   `yaml:"base_url"`
	TokenURL         string   `yaml:"token_url"`
	ClientID         string   `yaml:"client_id"`
	ClientSecret     string   `yaml:"client_secret"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	Interval         Duration `yaml:"interval"`      // default satellite.DefaultInterval
	MaxCloudPct      float64  `yaml:"max_cloud_pct"` // scenes more cloudy are left out
	MinPixels        int      `yaml:"min_pixels"`    // valid water pixels a scene needs
	// Collections are sentinel-2-l2a (turbidity, chlorophyll-a) and landsat-ot-l2 (water
	// temperature); Turbidity is nechad or dogliotti.
	Collections []string `yaml:"collections"`
	Turbidity   string   `yaml:"turbidity"`
	Lookback    Duration `yaml:"lookback"` // how far back the first round reads
	Settle      Duration `yaml:"settle"`   // after a week's end its scenes are final and cached
	// Areas are the water around each station whose pixels count.
	Areas map[string]Area `yaml:"areas"`
	// Retention: as for an upstream entry.
	Retention Duration `yaml:"retention"`
	HTTP      HTTP     `yaml:"http"`
}

// DefaultSatelliteName is the satellite source's name unless the file gives one.
const DefaultSatelliteName = "copernicus"

// Area is a station's area: a circle (lat, lon, radius_m) or a polygon of [lon, lat]
// positions (GeoJSON order).
type Area struct {
	Lat     float64      `yaml:"lat"`
	Lon     float64      `yaml:"lon"`
	RadiusM float64      `yaml:"radius_m"`
	Polygon [][2]float64 `yaml:"polygon"`
}

// UnmarshalYAML decodes the satellite key onto satellite.Defaults.
func (s *Satellite) UnmarshalYAML(unmarshal func(any) error) error {
	d := satellite.Defaults()
	h := defaultHTTP()
	// The Copernicus Data Space allows a few requests a second per user.
	*s = Satellite{Name: DefaultSatelliteName, BaseURL: d.BaseURL, TokenURL: d.TokenURL,
		Interval: Duration(satellite.DefaultInterval), MaxCloudPct: d.MaxCloudPct, MinPixels: d.MinPixels,
		Collections: d.Collections, Turbidity: d.Turbidity, Lookback: Duration(d.Lookback), Settle: Duration(d.Settle),
		HTTP: h}
	type plain Satellite
	return unmarshal((*plain)(s))
}

// Options returns the client options (satellite.New checks them); the cache is the
// caller's.
func (s Satellite) Options() satellite.Options {
	areas := make(map[string]satellite.Area, len(s.Areas))
	for id, a := range s.Areas {
		areas[id] = satellite.Area{Lat: a.Lat, Lon: a.Lon, RadiusM: a.RadiusM, Polygon: a.Polygon}
	}
	return satellite.Options{BaseURL: s.BaseURL, TokenURL: s.TokenURL, ClientID: s.ClientID,
		ClientSecret: s.ClientSecret, ClientSecretFile: s.ClientSecretFile, MaxCloudPct: s.MaxCloudPct,
		MinPixels: s.MinPixels, Areas: areas, Collections: s.Collections, Turbidity: s.Turbidity,
		Lookback: s.Lookback.Std(), Settle: s.Settle.Std(), HTTP: s.HTTP.Options()}
}

// Samples tunes lab samples (POST /v1/samples, ph-cloud samples import).
type Samples struct {
	MaxBytes ByteSize `yaml:"max_bytes"` // largest body, default samples.DefaultMaxBytes
	MaxRows  int      `yaml:"max_rows"`  // rows a body may hold, default samples.DefaultMaxRows
	// Retention keeps posted samples this long; absent or 0: retention.external.
	Retention Duration `yaml:"retention"`
}

func defaultSamples() Samples {
	return Samples{MaxBytes: samples.DefaultMaxBytes, MaxRows: samples.DefaultMaxRows}
}

// Limits returns the body limits of the samples handler.
func (s Samples) Limits() samples.Limits {
	return samples.Limits{MaxBytes: int64(s.MaxBytes), MaxRows: s.MaxRows}
}

// SourceRetention returns the retention of each origin that sets its own (the
// store.Options field of that name).
func (c *Config) SourceRetention() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, u := range c.Upstream {
		if u.Retention > 0 {
			out[u.Name] = u.Retention.Std()
		}
	}
	if s := c.Satellite; s != nil && s.Retention > 0 {
		out[s.Name] = s.Retention.Std()
	}
	if c.Samples.Retention > 0 {
		out[store.OriginManual] = c.Samples.Retention.Std()
	}
	return out
}

// validateSources checks upstream, satellite, samples and the fused WQI's interval. Each source's options are
// checked by the client that takes them (it reads a key or secret file, and sends
// nothing), so that config check refuses exactly what the service would.
func (c *Config) validateSources(bad func(string, ...any)) {
	names := map[string]string{store.OriginManual: "the origin of posted samples"}
	name := func(at, n string) {
		if err := telemetry.CheckName(n, telemetry.MaxSensorLen); err != nil || strings.TrimSpace(n) != n {
			bad("%s.name: %q must be a name of 1..%d printable characters", at, n, telemetry.MaxSensorLen)
			return
		}
		if prev, dup := names[n]; dup {
			bad("%s.name: %q is taken by %s", at, n, prev)
			return
		}
		names[n] = at
	}
	retention := func(at string, d Duration) {
		if d != 0 && d.Std() < 2*Day {
			bad("%s.retention: %s is shorter than 2d", at, d)
		}
	}
	for i, u := range c.Upstream {
		at := fmt.Sprintf("upstream[%d]", i)
		if u.Name != "" {
			at = fmt.Sprintf("upstream[%d] %q", i, u.Name)
		}
		name(at, u.Name)
		if u.Interval.Std() < time.Second {
			bad("%s.interval: %s is shorter than 1s", at, u.Interval)
		}
		retention(at, u.Retention)
		u.HTTP.validate(at, bad)
		if _, err := govdata.New(u.Options(), nil); err != nil {
			for _, l := range lines(err, u.Kind+" source: ") {
				bad("%s: %s", at, l)
			}
		}
	}
	if s := c.Satellite; s != nil {
		name("satellite", s.Name)
		if s.Interval.Std() < time.Second {
			bad("satellite.interval: %s is shorter than 1s", s.Interval)
		}
		retention("satellite", s.Retention)
		s.HTTP.validate("satellite", bad)
		if _, err := satellite.New(s.Options(), nil); err != nil {
			for _, l := range lines(err, "satellite: ") {
				bad("satellite: %s", l)
			}
		}
	}
	if c.Samples.MaxBytes < 1<<10 || c.Samples.MaxBytes > 1<<30 {
		bad("samples.max_bytes: %d must be 1KiB..1GiB", c.Samples.MaxBytes)
	}
	if c.Samples.MaxRows < 1 || c.Samples.MaxRows > 10_000_000 {
		bad("samples.max_rows: %d must be 1..10000000", c.Samples.MaxRows)
	}
	retention("samples", c.Samples.Retention)
	// External is how long lab, government and satellite values are kept, counted from the
	// time they describe, for a source that sets no retention of its own.
	if c.Retention.External.Std() < 2*Day {
		bad("retention.external: %s is shorter than 2d", c.Retention.External)
	}
	if c.Fusion.Interval.Std() < time.Second {
		bad("fusion.interval: %s is shorter than 1s", c.Fusion.Interval)
	}
}

// lines splits a client's error that joins several (errors.Join writes one per line),
// without the client's own prefix, so that each is reported on its own line after the
// key it belongs to.
func lines(err error, prefix string) []string {
	return strings.Split(strings.TrimPrefix(err.Error(), prefix), "\n")
}

package govdata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/apicall"
	"github.com/purehealth/purehealth/cloud/internal/upstream"
)

// Kind is the protocol of a source (the `kind` of an upstream entry).
type Kind string

// The kinds.
const (
	// OGD is the data.gov.in Open Government Data API: GET /resource/{id} with api-key,
	// offset and limit, records in an envelope.
	OGD Kind = "ogd"
	// CWC is Central Water Commission river data (water level, discharge) through the
	// India-WRIS dataset API: a POST with a date range, paged, records under "data".
	CWC Kind = "cwc"
	// IMD is India Meteorological Department station weather (rainfall, air
	// temperature): one GET per station, a list of records.
	IMD Kind = "imd"
)

// Kinds lists the kinds.
func Kinds() []Kind { return []Kind{OGD, CWC, IMD} }

// Default limits.
const (
	DefaultPageSize   = 100    // OGD records a page (the gateway's own default is 10)
	DefaultMaxRecords = 100000 // records one round may read
	DefaultLookback   = 30 * 24 * time.Hour
	DefaultOverlap    = 7 * 24 * time.Hour
	// DefaultInterval is how often a service should collect from a source. An OGD round
	// whose resource is unchanged costs one page, so the design's five minutes are cheap.
	DefaultInterval = 5 * time.Minute
)

// Options configure a source. Start from Defaults(kind): it fills in the endpoint, the
// paging and, for CWC and IMD, the field mapping of their published shapes.
type Options struct {
	Kind Kind
	// BaseURL is the OGD gateway (https://api.data.gov.in), or for CWC and IMD the full
	// endpoint URL.
	BaseURL string
	// ResourceID is the OGD dataset's resource id.
	ResourceID string
	// APIKey or APIKeyFile (a file holding the key, surrounding blanks ignored). Sent as
	// the query parameter APIKeyParam ("api-key" for OGD); CWC and IMD need none by
	// default.
	APIKey      string
	APIKeyFile  string
	APIKeyParam string

	// Filters are sent with every OGD request as filters[field]=value (for example
	// {state_name: Maharashtra}), so the gateway returns fewer pages.
	Filters map[string]string
	// FilterStations makes OGD read each mapped station with its own filter on the
	// station field, instead of paging through the whole resource.
	FilterStations bool

	// Method is GET or POST (a form body) for CWC and IMD.
	Method string
	// Query is sent with every CWC or IMD request.
	Query map[string]string
	// RecordsPath is where a CWC or IMD response keeps its records: a dotted path of
	// object keys, "" when the body is the list.
	RecordsPath string
	// StationParam, if set, makes one CWC or IMD request per mapped station with the
	// upstream code in this query parameter.
	StationParam string
	// PageParam and SizeParam page a CWC or IMD endpoint, from FirstPage, PageSize
	// records at a time; no PageParam: one request.
	PageParam, SizeParam string
	FirstPage            int
	// PageSize is the records asked for per page (OGD limit, CWC/IMD SizeParam).
	PageSize int
	// FromParam and ToParam send a CWC or IMD request's time window in RangeFormat. The
	// window starts Overlap before the newest record of the last round (so late
	// corrections are seen) or, on the first round, Lookback before now.
	FromParam, ToParam string
	RangeFormat        string
	Lookback, Overlap  time.Duration

	// MaxRecords bounds the records read in one round; a source with more fails with a
	// message to narrow it (filters, stations).
	MaxRecords int

	Mapping Mapping
	HTTP    apicall.Options
	// Now is the clock of time windows; default time.Now.
	Now func() time.Time
}

// Defaults returns the options of a kind with every default filled in. The CWC and IMD
// mappings follow the shapes in testdata/ (the field names the services publish); only
// Stations is left to configure.
func Defaults(k Kind) Options {
	o := Options{Kind: k, PageSize: DefaultPageSize, MaxRecords: DefaultMaxRecords,
		Lookback: DefaultLookback, Overlap: DefaultOverlap}
	switch k {
	case OGD:
		o.BaseURL = "https://api.data.gov.in"
		o.APIKeyParam = "api-key"
	case CWC:
		o.BaseURL = "https://indiawris.gov.in/Dataset/River%20Water%20Level"
		o.Method = http.MethodPost
		o.Query = map[string]string{"stateName": "Maharashtra", "agencyName": "CWC", "download": "false"}
		o.RecordsPath = "data"
		o.PageParam, o.SizeParam, o.PageSize = "page", "size", 1000
		o.FromParam, o.ToParam, o.RangeFormat = "startdate", "enddate", "2006-01-02"
		o.Mapping = Mapping{StationField: "stationCode", TimeField: "dataTime",
			TimeFormat: "2006-01-02 15:04:05", UnitField: "unit",
			Params: map[string]string{"water_level": "dataValue"}}
	case IMD:
		o.BaseURL = "https://mausam.imd.gov.in/api/current_wx_api.php"
		o.Method = http.MethodGet
		o.StationParam = "id"
		o.Mapping = Mapping{StationField: "Station_Code", TimeField: "Date", ClockField: "Time",
			TimeFormat: "2006-01-02 15:04", Zero: []string{"NIL"},
			Params: map[string]string{"rainfall": "Last 24 hrs Rainfall", "air_temp": "Temperature"}}
	}
	return o
}

// Client fetches from one source. It implements upstream.Source. Build it with New.
type Client struct {
	opts Options
	key  string
	base *url.URL
	m    *mapper
	api  *apicall.Client
	log  *slog.Logger
}

// New checks o and returns a client; the error lists every problem. It reads the key
// file but sends nothing. log may be nil.
func New(o Options, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.MaxRecords <= 0 {
		o.MaxRecords = DefaultMaxRecords
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	base, err := url.Parse(o.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		bad("base_url %q: want an http or https URL", o.BaseURL)
	}
	key, keyErr := apicall.ReadSecret("api_key", o.APIKey, o.APIKeyFile)
	switch o.Kind {
	case OGD:
		if o.ResourceID == "" || strings.ContainsAny(o.ResourceID, "/?#") {
			bad("resource_id %q: want the dataset's resource id", o.ResourceID)
		}
		if keyErr != nil {
			bad("%v (data.gov.in refuses requests without a key)", keyErr)
		}
		if o.APIKeyParam == "" {
			o.APIKeyParam = "api-key"
		}
	case CWC, IMD:
		if o.APIKey == "" && o.APIKeyFile == "" {
			key, keyErr = "", nil // these services need no key by default
		}
		if keyErr != nil {
			errs = append(errs, keyErr)
		}
		if o.Method != http.MethodGet && o.Method != http.MethodPost {
			bad("method %q: want GET or POST", o.Method)
		}
		if (o.FromParam != "" || o.ToParam != "") && o.RangeFormat == "" {
			bad("range_format is required with from_param or to_param")
		}
		if key != "" && o.APIKeyParam == "" {
			bad("api_key_param: name the query parameter that carries the key")
		}
	default:
		bad("kind %q: want one of ogd, cwc, imd", o.Kind)
	}
	m, err := o.Mapping.compile()
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s source: %w", o.Kind, err)
	}
	if o.APIKeyParam != "" {
		o.HTTP.Secrets = append(o.HTTP.Secrets, o.APIKeyParam)
	}
	return &Client{opts: o, key: key, base: base, m: m, api: apicall.New(o.HTTP, log), log: log}, nil
}

// Stats returns the client's HTTP counters.
func (c *Client) Stats() apicall.Stats { return c.api.Stats() }

// Fetch reads one round: for OGD the whole resource (or each mapped station's part of
// it) unless its update stamp equals cursor; for CWC and IMD the time window since the
// cursor. It implements upstream.Source.
func (c *Client) Fetch(ctx context.Context, cursor string) (upstream.Batch, error) {
	if c.opts.Kind == OGD {
		return c.fetchOGD(ctx, cursor)
	}
	return c.fetchRecords(ctx, cursor)
}

var _ upstream.Source = (*Client)(nil)

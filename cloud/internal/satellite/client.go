package satellite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/apicall"
	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Defaults of Options.
const (
	DefaultBaseURL     = "https://sh.dataspace.copernicus.eu"
	DefaultTokenURL    = "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
	DefaultMaxCloudPct = 20
	DefaultMinPixels   = 10
	DefaultLookback    = 8 * 7 * 24 * time.Hour
	DefaultSettle      = 5 * 24 * time.Hour
	// DefaultInterval is how often a service should collect: a Sentinel-2 revisit is 5
	// days and a Landsat one 8, and each round asks for every station's open weeks.
	DefaultInterval = 24 * time.Hour
	statisticsPath  = "/api/v1/statistics"
)

// Why a week or a scene gave no estimate: the kinds counted in upstream.Batch.Skipped.
const (
	// SkipNoScene: no interval in the week — no acquisition, or every scene above the
	// cloud-cover limit.
	SkipNoScene = "no_scene"
	// SkipFailed: an interval the service failed to compute (EXECUTION_ERROR).
	SkipFailed = "failed"
	// SkipMasked: a scene with no valid pixel over the area (clouds, no water): the
	// service prints "NaN" means with noDataCount == sampleCount.
	SkipMasked = "masked"
	// SkipFewPixels: a scene with fewer valid pixels than Options.MinPixels.
	SkipFewPixels = "few_pixels"
	// SkipNoOutput: an interval without the band statistics the evalscript outputs.
	SkipNoOutput = "no_output"
	// SkipRequestFailed: a request that failed after its retries (the round reports the
	// error and resumes from that week next time).
	SkipRequestFailed = "request_failed"
)

// Options configure the client. Zero fields take the defaults above.
type Options struct {
	// BaseURL is the Statistical API's host (DefaultBaseURL: Copernicus Data Space);
	// TokenURL its OAuth2 token endpoint.
	BaseURL, TokenURL string
	// ClientID and ClientSecret (or ClientSecretFile) of an OAuth2 client of the service.
	ClientID, ClientSecret, ClientSecretFile string
	// MaxCloudPct drops scenes whose tile cloud cover is above it, percent (0 means 20).
	MaxCloudPct float64
	// MinPixels is how many valid water pixels a scene needs to count.
	MinPixels int
	// Areas maps our station ids to the water around them.
	Areas map[string]Area
	// Collections to read: Sentinel2L2A (turbidity, chlorophyll-a) and LandsatOTL2 (water
	// temperature); default both.
	Collections []string
	// Turbidity is the algorithm: Nechad (default) or Dogliotti.
	Turbidity string
	// Lookback is how far back the first round reads, and how far back a round ever reaches.
	Lookback time.Duration
	// Settle is how long after a week's end its data count as final: such weeks are
	// cached and not asked for again; younger ones are asked for every round.
	Settle time.Duration
	// Cache keeps responses of settled weeks (nil: none, every round asks again).
	Cache Cache
	// HTTP tunes requests; the service's Retry-After is read in milliseconds.
	HTTP apicall.Options
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Defaults returns the options New fills in for zero fields: the Copernicus Data Space
// endpoints, both collections, Nechad turbidity, and the limits above. Areas and the
// credentials have none.
func Defaults() Options {
	return Options{BaseURL: DefaultBaseURL, TokenURL: DefaultTokenURL, MaxCloudPct: DefaultMaxCloudPct,
		MinPixels: DefaultMinPixels, Collections: []string{Sentinel2L2A, LandsatOTL2}, Turbidity: Nechad,
		Lookback: DefaultLookback, Settle: DefaultSettle}
}

// Client reads weekly satellite estimates for each configured station. It implements
// upstream.Source. Build it with New; safe for one round at a time.
type Client struct {
	opts     Options
	api      *apicall.Client
	tokens   *tokens
	products []product
	stations []string // sorted
	log      *slog.Logger

	hits, misses, puts atomic.Int64
}

// New checks o and returns a client; the error lists every problem. It reads the secret
// file but sends nothing. log may be nil.
func New(o Options, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	def := Defaults()
	if o.BaseURL == "" {
		o.BaseURL = def.BaseURL
	}
	if o.TokenURL == "" {
		o.TokenURL = def.TokenURL
	}
	if o.MaxCloudPct == 0 {
		o.MaxCloudPct = def.MaxCloudPct
	}
	if o.MinPixels == 0 {
		o.MinPixels = def.MinPixels
	}
	if len(o.Collections) == 0 {
		o.Collections = def.Collections
	}
	if o.Turbidity == "" {
		o.Turbidity = def.Turbidity
	}
	if o.Lookback == 0 {
		o.Lookback = def.Lookback
	}
	if o.Settle == 0 {
		o.Settle = def.Settle
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for name, u := range map[string]string{"base_url": o.BaseURL, "token_url": o.TokenURL} {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad("%s %q: want an http or https URL", name, u)
		}
	}
	secret, err := apicall.ReadSecret("client_secret", o.ClientSecret, o.ClientSecretFile)
	if err != nil {
		errs = append(errs, err)
	}
	if o.ClientID == "" {
		bad("client_id is required")
	}
	if !(o.MaxCloudPct > 0 && o.MaxCloudPct <= 100) {
		bad("max_cloud_pct %v: want more than 0 and at most 100", o.MaxCloudPct)
	}
	if o.MinPixels < 1 {
		bad("min_pixels %d: at least 1", o.MinPixels)
	}
	if o.Turbidity != Nechad && o.Turbidity != Dogliotti {
		bad("turbidity %q: want %s or %s", o.Turbidity, Nechad, Dogliotti)
	}
	if o.Lookback < 7*24*time.Hour || o.Settle < 0 {
		bad("lookback %s: at least a week; settle must not be negative", o.Lookback)
	}
	if len(o.Areas) == 0 {
		bad("areas: at least one station")
	}
	for id, a := range o.Areas {
		if !telemetry.ValidStationID(id) {
			bad("areas: %q is not a station id (%s)", id, telemetry.StationIDRule)
		}
		if err := a.Validate(); err != nil {
			bad("areas: %s: %v", id, err)
		}
	}
	all := products(o.Turbidity)
	var ps []product
	for _, c := range o.Collections {
		p, ok := all[c]
		if !ok {
			bad("collections: %q (want %s or %s)", c, Sentinel2L2A, LandsatOTL2)
			continue
		}
		ps = append(ps, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("satellite: %w", err)
	}
	o.HTTP.RetryAfterMillis = true
	api := apicall.New(o.HTTP, log)
	return &Client{
		opts:     o,
		api:      api,
		tokens:   &tokens{url: o.TokenURL, id: o.ClientID, secret: secret, api: api, now: o.Now},
		products: ps,
		stations: slices.Sorted(maps.Keys(o.Areas)),
		log:      log,
	}, nil
}

// CacheStats counts the cache's use since the client was built.
type CacheStats struct{ Hits, Misses, Puts int64 }

// CacheStats returns the counters.
func (c *Client) CacheStats() CacheStats {
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Puts: c.puts.Load()}
}

// Stats returns the HTTP counters.
func (c *Client) Stats() apicall.Stats { return c.api.Stats() }

// weekStart is the Monday 00:00 UTC of t's week (ISO 8601 weeks).
func weekStart(t time.Time) time.Time {
	d := t.UTC().Truncate(24 * time.Hour)
	return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
}

const week = 7 * 24 * time.Hour

// Fetch reads the weeks from the cursor (the first week not yet final, "2006-01-02") or
// Lookback ago, up to the current week, for every station and collection: one reading
// per estimate and week, the median of the week's scene values, stamped at the week's
// start. Failed requests are counted and reported in the error with what the others
// gave; the returned cursor stays at the earliest week that failed or is not yet final.
// It implements upstream.Source.
func (c *Client) Fetch(ctx context.Context, cursor string) (upstream.Batch, error) {
	now := c.opts.Now()
	current := weekStart(now)
	first := weekStart(now.Add(-c.opts.Lookback))
	if t, err := time.Parse(time.DateOnly, cursor); err == nil && weekStart(t).After(first) {
		first = weekStart(t)
	}
	b := upstream.Batch{Skipped: upstream.Counts{}}
	resume := current
	var errs []error
	for _, station := range c.stations {
		for _, p := range c.products {
			for w := first; !w.After(current); w = w.Add(week) {
				if c.open(w, now) && w.Before(resume) {
					resume = w
				}
				res, err := c.statistics(ctx, station, p, w, now)
				if err != nil {
					if ctx.Err() != nil || errors.Is(err, apicall.ErrUnauthorized) {
						// Nothing else will work either.
						return b, err
					}
					b.Skipped.Add(SkipRequestFailed, 1)
					errs = append(errs, fmt.Errorf("%s %s week of %s: %w", station, p.collection, w.Format(time.DateOnly), err))
					resume = minTime(resume, w)
					continue
				}
				c.estimates(station, p, w, res, &b)
			}
		}
	}
	b.Cursor = resume.Format(time.DateOnly)
	if len(errs) > 3 {
		errs = append(errs[:3], fmt.Errorf("and %d more", len(errs)-3))
	}
	return b, errors.Join(errs...)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// open reports whether the week starting at w may still get data: it ended less than
// Settle ago.
func (c *Client) open(w, now time.Time) bool { return w.Add(week + c.opts.Settle).After(now) }

// statistics returns the response for one station, collection and week, from the cache
// for a final week it holds.
func (c *Client) statistics(ctx context.Context, station string, p product, w, now time.Time) (*Response, error) {
	body, err := p.request(c.opts.Areas[station], w, w.Add(week), c.opts.MaxCloudPct)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	key := CacheKey{Station: station, Collection: p.collection, From: w, To: w.Add(week), Digest: hex.EncodeToString(sum[:8])}
	final := !c.open(w, now)
	if final && c.opts.Cache != nil {
		raw, ok, err := c.opts.Cache.Get(ctx, key)
		switch {
		case err != nil:
			c.log.Warn("satellite cache unreadable; asking the service", "station", station, "err", err)
		case ok:
			if res, err := ParseResponse(raw); err == nil {
				c.hits.Add(1)
				return res, nil
			} else {
				c.log.Warn("satellite cache entry does not decode; asking the service", "station", station, "err", err)
			}
		}
		c.misses.Add(1)
	}
	raw, res, err := c.post(ctx, body)
	if err != nil {
		return nil, err
	}
	if res.Status == "FAILED" {
		return nil, fmt.Errorf("statistics request FAILED for every interval")
	}
	if final && c.opts.Cache != nil && res.Status == "OK" {
		// A PARTIAL answer is not kept: its failed intervals may compute next time.
		if err := c.opts.Cache.Put(ctx, key, raw); err != nil {
			c.log.Warn("satellite cache not written", "station", station, "err", err)
		} else {
			c.puts.Add(1)
		}
	}
	return res, nil
}

// post sends one statistics request with a bearer token, once more with a new token if
// the service refused the one it had.
func (c *Client) post(ctx context.Context, body []byte) ([]byte, *Response, error) {
	for attempt := 0; ; attempt++ {
		var used string
		var raw []byte
		var res *Response
		err := c.api.Do(ctx, func(ctx context.Context) (*http.Request, error) {
			tok, err := c.tokens.get(ctx)
			if err != nil {
				return nil, err
			}
			used = tok
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.opts.BaseURL, "/")+statisticsPath,
				bytes.NewReader(body))
			if err == nil {
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json")
			}
			return req, err
		}, func(b []byte) error {
			r, err := ParseResponse(b)
			if err == nil {
				raw, res = bytes.Clone(b), r
			}
			return err
		})
		var se *apicall.StatusError
		if err != nil && attempt == 0 && errors.As(err, &se) && se.Status == http.StatusUnauthorized && used != "" {
			// Revoked or expired early: the next attempt gets a fresh token.
			c.tokens.drop(used)
			continue
		}
		return raw, res, err
	}
}

// estimates turns one week's intervals into readings, counting what it leaves out.
func (c *Client) estimates(station string, p product, w time.Time, res *Response, b *upstream.Batch) {
	b.Records += len(res.Intervals)
	if len(res.Intervals) == 0 {
		b.Skipped.Add(SkipNoScene, 1)
		return
	}
	values := map[telemetry.Param][]float64{}
	var pixels int
	var newest time.Time
	for _, iv := range res.Intervals {
		if iv.Error != "" {
			b.Skipped.Add(SkipFailed, 1)
			continue
		}
		means, valid, ok := bandMeans(iv, p.bands)
		switch {
		case !ok:
			b.Skipped.Add(SkipNoOutput, 1)
			continue
		case valid == 0 || slices.ContainsFunc(means, math.IsNaN):
			b.Skipped.Add(SkipMasked, 1)
			continue
		case valid < c.opts.MinPixels:
			b.Skipped.Add(SkipFewPixels, 1)
			continue
		}
		for param, v := range p.estimate(means, iv.From) {
			values[param] = append(values[param], v)
		}
		pixels += valid
		if iv.From.After(newest) {
			newest = iv.From
		}
	}
	native := map[telemetry.Param]string{telemetry.Turbidity: "FNU", telemetry.Chla: "ug/L", telemetry.Temp: "degC"}
	for _, param := range slices.Sorted(maps.Keys(values)) {
		vs := values[param]
		prm, v, unit, err := telemetry.Normalize(string(param), Median(vs), native[param])
		if err != nil {
			b.Skipped.Add(SkipNoOutput, 1)
			continue
		}
		b.Readings = append(b.Readings, upstream.Reading{
			Reading: telemetry.Reading{Station: station, Sensor: p.collection, Param: prm, Value: v, Unit: unit,
				Time: w, Source: telemetry.SourceSatellite},
			Origin: upstream.Origin{RecordID: p.collection + "/" + w.Format(time.DateOnly), Collection: p.collection,
				Scene: newest, Scenes: len(vs), Pixels: pixels},
		})
	}
}

// bandMeans returns the means of bands B0..B(n-1) of the evalscript's output and the
// smallest valid pixel count among them; ok is false when a band is missing.
func bandMeans(iv Interval, n int) ([]float64, int, bool) {
	bands, ok := iv.Bands[outputID]
	if !ok {
		return nil, 0, false
	}
	means := make([]float64, n)
	valid := math.MaxInt
	for i := range n {
		s, ok := bands[fmt.Sprintf("B%d", i)]
		if !ok {
			return nil, 0, false
		}
		means[i] = s.Mean
		valid = min(valid, s.Valid())
	}
	return means, valid, true
}

var _ upstream.Source = (*Client)(nil)

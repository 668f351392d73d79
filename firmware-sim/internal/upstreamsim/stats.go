package upstreamsim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/firmware-sim/internal/simhttp"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Statistical API defaults and limits.
const (
	DefaultTokenTTL     = 600 * time.Second
	DefaultRetryAfterMS = 1500 * time.Millisecond
	maxStatsBody        = 1 << 20
	maxStatsDays        = 366
	maxStatsPixels      = 1 << 20
	maxTokens           = 10000
)

// The collections the simulator serves, and their band layouts: the first output of the
// request's evalscript other than dataMask is answered with these bands, as digital
// numbers, B0 first.
const (
	CollectionS2L2A = "sentinel-2-l2a" // B0 = B04, B1 = B05, B2 = B8A
	CollectionLOTL2 = "landsat-ot-l2"  // B0 = ST_B10
)

// crs84 is longitude, latitude on WGS 84, the CRS of GeoJSON.
const crs84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

// baseline04 is the day Sentinel-2 processing baseline 04.00 started adding
// BOA_ADD_OFFSET = -1000 to L2A digital numbers (ESA, 25 January 2022).
var baseline04 = time.Date(2022, 1, 25, 0, 0, 0, 0, time.UTC)

// StatisticsConfig is what the Statistical API simulator serves. Zero values take the defaults.
type StatisticsConfig struct {
	// ClientID and ClientSecret, if set, are the only credentials the token endpoint
	// accepts; empty accepts any.
	ClientID, ClientSecret string
	// TokenTTL is the tokens' expires_in; default 600s.
	TokenTTL time.Duration
	// Seed selects the simulated rivers and skies.
	Seed int64
	// FaultConfig adds random faults; a 429's RetryAfter is sent in milliseconds,
	// default 1500ms.
	FaultConfig
	// Now is the clock of token expiry; default time.Now.
	Now func() time.Time
}

// Statistics serves the simulated Statistical API and its token endpoint. Build it with
// NewStatistics.
type Statistics struct {
	cfg    StatisticsConfig
	log    *slog.Logger
	faults *faults

	mu     sync.Mutex
	tokens map[string]time.Time // token → expiry

	requests, tokensIssued, intervals atomic.Int64
}

// NewStatistics checks cfg and returns the simulator. It starts nothing. log may be nil.
func NewStatistics(cfg StatisticsConfig, log *slog.Logger) (*Statistics, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	cfg.FaultConfig.withDefaults(DefaultRetryAfterMS)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	errs := cfg.FaultConfig.check()
	if cfg.TokenTTL < time.Second {
		errs = append(errs, fmt.Errorf("token ttl %s: at least 1s", cfg.TokenTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Statistics{cfg: cfg, log: log, tokens: map[string]time.Time{}}
	s.faults = newFaults(cfg.FaultConfig, cfg.Seed, s.refuse)
	return s, nil
}

// URLs returns the API's base URL and its token URL for a server listening on addr.
func (s *Statistics) URLs(addr net.Addr) (base, token string) {
	base = "http://" + addr.String()
	return base, base + "/oauth/token"
}

// Serve answers on l until ctx ends; see the package comment. Call it once.
func (s *Statistics) Serve(ctx context.Context, l net.Listener) error {
	return simhttp.Serve(ctx, l, s.Handler(), s.log, s.cfg.SlowDelay)
}

// Counters returns what the server has served. Safe for concurrent use.
func (s *Statistics) Counters() Counters {
	return Counters{Requests: s.requests.Load(), Tokens: s.tokensIssued.Load(),
		Intervals: s.intervals.Load(), Faults: s.faults.Served()}
}

// Handler serves the token endpoint, the statistics endpoint and the fault control.
func (s *Statistics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", s.serveToken)
	mux.HandleFunc("POST /api/v1/statistics", s.serveStatistics)
	mux.HandleFunc("/_sim/fault", s.faults.control)
	return mux
}

// oauthError answers like Keycloak, the identity server of the Copernicus Data Space.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	body := fmt.Sprintf(`{"error":%q,"error_description":%q}`, code, desc)
	writeJSON(w, status, []byte(body), FaultNone)
}

func (s *Statistics) serveToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	fault, ok := s.faults.intercept(w, r, -1)
	if !ok {
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant_type")
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" || (s.cfg.ClientID != "" && (id != s.cfg.ClientID || secret != s.cfg.ClientSecret)) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Invalid client or Invalid client credentials")
		return
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	token := hex.EncodeToString(b)
	now := s.cfg.Now()
	s.mu.Lock()
	for t, exp := range s.tokens {
		if !now.Before(exp) {
			delete(s.tokens, t)
		}
	}
	full := len(s.tokens) >= maxTokens
	if !full {
		s.tokens[token] = now.Add(s.cfg.TokenTTL)
	}
	s.mu.Unlock()
	if full {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "too many live tokens")
		return
	}
	s.tokensIssued.Add(1)
	body := fmt.Sprintf(`{"access_token":%q,"expires_in":%d,"refresh_expires_in":0,"token_type":"Bearer","not-before-policy":0,"scope":"email profile"}`,
		token, int(s.cfg.TokenTTL.Seconds()))
	writeJSON(w, http.StatusOK, []byte(body), fault)
}

// apiError answers like the Statistical API: {"error": {status, reason, message, code}}.
func apiError(w http.ResponseWriter, status int, msg, code string) {
	body := fmt.Sprintf(`{"error":{"status":%d,"reason":%q,"message":%q,"code":%q}}`,
		status, http.StatusText(status), msg, code)
	writeJSON(w, status, []byte(body), FaultNone)
}

// refuse answers an error fault as the Copernicus services do.
func (s *Statistics) refuse(w http.ResponseWriter, fault Fault) {
	if fault != FaultRateLimit {
		serveGatewayError(w, fault)
		return
	}
	// The Copernicus APIs count retry-after in milliseconds.
	w.Header().Set("Retry-After", strconv.FormatInt(s.cfg.RetryAfter.Milliseconds(), 10))
	body := `{"status":429,"reason":"Too Many Requests","message":"You have exceeded the rate limit of your account.","code":"RATE_LIMIT_EXCEEDED"}`
	writeJSON(w, http.StatusTooManyRequests, []byte(body), FaultNone)
}

// statsRequest is the part of a Statistical API request the simulator reads.
type statsRequest struct {
	Input struct {
		Bounds struct {
			BBox     []float64 `json:"bbox"`
			Geometry *struct {
				Type        string         `json:"type"`
				Coordinates [][][2]float64 `json:"coordinates"`
			} `json:"geometry"`
			Properties struct {
				CRS string `json:"crs"`
			} `json:"properties"`
		} `json:"bounds"`
		Data []struct {
			Type       string `json:"type"`
			DataFilter struct {
				MaxCloudCoverage *float64 `json:"maxCloudCoverage"`
			} `json:"dataFilter"`
		} `json:"data"`
	} `json:"input"`
	Aggregation struct {
		TimeRange struct {
			From time.Time `json:"from"`
			To   time.Time `json:"to"`
		} `json:"timeRange"`
		AggregationInterval struct {
			Of string `json:"of"`
		} `json:"aggregationInterval"`
		Evalscript string  `json:"evalscript"`
		ResX       float64 `json:"resx"`
		ResY       float64 `json:"resy"`
	} `json:"aggregation"`
}

var outputIDPattern = regexp.MustCompile(`id\s*:\s*["']([A-Za-z0-9_]+)["']`)

func (s *Statistics) serveStatistics(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	exp, known := s.tokens[token]
	s.mu.Unlock()
	switch {
	case !ok || !known:
		apiError(w, http.StatusUnauthorized, "Authentication failed", "COMMON_UNAUTHORIZED")
		return
	case !s.cfg.Now().Before(exp):
		apiError(w, http.StatusUnauthorized, "Your request has expired. Please refresh your credentials.", "COMMON_UNAUTHORIZED")
		return
	}
	fault, ok := s.faults.intercept(w, r, -1)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxStatsBody)
	var req statsRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			apiError(w, http.StatusRequestEntityTooLarge, "request body too large", "COMMON_BAD_PAYLOAD")
			return
		}
		apiError(w, http.StatusBadRequest, "Could not parse request: "+err.Error(), "COMMON_BAD_PAYLOAD")
		return
	}
	q, err := s.plan(&req)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error(), "COMMON_BAD_PAYLOAD")
		return
	}
	writeJSON(w, http.StatusOK, s.respond(q), fault)
}

// query is a checked request.
type query struct {
	collection string
	output     string
	maxCloud   float64 // percent; 100 = no limit
	from, to   time.Time
	lat, lon   float64
	pixels     int
	station    string
	model      *device.Model
}

func (s *Statistics) plan(req *statsRequest) (*query, error) {
	q := &query{maxCloud: 100}
	switch {
	case len(req.Input.Data) != 1:
		return nil, errors.New("input.data: exactly one collection is simulated")
	case req.Aggregation.AggregationInterval.Of != "P1D":
		return nil, fmt.Errorf("aggregationInterval.of %q: the simulator serves P1D", req.Aggregation.AggregationInterval.Of)
	}
	switch t := req.Input.Data[0].Type; strings.ToLower(t) {
	case CollectionS2L2A, "s2l2a":
		q.collection = CollectionS2L2A
	case CollectionLOTL2, "lotl2":
		q.collection = CollectionLOTL2
	default:
		return nil, fmt.Errorf("input.data.type %q: the simulator serves %s and %s", t, CollectionS2L2A, CollectionLOTL2)
	}
	if mc := req.Input.Data[0].DataFilter.MaxCloudCoverage; mc != nil {
		if *mc < 0 || *mc > 100 {
			return nil, fmt.Errorf("maxCloudCoverage %v: want 0 to 100", *mc)
		}
		q.maxCloud = *mc
	}
	q.from, q.to = req.Aggregation.TimeRange.From.UTC(), req.Aggregation.TimeRange.To.UTC()
	switch {
	case q.from.IsZero() || !q.to.After(q.from):
		return nil, errors.New("timeRange: from must be before to")
	case q.to.Sub(q.from) > maxStatsDays*24*time.Hour:
		return nil, fmt.Errorf("timeRange: at most %d days", maxStatsDays)
	}
	rx, ry := req.Aggregation.ResX, req.Aggregation.ResY
	if !(rx > 0 && ry > 0) {
		return nil, errors.New("aggregation: resx and resy are required")
	}
	ring, err := ringOf(req)
	if err != nil {
		return nil, err
	}
	lat, lon, area := centroidArea(ring)
	q.lat, q.lon = lat, lon
	switch crs := req.Input.Bounds.Properties.CRS; crs {
	case "", crs84, "http://www.opengis.net/def/crs/EPSG/0/4326":
		// Resolutions in the units of the bounds' CRS: degrees.
		rx *= 111320 * math.Cos(lat*math.Pi/180)
		ry *= 110540
	default:
		return nil, fmt.Errorf("bounds.properties.crs %q: the simulator serves CRS84", crs)
	}
	q.pixels = int(math.Round(area / (rx * ry)))
	switch {
	case q.pixels < 1:
		return nil, errors.New("bounds: the area holds no pixel at this resolution")
	case q.pixels > maxStatsPixels:
		return nil, fmt.Errorf("bounds: %d pixels, at most %d", q.pixels, maxStatsPixels)
	}
	q.output = "default"
	for _, m := range outputIDPattern.FindAllStringSubmatch(req.Aggregation.Evalscript, -1) {
		if m[1] != "dataMask" {
			q.output = m[1]
			break
		}
	}
	q.station = fmt.Sprintf("SAT-%.3f-%.3f", lat, lon)
	for _, st := range device.Stations() {
		if distanceM(lat, lon, st.Lat, st.Lon) < 5000 {
			q.station = st.ID
		}
	}
	q.model = device.New(device.ForStation(q.station), s.cfg.Seed)
	return q, nil
}

// ringOf returns the outer ring of the request's polygon or bounding box, [lon, lat].
func ringOf(req *statsRequest) ([][2]float64, error) {
	b := req.Input.Bounds
	switch {
	case b.Geometry != nil:
		if b.Geometry.Type != "Polygon" || len(b.Geometry.Coordinates) == 0 || len(b.Geometry.Coordinates[0]) < 4 {
			return nil, errors.New("bounds.geometry: a Polygon with a closed ring of at least 4 positions is simulated")
		}
		ring := b.Geometry.Coordinates[0]
		for _, p := range ring {
			if math.Abs(p[0]) > 180 || math.Abs(p[1]) > 90 {
				return nil, fmt.Errorf("bounds.geometry: %v is not [lon, lat] in CRS84", p)
			}
		}
		return ring, nil
	case len(b.BBox) == 4:
		x0, y0, x1, y1 := b.BBox[0], b.BBox[1], b.BBox[2], b.BBox[3]
		if !(x0 < x1 && y0 < y1) || math.Abs(x0) > 180 || math.Abs(x1) > 180 || math.Abs(y0) > 90 || math.Abs(y1) > 90 {
			return nil, fmt.Errorf("bounds.bbox %v: want [minLon, minLat, maxLon, maxLat]", b.BBox)
		}
		return [][2]float64{{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}, {x0, y0}}, nil
	}
	return nil, errors.New("bounds: a geometry or a bbox is required")
}

// centroidArea returns a small polygon's vertex centroid and its area in m², on a local
// equirectangular projection (fine for areas of a few kilometres).
func centroidArea(ring [][2]float64) (lat, lon, area float64) {
	n := len(ring) - 1 // the ring is closed
	for _, p := range ring[:n] {
		lon += p[0]
		lat += p[1]
	}
	lat, lon = lat/float64(n), lon/float64(n)
	kx := 111320 * math.Cos(lat*math.Pi/180)
	const ky = 110540
	var twice float64
	for i := range n {
		x0, y0 := (ring[i][0]-lon)*kx, (ring[i][1]-lat)*ky
		x1, y1 := (ring[i+1][0]-lon)*kx, (ring[i+1][1]-lat)*ky
		twice += x0*y1 - x1*y0
	}
	return lat, lon, math.Abs(twice) / 2
}

// distanceM is the great-circle distance in metres (haversine).
func distanceM(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371000
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

// scene is one acquisition over the area.
type scene struct {
	day      time.Time // UTC midnight
	at       time.Time // acquisition time
	cloud    float64   // tile cloud cover, %
	failed   bool
	valid    int // pixels with data (water, no cloud)
	bands    []float64
	spreadDN float64
}

// revisit is each collection's repeat cycle over a site: Sentinel-2A and 2B together every
// 5 days, Landsat 8 and 9 together every 8.
func revisit(collection string) (days int64, utc time.Duration) {
	if collection == CollectionLOTL2 {
		return 8, 5*time.Hour + 15*time.Minute
	}
	return 5, 5*time.Hour + 25*time.Minute
}

// scenes lists the acquisitions in the query's range that the cloud filter lets through.
func (s *Statistics) scenes(q *query) []scene {
	every, clock := revisit(q.collection)
	phase := int64(hash64(s.cfg.Seed, q.station, q.collection) % uint64(every))
	water := 0.25 + 0.2*unitOf(hash64(s.cfg.Seed, q.station, "water"))
	var out []scene
	for day := q.from.Truncate(24 * time.Hour); day.Before(q.to); day = day.Add(24 * time.Hour) {
		n := day.Unix() / 86400
		if (n+phase)%every != 0 {
			continue
		}
		at := day.Add(clock)
		if at.Before(q.from) || !at.Before(q.to) {
			continue
		}
		key := day.Format("2006-01-02")
		u := func(what string) float64 { return unitOf(hash64(s.cfg.Seed, q.station, q.collection, key, what)) }
		sc := scene{day: day, at: at, cloud: tileCloud(day.Month(), u("cloud"))}
		if sc.cloud > q.maxCloud {
			continue // filtered on the tile's cloud cover, as the service does
		}
		sc.failed = u("failed") < 0.06
		// Clouds over the station itself: with a tile cloud cover c %, the area is
		// overcast with probability about c/100, else partly covered.
		local := u("local") * sc.cloud / 100
		if u("overcast") < sc.cloud/100 {
			local = 1
		}
		sc.valid = int(math.Round(float64(q.pixels) * water * (1 - local)))
		sc.bands, sc.spreadDN = s.bandsDN(q, at, u("noise"))
		out = append(out, sc)
	}
	return out
}

// tileCloud is a Sentinel-2 or Landsat tile's cloud cover over the Deccan, %: monsoon
// skies are overcast, winter skies clear.
func tileCloud(m time.Month, u float64) float64 {
	switch m {
	case time.June, time.July, time.August, time.September:
		return round(45+55*u, 1)
	case time.May, time.October:
		return round(60*u*u, 1)
	}
	return round(25*u*u*u, 1)
}

// bandsDN are the mean digital numbers of the collection's bands over the water pixels.
// The reflectances come from the river model by inverting the algorithms the cloud
// applies: Nechad et al. (2016) for turbidity on B04, the NDCI of Mishra & Mishra (2012)
// for chlorophyll-a, Landsat Collection 2 ST_B10 scaling for temperature.
func (s *Statistics) bandsDN(q *query, at time.Time, noise float64) ([]float64, float64) {
	jitter := 1 + 0.04*(noise-0.5)
	if q.collection == CollectionLOTL2 {
		// The satellite sees the water's skin, a little warmer than the bulk by day.
		k := q.model.Value(telemetry.Temp, at) + 0.4 + 0.6*(noise-0.5) + 273.15
		return []float64{round((k-149)/0.00341802, 0)}, 150
	}
	turb := q.model.Value(telemetry.Turbidity, at) * jitter
	// T = A·ρ/(1 − ρ/C) solved for ρ.
	const a, c = 366.14, 0.19563
	red := turb / (a + turb/c)
	// Chl = 14.039 + 86.115·x + 194.325·x² solved for the NDCI x (the larger root); the
	// curve's minimum, about 4.5 µg/L, bounds what it can express.
	chl := q.model.Value(telemetry.Chla, at)
	disc := math.Max(86.115*86.115-4*194.325*(14.039-chl), 0)
	x := (-86.115 + math.Sqrt(disc)) / (2 * 194.325)
	redEdge := red * (1 + x) / (1 - x)
	nir := 0.2 * red
	offset := 0.0
	if !at.Before(baseline04) {
		offset = 1000 // L2A DN = reflectance·10000 − BOA_ADD_OFFSET (−1000)
	}
	dn := func(rho float64) float64 { return round(rho*10000+offset, 3) }
	return []float64{dn(red), dn(redEdge), dn(nir)}, 0.05 * red * 10000
}

// respond encodes the response to a checked request.
func (s *Statistics) respond(q *query) []byte {
	var b strings.Builder
	b.WriteString(`{"data":[`)
	status := "OK"
	for i, sc := range s.scenes(q) {
		s.intervals.Add(1)
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"interval":{"from":%q,"to":%q},`, sc.day.Format("2006-01-02T15:04:05Z"),
			sc.day.Add(24*time.Hour).Format("2006-01-02T15:04:05Z"))
		if sc.failed {
			status = "PARTIAL"
			b.WriteString(`"error":{"type":"EXECUTION_ERROR"}}`)
			continue
		}
		fmt.Fprintf(&b, `"outputs":{%q:{"bands":{`, q.output)
		for bi, mean := range sc.bands {
			if bi > 0 {
				b.WriteByte(',')
			}
			noData := q.pixels - sc.valid
			if sc.valid == 0 {
				// A fully masked interval: the service prints NaN as a string.
				fmt.Fprintf(&b, `"B%d":{"stats":{"min":"NaN","max":"NaN","mean":"NaN","stDev":"NaN","sampleCount":%d,"noDataCount":%d}}`,
					bi, q.pixels, noData)
				continue
			}
			sd := sc.spreadDN
			fmt.Fprintf(&b, `"B%d":{"stats":{"min":%s,"max":%s,"mean":%s,"stDev":%s,"sampleCount":%d,"noDataCount":%d}}`,
				bi, num(mean-2*sd), num(mean+2.5*sd), num(mean), num(sd), q.pixels, noData)
		}
		b.WriteString(`}}}}`)
	}
	fmt.Fprintf(&b, `],"status":%q}`, status)
	return []byte(b.String())
}

func num(v float64) string { return strconv.FormatFloat(round(v, 4), 'f', -1, 64) }

package upstreamsim

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/firmware-sim/internal/simhttp"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// DefaultResourceID is the id of the simulated NWMP resource.
const DefaultResourceID = "9b1a5f04-6c7e-4d1f-a2b3-5e8c0d7f4a21"

// OGD defaults.
const (
	DefaultMonths      = 24
	DefaultReviseAfter = 2 * time.Minute
	DefaultOGDLimit    = 10   // the gateway's default page size
	MaxOGDLimit        = 1000 // larger limits are served as this
)

// OGDStation is a monitoring station of the simulated resource.
type OGDStation struct {
	Code     string // NWMP station code
	Station  string // our station id ("" for a station we do not monitor)
	Location string
	District string
}

// ogdStations are the resource's stations: ours, and two that a mapping ignores. The
// codes are the simulator's own.
var ogdStations = []OGDStation{
	{"2683", "MH-PUNE-001", "MULA-MUTHA AT SANGAM BRIDGE, PUNE", "Pune"},
	{"1190", "MH-NASHIK-001", "GODAVARI AT RAMKUND, NASHIK", "Nashik"},
	{"1152", "MH-SANGLI-001", "KRISHNA AT IRWIN BRIDGE, SANGLI", "Sangli"},
	{"1153", "MH-KOLHAPUR-001", "PANCHGANGA AT PANCHGANGA GHAT, KOLHAPUR", "Kolhapur"},
	{"1047", "", "BHIMA AT PANDHARPUR", "Solapur"},
	{"2690", "", "TAPI AT BHUSAWAL", "Jalgaon"},
}

// OGDStations lists the stations of the simulated resource.
func OGDStations() []OGDStation { return slices.Clone(ogdStations) }

// ogdFields is the resource's schema, in the order of every record's keys.
var ogdFields = []struct{ id, name, typ string }{
	{"station_code", "Station Code", "keyword"},
	{"monitoring_location", "Monitoring Location", "keyword"},
	{"state_name", "State Name", "keyword"},
	{"district_name", "District Name", "keyword"},
	{"sampling_date", "Sampling Date", "date"},
	{"temperature", "Temperature (°C)", "double"},
	{"dissolved_oxygen", "Dissolved Oxygen (mg/L)", "double"},
	{"ph", "pH", "double"},
	{"conductivity", "Conductivity (µmhos/cm)", "double"},
	{"bod", "B.O.D. (mg/L)", "double"},
	{"nitrate_n", "Nitrate-N (mg/L)", "double"},
	{"fecal_coliform", "Fecal Coliform (MPN/100ml)", "double"},
	{"total_coliform", "Total Coliform (MPN/100ml)", "double"},
}

// OGDConfig is what the OGD simulator serves. Zero values take the defaults.
type OGDConfig struct {
	// ResourceID is served at /resource/{id}; default DefaultResourceID.
	ResourceID string
	// APIKey, if set, is the only key the gateway accepts; empty accepts any key, but a
	// request must carry one, as at the real gateway.
	APIKey string
	// Seed selects the simulated rivers.
	Seed int64
	// Months of monthly samples per station, up to the month of the start.
	Months int
	// ReviseAfter is when, after the start, CPCB republishes the resource with one
	// corrected value (the newest Pune BOD); negative: never (POST /_sim/revise
	// republishes at once).
	ReviseAfter time.Duration
	// FaultConfig adds random faults; a 429's RetryAfter is sent in whole seconds,
	// default 2s.
	FaultConfig
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// OGD serves the simulated data.gov.in gateway. Build it with NewOGD.
type OGD struct {
	cfg     OGDConfig
	log     *slog.Logger
	start   time.Time
	records []ogdRecord
	revise  int // index in records of the record that gets revised, -1 if none
	faults  *faults

	requests, pages atomic.Int64

	mu       sync.Mutex
	reviseAt time.Time // when the resource is republished; zero: never
}

// revisionTime returns when the resource is republished, if ever.
func (s *OGD) revisionTime() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reviseAt, !s.reviseAt.IsZero()
}

// serveRevise republishes the resource now (POST /_sim/revise), unless it was already.
func (s *OGD) serveRevise(w http.ResponseWriter, _ *http.Request) {
	now := s.cfg.Now().UTC().Truncate(time.Second)
	s.mu.Lock()
	if s.reviseAt.IsZero() || now.Before(s.reviseAt) {
		s.reviseAt = now
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// ogdRecord is one sample: its fields' JSON values in schema order.
type ogdRecord struct {
	values  []string // encoded JSON values, one per ogdFields entry
	revised string   // the bod value after the revision
}

// NewOGD checks cfg and builds the resource. It starts nothing. log may be nil.
func NewOGD(cfg OGDConfig, log *slog.Logger) (*OGD, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ResourceID == "" {
		cfg.ResourceID = DefaultResourceID
	}
	if cfg.Months == 0 {
		cfg.Months = DefaultMonths
	}
	if cfg.ReviseAfter == 0 {
		cfg.ReviseAfter = DefaultReviseAfter
	}
	cfg.FaultConfig.withDefaults(2 * time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	errs := cfg.FaultConfig.check()
	if strings.ContainsAny(cfg.ResourceID, "/?#") {
		errs = append(errs, fmt.Errorf("resource id %q: no '/', '?' or '#'", cfg.ResourceID))
	}
	if cfg.Months < 1 || cfg.Months > 600 {
		errs = append(errs, fmt.Errorf("months %d: want 1 to 600", cfg.Months))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &OGD{cfg: cfg, log: log, start: cfg.Now().UTC().Truncate(time.Second)}
	s.faults = newFaults(cfg.FaultConfig, cfg.Seed, s.refuse)
	if cfg.ReviseAfter > 0 {
		s.reviseAt = s.start.Add(cfg.ReviseAfter)
	}
	s.build()
	return s, nil
}

// hash64 mixes the seed and names into a number, for choices that must not change
// between runs.
func hash64(seed int64, parts ...string) uint64 {
	h := fnv.New64a()
	fmt.Fprint(h, seed)
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return h.Sum64()
}

func unitOf(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// build makes the monthly samples of every station, oldest first.
func (s *OGD) build() {
	type sample struct {
		at  time.Time
		st  OGDStation
		idx int // month index, 0 = oldest
	}
	var samples []sample
	startIST := s.start.In(device.IST)
	first := time.Date(startIST.Year(), startIST.Month(), 1, 0, 0, 0, 0, device.IST).AddDate(0, -(s.cfg.Months - 1), 0)
	for m := range s.cfg.Months {
		month := first.AddDate(0, m, 0)
		for _, st := range ogdStations {
			day := 3 + int(hash64(s.cfg.Seed, st.Code, month.Format("2006-01"))%20)
			at := month.AddDate(0, 0, day-1).Add(10 * time.Hour)
			if at.After(s.start) {
				continue
			}
			samples = append(samples, sample{at: at, st: st, idx: m})
		}
	}
	slices.SortStableFunc(samples, func(a, b sample) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.st.Code, b.st.Code)
	})
	models := map[string]*device.Model{}
	pune := 0
	s.revise = -1
	for i, smp := range samples {
		id := smp.st.Station
		if id == "" {
			id = "NWMP-" + smp.st.Code
		}
		m, ok := models[id]
		if !ok {
			m = device.New(device.ForStation(id), s.cfg.Seed)
			models[id] = m
		}
		rec := s.record(m, smp.st, smp.at, pune)
		if smp.st.Station == "MH-PUNE-001" {
			pune++
			if rec.revised != "" {
				s.revise = i
			}
		}
		s.records = append(s.records, rec)
	}
}

// record encodes one sample. The oldest five Pune samples carry one missing-value
// spelling each, so every spelling is sure to be served.
func (s *OGD) record(m *device.Model, st OGDStation, at time.Time, puneIndex int) ogdRecord {
	value := func(p telemetry.Param) float64 { return m.Value(p, at.UTC()) }
	day := at.Format("2006-01-02")
	bod := value(telemetry.BOD)
	fc := mpn(value(telemetry.FC))
	// Total coliform is two to four times fecal coliform in sewage-fed rivers.
	tc := mpn(fc * (2 + 2*unitOf(hash64(s.cfg.Seed, st.Code, day, "tc"))))
	vals := map[string]string{
		"station_code":        strconv.Quote(st.Code),
		"monitoring_location": strconv.Quote(st.Location),
		"state_name":          strconv.Quote("Maharashtra"),
		"district_name":       strconv.Quote(st.District),
		"sampling_date":       strconv.Quote(at.Format("02-01-2006")),
		// Temperature comes as a JSON number; the other values as strings, as on most
		// data.gov.in resources.
		"temperature":      strconv.FormatFloat(round(value(telemetry.Temp), 1), 'f', -1, 64),
		"dissolved_oxygen": quoted(value(telemetry.DO), 1),
		"ph":               quoted(value(telemetry.PH), 2),
		"conductivity":     quoted(value(telemetry.Conductivity), 0),
		"bod":              quoted(bod, 1),
		"fecal_coliform":   quoted(fc, 0),
		"total_coliform":   quoted(tc, 0),
	}
	// Nitrate-N from sewage and farm runoff, often below the method's 0.5 mg/L.
	nitrate := 0.3 + 2.5*unitOf(hash64(s.cfg.Seed, st.Code, day, "no3"))
	vals["nitrate_n"] = quoted(nitrate, 2)
	if nitrate < 0.5 {
		vals["nitrate_n"] = `"BDL"`
	}
	// BOD below the 5-day test's quantification limit of 1 mg/L.
	if bod < 1 {
		vals["bod"] = `"BDL"`
	}
	for _, f := range []string{"dissolved_oxygen", "ph", "conductivity", "bod", "fecal_coliform"} {
		u := unitOf(hash64(s.cfg.Seed, st.Code, day, f, "missing"))
		switch {
		case u < 0.03:
			vals[f] = `"NA"` // not analysed
		case u < 0.04:
			vals[f] = map[string]string{"dissolved_oxygen": `"-"`, "ph": `"NAN"`, "conductivity": `"-"`,
				"bod": `"BDL"`, "fecal_coliform": `""`}[f]
		}
	}
	if st.Station == "MH-PUNE-001" && puneIndex < 5 {
		f := []string{"ph", "conductivity", "fecal_coliform", "dissolved_oxygen", "bod"}[puneIndex]
		vals[f] = []string{`"NAN"`, `"-"`, `""`, `"NA"`, `"BDL"`}[puneIndex]
	}
	rec := ogdRecord{values: make([]string, len(ogdFields))}
	for i, f := range ogdFields {
		rec.values[i] = vals[f.id]
	}
	if vals["bod"] == quoted(bod, 1) {
		// A corrected BOD: 15 % higher, as after a recount of a dilution series.
		rec.revised = quoted(round(bod, 1)*1.15, 1)
	}
	return rec
}

// mpn rounds a coliform count to two significant figures, as MPN tables report them.
func mpn(v float64) float64 {
	if v < 2 {
		return 2
	}
	e := math.Pow(10, math.Floor(math.Log10(v))-1)
	return math.Round(v/e) * e
}

func round(v float64, decimals int) float64 {
	s := math.Pow10(decimals)
	return math.Round(v*s) / s
}

func quoted(v float64, decimals int) string {
	return `"` + strconv.FormatFloat(v, 'f', decimals, 64) + `"`
}

// Counters are what a simulator has served since it was built.
type Counters struct {
	Requests  int64         // API requests (not the fault control)
	Pages     int64         // OGD pages of records answered
	Tokens    int64         // tokens issued
	Intervals int64         // statistics intervals answered
	Faults    map[Fault]int // requests each fault hit
}

// Counters returns what the server has served. Safe for concurrent use.
func (s *OGD) Counters() Counters {
	return Counters{Requests: s.requests.Load(), Pages: s.pages.Load(), Faults: s.faults.Served()}
}

// URL returns the resource's URL for a server listening on addr.
func (s *OGD) URL(addr net.Addr) string {
	return "http://" + addr.String() + "/resource/" + s.cfg.ResourceID
}

// Serve answers on l until ctx ends; see the package comment. Call it once.
func (s *OGD) Serve(ctx context.Context, l net.Listener) error {
	return simhttp.Serve(ctx, l, s.Handler(), s.log, s.cfg.SlowDelay)
}

// Handler serves the gateway and the fault control.
func (s *OGD) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /resource/{id}", s.serveResource)
	mux.HandleFunc("/_sim/fault", s.faults.control)
	mux.HandleFunc("POST /_sim/revise", s.serveRevise)
	return mux
}

// refuse answers an error fault as the data.gov.in gateway does.
func (s *OGD) refuse(w http.ResponseWriter, fault Fault) {
	if fault != FaultRateLimit {
		serveGatewayError(w, fault)
		return
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.cfg.RetryAfter.Seconds()))))
	gatewayError(w, http.StatusTooManyRequests, "API rate limit exceeded")
}

// gatewayError answers with the gateway's JSON error body.
func gatewayError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, []byte(`{"error": `+strconv.Quote(msg)+`}`), FaultNone)
}

func (s *OGD) serveResource(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	q := r.URL.Query()
	key := q.Get("api-key")
	switch {
	case key == "":
		gatewayError(w, http.StatusBadRequest, "Authorization field missing")
		return
	case s.cfg.APIKey != "" && key != s.cfg.APIKey:
		gatewayError(w, http.StatusForbidden, "Key not authorised")
		return
	case r.PathValue("id") != s.cfg.ResourceID:
		writeJSON(w, http.StatusNotFound, []byte(`{"status":"error","message":"Resource not found"}`), FaultNone)
		return
	}
	if f := q.Get("format"); f != "" && f != "json" {
		gatewayError(w, http.StatusBadRequest, "format "+f+" is not served by the simulator (json only)")
		return
	}
	offset, limit := 0, DefaultOGDLimit
	var err error
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			gatewayError(w, http.StatusBadRequest, "offset must be a whole number")
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			gatewayError(w, http.StatusBadRequest, "limit must be a whole number")
			return
		}
	}
	limit = min(limit, MaxOGDLimit)
	fault, ok := s.faults.intercept(w, r, offset)
	if !ok {
		return
	}
	s.pages.Add(1)
	writeJSON(w, http.StatusOK, s.page(q, offset, limit, s.cfg.Now()), fault)
}

// page encodes one page of the filtered resource as the gateway does.
func (s *OGD) page(q map[string][]string, offset, limit int, now time.Time) []byte {
	filters := map[int]string{} // field index → wanted value
	unknownFilter := false
	for k, vs := range q {
		name, ok := strings.CutPrefix(k, "filters[")
		if !ok || !strings.HasSuffix(name, "]") || len(vs) == 0 {
			continue
		}
		name = strings.TrimSuffix(name, "]")
		i := slices.IndexFunc(ogdFields, func(f struct{ id, name, typ string }) bool { return f.id == name })
		if i < 0 {
			unknownFilter = true
			continue
		}
		filters[i] = vs[0]
	}
	updated := s.start
	at, due := s.revisionTime()
	revised := due && !now.Before(at)
	if revised {
		updated = at
	}
	bodIndex := slices.IndexFunc(ogdFields, func(f struct{ id, name, typ string }) bool { return f.id == "bod" })
	var matched []int
	for i, rec := range s.records {
		if unknownFilter {
			break
		}
		ok := true
		for fi, want := range filters {
			if plain(rec.values[fi]) != want {
				ok = false
				break
			}
		}
		if ok {
			matched = append(matched, i)
		}
	}
	var pageIdx []int
	if offset < len(matched) {
		pageIdx = matched[offset:min(offset+limit, len(matched))]
	}

	var b strings.Builder
	created := s.start.AddDate(-2, 0, 0)
	fmt.Fprintf(&b, `{"index_name":%q,"title":%q,"desc":%q,`, s.cfg.ResourceID,
		"Water Quality of Rivers under National Water Quality Monitoring Programme (NWMP) - Maharashtra",
		"Monthly water quality of rivers in Maharashtra monitored under NWMP (simulated)")
	fmt.Fprintf(&b, `"created":%d,"updated":%d,"created_date":%q,"updated_date":%q,`, created.Unix(), updated.Unix(),
		created.Format("2006-01-02T15:04:05Z"), updated.Format("2006-01-02T15:04:05Z"))
	b.WriteString(`"active":"1","visualizable":"1","catalog_uuid":"3c1f9a77-2d4e-4b8a-9e61-7a0b5c3d2f18","source":"data.gov.in",`)
	b.WriteString(`"org_type":"Central","org":["Ministry of Environment, Forest and Climate Change","Central Pollution Control Board (CPCB)"],`)
	b.WriteString(`"sector":["Environment and Forest","Water Quality"],"field":[`)
	for i, f := range ogdFields {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%q,"name":%q,"type":%q}`, f.id, f.name, f.typ)
	}
	fmt.Fprintf(&b, `],"target_bucket":{"index":"nwmp","type":%q,"field":%q},`, s.cfg.ResourceID, s.cfg.ResourceID[:8])
	fmt.Fprintf(&b, `"message":"Resource lists","version":"2.2.0","status":"ok","total":%d,"count":%d,"limit":"%d","offset":"%d","records":[`,
		len(matched), len(pageIdx), limit, offset)
	for n, i := range pageIdx {
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		rec := s.records[i]
		for fi, f := range ogdFields {
			if fi > 0 {
				b.WriteByte(',')
			}
			v := rec.values[fi]
			if revised && i == s.revise && fi == bodIndex {
				v = rec.revised
			}
			b.WriteString(strconv.Quote(f.id) + ":" + v)
		}
		b.WriteByte('}')
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// plain is a field's value as filters compare it: a string's content or a number's text.
func plain(v string) string {
	if u, err := strconv.Unquote(v); err == nil {
		return u
	}
	return v
}

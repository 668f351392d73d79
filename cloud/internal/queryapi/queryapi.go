// Package queryapi serves ph-cloud's JSON API, the read side and acknowledgements:
//
//	GET /v1/stations                        {"stations": [...], "next": "..."}
//	GET /v1/stations/{id}                   one station
//	GET /v1/stations/{id}/readings          {"readings": [...], "next": "..."}
//	    ?param=&from=&to=&bucket=raw|1h|1d&limit=&cursor=&revisions=current|all&format=json|csv
//	    &source=S[,S...] (raw only: readings of these sources, e.g. manual,api,satellite)
//	GET /v1/stations/{id}/wqi?from=&to=&limit=&cursor=    {"wqi": [...], "next": "..."}
//	GET /v1/stations/{id}/status            fused current state, source per parameter
//	GET /v1/stations/{id}/forecast?param=   the newest forecast (design §5a), param=wqi too;
//	                                        without one: model "none", no points, "reason"
//	GET /v1/alerts?station=&active=&since=&limit=&cursor= {"alerts": [...], "next": "..."}
//	POST /v1/alerts/{id}/ack?station=        the alert, acknowledged (Ack)
//	GET /v1/fleet                           every station's health (fleet.go)
//	GET /v1/fleet/{id}/history              a station's health records
//
// Raw readings include those of labs, government programmes and satellites with their
// provenance; a republished value lists only its current revision unless revisions=all.
// format=csv streams the whole range as CSV (readingcsv) instead of a page of JSON.
// Listings are newest first. A page cut short by limit carries "next", an opaque cursor:
// pass it back as cursor= (with the same other parameters) for the following page; the
// walk visits every row exactly once. Times are RFC 3339, from inclusive and to exclusive.
// A bad parameter is answered 400 with {"error", "field"} naming it; an unknown station
// 404; a database outage 503 with Retry-After. Record shapes mirror ph-agent's --json
// output.
package queryapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/fusion"
	"github.com/purehealth/purehealth/cloud/internal/readingcsv"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/internal/jsonappend"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
	"github.com/purehealth/purehealth/shared/wqi"
)

// Options tune the API. Zero fields mean the defaults.
type Options struct {
	Fusion     fusion.Policy    // required for /status; fusion.DefaultPolicy() is the design's
	DOMethod   wqi.DOMethod     // DO saturation of the fused WQI, default Benson & Krause
	RetryAfter time.Duration    // sent with 503, default 5s
	Log        *slog.Logger     // default: discard
	Now        func() time.Time // default time.Now
}

// API holds the handlers. It is safe for concurrent use.
type API struct {
	store *store.Store
	opts  Options
	log   *slog.Logger
}

// New returns the API over st.
func New(st *store.Store, opts Options) *API {
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &API{store: st, opts: opts, log: opts.Log}
}

// Register adds the routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/stations", a.stations)
	mux.HandleFunc("GET /v1/stations/{id}", a.station)
	mux.HandleFunc("GET /v1/stations/{id}/readings", a.readings)
	mux.HandleFunc("GET /v1/stations/{id}/wqi", a.wqi)
	mux.HandleFunc("GET /v1/stations/{id}/status", a.status)
	mux.HandleFunc("GET /v1/stations/{id}/forecast", a.forecast)
	mux.HandleFunc("GET /v1/alerts", a.alerts)
	a.registerFleet(mux)
}

func (a *API) stations(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r.URL.Query(), "limit", "cursor")
	limit, c := q.limit(), q.cursor(kindStations)
	if a.badRequest(w, q) {
		return
	}
	after := ""
	if c != nil {
		after = c.Station
	}
	list, err := a.store.Stations(r.Context(), after, limit+1)
	if err != nil {
		a.failed(w, err)
		return
	}
	out := struct {
		Stations []store.Station `json:"stations"`
		Next     string          `json:"next,omitempty"`
	}{Stations: list}
	if len(list) > limit {
		out.Stations = list[:limit]
		out.Next = cursor{Kind: kindStations, Station: list[limit-1].ID}.encode()
	}
	a.writeJSON(w, http.StatusOK, out)
}

// stationOf checks the {id} of the path and that the station exists.
func (a *API) stationOf(w http.ResponseWriter, r *http.Request) (store.Station, bool) {
	id := r.PathValue("id")
	if !telemetry.ValidStationID(id) {
		a.writeError(w, http.StatusBadRequest, "not a station id", "id")
		return store.Station{}, false
	}
	st, err := a.store.Station(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(w, http.StatusNotFound, "no station "+id, "id")
		return store.Station{}, false
	}
	if err != nil {
		a.failed(w, err)
		return store.Station{}, false
	}
	return st, true
}

func (a *API) station(w http.ResponseWriter, r *http.Request) {
	if st, ok := a.stationOf(w, r); ok {
		a.writeJSON(w, http.StatusOK, st)
	}
}

// bucketJSON is one rollup bucket. Value repeats Avg, so that clients plotting "value"
// work with raw and bucketed listings alike. appendBuckets writes it.
type bucketJSON struct {
	Time  time.Time `json:"time"`
	Param string    `json:"param"`
	Unit  string    `json:"unit"`
	Value float64   `json:"value"`
	Avg   float64   `json:"avg"`
	Min   float64   `json:"min"`
	Max   float64   `json:"max"`
	Count int64     `json:"count"`
}

func (a *API) readings(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r.URL.Query(), "param", "from", "to", "bucket", "limit", "cursor", "revisions", "format", "source")
	param := q.param()
	from, to := q.timeRange()
	bucket := q.bucket()
	limit := q.limit()
	c := q.cursor(bucket)
	revisions := q.revisions()
	csv := q.csv(bucket)
	sources := q.sources()
	if sources != nil && bucket != kindReadings {
		q.fail("source", "rollups mix every source: source= needs bucket=raw")
	}
	if a.badRequest(w, q) {
		return
	}
	if csv {
		st, ok := a.stationOf(w, r)
		if !ok {
			return
		}
		a.exportCSV(w, r, store.ReadingsQuery{Station: st.ID, Param: param, From: from, To: to, Revisions: revisions, Sources: sources})
		return
	}
	// The listing first: only an empty one needs to know whether the station exists (a
	// round trip to the database less for every listing that has rows).
	id := r.PathValue("id")
	if !telemetry.ValidStationID(id) {
		a.writeError(w, http.StatusBadRequest, "not a station id", "id")
		return
	}
	if bucket == kindReadings {
		rq := store.ReadingsQuery{Station: id, Param: param, From: from, To: to, Limit: limit + 1, Revisions: revisions,
			Sources: sources}
		if c != nil {
			rq.After = &store.Position{Time: c.Time, Seq: c.Seq, ID: c.ID}
		}
		rows, err := a.store.Readings(r.Context(), rq)
		if err != nil {
			a.failed(w, err)
			return
		}
		if len(rows) == 0 {
			if _, ok := a.stationOf(w, r); !ok {
				return
			}
		}
		out := struct {
			Readings []store.Reading `json:"readings"`
			Next     string          `json:"next,omitempty"`
		}{Readings: rows}
		if out.Readings == nil {
			out.Readings = []store.Reading{}
		}
		if len(rows) > limit {
			last := rows[limit-1].Position()
			out.Readings, out.Next = rows[:limit], cursor{Kind: bucket, Time: last.Time, Seq: last.Seq, ID: last.ID}.encode()
		}
		a.writeJSON(w, http.StatusOK, out)
		return
	}
	size := store.Hourly
	if bucket == kindDaily {
		size = store.Daily
	}
	rq := store.RollupQuery{Station: id, Param: param, Size: size, From: from, To: to, Limit: limit + 1}
	if c != nil {
		rq.After = &store.RollupPosition{Bucket: c.Time, Param: c.Param}
	}
	// The listing is written as its buckets arrive, the database producing the next ones
	// meanwhile; it goes out once complete, so that a failure still gets its error.
	l := bucketListing{limit: limit, b: listingBuffers.get()}
	defer func() { listingBuffers.put(l.b) }()
	if err := a.store.ScanRollups(r.Context(), rq, l.restart, l.add); err != nil {
		a.failed(w, err)
		return
	}
	if l.n == 0 {
		if _, ok := a.stationOf(w, r); !ok {
			return
		}
	}
	var next string
	if l.more {
		next = cursor{Kind: bucket, Time: l.last.Bucket, Param: l.last.Param}.encode()
	}
	l.b = endBuckets(l.b, next)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(l.b)))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(l.b); err != nil {
		a.log.Debug("write response", "err", err)
	}
}

// listingBuffers keeps the buffers of bucketed listings (a year of hourly buckets is
// 1.5 MB of JSON) for the next requests.
var listingBuffers = newBufferStock(2, 4<<20)

// bufferStock keeps up to n buffers of at most largest bytes for reuse. Unlike a sync.Pool,
// whose buffers every other garbage collection drops, it holds them: a listing grown
// anew from a small buffer allocated twice its size, so that every few listings caused
// a collection, which emptied the pool again, and the requests that met one were the
// slowest.
type bufferStock struct {
	free    chan []byte
	largest int
}

func newBufferStock(n, largest int) *bufferStock {
	return &bufferStock{free: make(chan []byte, n), largest: largest}
}

// get returns a kept buffer, or a new one.
func (s *bufferStock) get() []byte {
	select {
	case b := <-s.free:
		return b
	default:
		return make([]byte, 0, 64<<10)
	}
}

// put keeps b for reuse unless it is larger than largest or enough are kept.
func (s *bufferStock) put(b []byte) {
	if cap(b) > s.largest {
		return
	}
	select {
	case s.free <- b[:0]:
	default:
	}
}

// bucketListing is a bucketed listing being written: at most limit buckets, and whether
// there are more after them, with the last one written for the cursor.
type bucketListing struct {
	b     []byte
	w     bucketWriter
	limit int
	n     int          // buckets written
	more  bool         // a bucket came after the limit-th
	last  store.Rollup // the limit-th bucket
}

func (l *bucketListing) restart() {
	l.b, l.n, l.more = startBuckets(l.b[:0]), 0, false
}

func (l *bucketListing) add(r *store.Rollup) error {
	if l.n == l.limit {
		l.more = true
		return nil
	}
	if l.n > 0 {
		l.b = append(l.b, ',')
	}
	l.b = l.w.append(l.b, r)
	if l.n++; l.n == l.limit {
		l.last = *r
	}
	return nil
}

// appendBuckets appends the answer of a bucketed listing: the bytes json.Encoder makes of
// struct{Readings []bucketJSON; Next string `json:",omitempty"`}, newline included. A
// year of hourly buckets is ten thousand objects, and encoding them by reflection took
// half of such a request's time. The handler writes the same with startBuckets,
// a bucketWriter and endBuckets as the buckets arrive.
func appendBuckets(b []byte, rows []store.Rollup, next string) []byte {
	b = startBuckets(b)
	var w bucketWriter
	for i := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = w.append(b, &rows[i])
	}
	return endBuckets(b, next)
}

func startBuckets(b []byte) []byte { return append(b, `{"readings":[`...) }

// bucketWriter writes buckets as json.Marshal writes a bucketJSON, keeping what repeats
// from one bucket to the next: a listing is newest first, every parameter of a time in a
// row, and the same few parameters at each time. Writing the time and the parameter's
// name and unit again for every bucket was a third of a listing's work.
type bucketWriter struct {
	at     time.Time
	atJSON []byte // `{"time":"…"` of at
	params []paramJSON
}

// paramJSON is `,"param":…,"unit":…,"value":` of one parameter.
type paramJSON struct {
	name string
	json []byte
}

// maxParamsJSON bounds the parameters a bucketWriter keeps; others are written each time.
const maxParamsJSON = 64

func (w *bucketWriter) append(b []byte, r *store.Rollup) []byte {
	// Identical times (location included) write identical bytes.
	if r.Bucket != w.at || w.atJSON == nil {
		w.at = r.Bucket
		w.atJSON = jsonappend.Time(append(w.atJSON[:0], `{"time":`...), r.Bucket)
	}
	b = append(b, w.atJSON...)
	b = append(b, w.param(r.Param)...)
	// Value repeats Avg: formatted once (formatting floats is most of a listing's work).
	at := len(b)
	b = jsonappend.Float(b, r.Avg)
	avg := len(b)
	b = append(b, `,"avg":`...)
	b = append(b, b[at:avg]...)
	b = append(b, `,"min":`...)
	b = jsonappend.Float(b, r.Min)
	b = append(b, `,"max":`...)
	b = jsonappend.Float(b, r.Max)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, r.Count, 10)
	return append(b, '}')
}

func (w *bucketWriter) param(name string) []byte {
	for _, p := range w.params {
		if p.name == name {
			return p.json
		}
	}
	info, _ := telemetry.Info(telemetry.Param(name))
	b := append([]byte(`,"param":`), jsonappend.String(nil, name)...)
	b = append(b, `,"unit":`...)
	b = jsonappend.String(b, info.Unit)
	b = append(b, `,"value":`...)
	if len(w.params) < maxParamsJSON {
		w.params = append(w.params, paramJSON{name: name, json: b})
	}
	return b
}

func endBuckets(b []byte, next string) []byte {
	b = append(b, ']')
	if next != "" {
		b = append(b, `,"next":`...)
		b = jsonappend.String(b, next)
	}
	return append(b, "}\n"...)
}

func (a *API) wqi(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r.URL.Query(), "from", "to", "limit", "cursor")
	from, to := q.timeRange()
	limit, c := q.limit(), q.cursor(kindWQI)
	if a.badRequest(w, q) {
		return
	}
	st, ok := a.stationOf(w, r)
	if !ok {
		return
	}
	wq := store.WQIQuery{Station: st.ID, From: from, To: to, Limit: limit + 1}
	if c != nil {
		wq.After = &store.Position{Time: c.Time, Seq: c.Seq}
	}
	rows, err := a.store.WQIHistory(r.Context(), wq)
	if err != nil {
		a.failed(w, err)
		return
	}
	out := struct {
		WQI  []wire.WQIPoint `json:"wqi"`
		Next string          `json:"next,omitempty"`
	}{WQI: rows}
	if out.WQI == nil {
		out.WQI = []wire.WQIPoint{}
	}
	if len(rows) > limit {
		last := rows[limit-1]
		out.WQI, out.Next = rows[:limit], cursor{Kind: kindWQI, Time: last.Time, Seq: last.Seq}.encode()
	}
	a.writeJSON(w, http.StatusOK, out)
}

// fusedJSON is one parameter of a station's fused state.
type fusedJSON struct {
	Value      float64   `json:"value"`
	Unit       string    `json:"unit"`
	Time       time.Time `json:"time"`
	AgeSeconds float64   `json:"age_seconds"`
	Source     string    `json:"source"`
	Origin     string    `json:"origin,omitempty"` // the upstream source or "manual" of a value from outside the station
	Sensor     string    `json:"sensor"`
	Quality    string    `json:"quality"`
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r.URL.Query())
	if a.badRequest(w, q) {
		return
	}
	st, ok := a.stationOf(w, r)
	if !ok {
		return
	}
	latest, err := a.store.LatestValues(r.Context(), st.ID)
	if err != nil {
		a.failed(w, err)
		return
	}
	stationWQI, err := a.store.LatestWQI(r.Context(), st.ID)
	if err != nil {
		a.failed(w, err)
		return
	}
	cands := make([]fusion.Candidate, len(latest))
	for i, l := range latest {
		cands[i] = fusion.Candidate{Param: l.Param, Source: l.Source, Time: l.Time, Value: l.Value,
			Unit: l.Unit, Quality: l.Quality, Sensor: l.Sensor, Origin: l.Origin}
	}
	now := a.opts.Now().UTC()
	out := struct {
		Station     string               `json:"station"`
		Time        time.Time            `json:"time"`
		LastBatchAt *time.Time           `json:"last_batch_at"`
		Params      map[string]fusedJSON `json:"params"`
		WQI         *wire.WQIPoint       `json:"wqi"` // the station's own, as its agent computed it
		// FusedWQI is the index of the fused values above, each input with its source,
		// time and age; null when none of do, fc, ph and bod has a fresh value.
		FusedWQI *fusion.WQI `json:"fused_wqi"`
	}{Station: st.ID, Time: now, LastBatchAt: st.LastBatchAt, Params: map[string]fusedJSON{}, WQI: stationWQI}
	fused := fusion.Fuse(a.opts.Fusion, now, cands)
	for p, v := range fused {
		out.Params[p] = fusedJSON{Value: v.Value, Unit: v.Unit, Time: v.Time, AgeSeconds: v.Age.Seconds(),
			Source: v.Source, Origin: v.Origin, Sensor: v.Sensor, Quality: v.Quality}
	}
	if fw, err := fusion.ComputeWQI(fused, now, a.opts.DOMethod, 1); err == nil {
		out.FusedWQI = &fw
	} else if !errors.Is(err, wqi.ErrNoInputs) {
		a.log.Warn("fused wqi", "station", st.ID, "err", err)
	}
	a.writeJSON(w, http.StatusOK, out)
}

// exportCSV streams every reading q selects, oldest first, as CSV. Once the header is out
// the status is sent: a failure after it aborts the response, so that a client sees a
// broken transfer rather than a file that looks whole.
func (a *API) exportCSV(w http.ResponseWriter, r *http.Request, q store.ReadingsQuery) {
	q.Oldest = true
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+q.Station+`-readings.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	cw, err := readingcsv.NewWriter(w, q.Station)
	if err == nil {
		rc := http.NewResponseController(w)
		n := 0
		err = a.store.ExportReadings(r.Context(), q, func(rd store.Reading) error {
			if err := cw.Write(rd); err != nil {
				return err
			}
			if n++; n%store.ExportPage == 0 {
				if err := cw.Flush(); err != nil {
					return err
				}
				if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
					return err
				}
			}
			return nil
		})
		if err == nil {
			err = cw.Flush()
		}
	}
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			a.log.Warn("csv export cut short", "station", q.Station, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
}

func (a *API) alerts(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r.URL.Query(), "station", "active", "since", "limit", "cursor")
	aq := store.AlertQuery{Station: q.station("station"), Active: q.boolean("active"), Since: q.time("since"), Limit: q.limit()}
	c := q.cursor(kindAlerts)
	if a.badRequest(w, q) {
		return
	}
	limit := aq.Limit
	aq.Limit++
	if c != nil {
		aq.After = &store.AlertPosition{OpenedAt: c.Time, Station: c.Station, ID: c.ID}
	}
	rows, err := a.store.Alerts(r.Context(), aq)
	if err != nil {
		a.failed(w, err)
		return
	}
	out := struct {
		Alerts []store.Alert `json:"alerts"`
		Next   string        `json:"next,omitempty"`
	}{Alerts: rows}
	if out.Alerts == nil {
		out.Alerts = []store.Alert{}
	}
	if len(rows) > limit {
		last := rows[limit-1]
		out.Alerts = rows[:limit]
		out.Next = cursor{Kind: kindAlerts, Time: last.OpenedAt, Station: last.Station, ID: last.ID}.encode()
	}
	a.writeJSON(w, http.StatusOK, out)
}

func (a *API) badRequest(w http.ResponseWriter, q *query) bool {
	if q.err == nil {
		return false
	}
	a.writeError(w, http.StatusBadRequest, q.err.Error(), q.err.Field)
	return true
}

func (a *API) failed(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrUnavailable):
		a.log.Warn("database unavailable", "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(int(a.opts.RetryAfter.Seconds())))
		a.writeError(w, http.StatusServiceUnavailable, "database unavailable, retry later", "")
	case errors.Is(err, context.Canceled):
		// The client went away.
	default:
		a.log.Error("query failed", "err", err)
		a.writeError(w, http.StatusInternalServerError, "internal error", "")
	}
}

func (a *API) writeError(w http.ResponseWriter, status int, msg, field string) {
	a.writeJSON(w, status, wire.Error{Error: msg, Field: field})
}

func (a *API) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		a.log.Debug("write response", "err", err)
	}
}

// Package ingest serves POST /v1/ingest: station agents upload batches of readings, alert
// transitions and WQI results (shared/wire) and get back what is now stored.
//
// The order of checks keeps cheap refusals cheap: the declared size (413), the bearer
// token (401, without reading the body), the station's rate (429), the service's
// concurrency (503), then the body, decoded as a stream one record at a time (413 as soon
// as the compressed or decompressed size, the record count or one record's size passes
// its limit; 400 naming the field; 400 naming an unknown version; 503 when the batches
// being decoded at once would pass the memory budget), the station named in the batch
// (403), and finally the store. A batch is stored whole or not at all; when the database is out of reach the
// answer is 503 with Retry-After and the agent sends it again later. Once a batch has been
// read, a client that goes away does not abort its write.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
)

// Store is what the handler needs from storage (*store.Store).
type Store interface {
	// AuthenticateStation maps a token and a client certificate to their station:
	// store.ErrNotFound if they name none, store.ErrCredentials if they disagree or the
	// station's mode wants what is missing.
	AuthenticateStation(ctx context.Context, c store.Credentials) (string, error)
	// Ingest stores a batch exactly once; store.ErrUnavailable when the database is down.
	Ingest(ctx context.Context, station string, b *wire.Batch) (store.IngestResult, error)
}

// Defaults of Options. An agent sends a batch within 50 ms of new readings, and back to
// back while a backlog drains: a station may send 20 batches a second, 50 at once.
const (
	DefaultRatePerStation = 20
	DefaultBurst          = 50
	DefaultMaxInFlight    = 16
	DefaultRetryAfter     = 5 * time.Second
	// DefaultDecodeBudget is four batches of the largest size at once. Agents send
	// batches of a few hundred KiB, so only bodies made to exhaust memory meet it.
	DefaultDecodeBudget = 4 * wire.MaxDecompressedBytes
)

// Options tune the handler. Zero fields mean the defaults.
type Options struct {
	RatePerStation float64       // batches a second per station
	Burst          int           // batches a station may send at once
	MaxInFlight    int           // batches being stored at once across stations
	RetryAfter     time.Duration // sent with 503
	// DecodeBudget bounds the decompressed bytes of all batches being decoded or stored at
	// once; a batch that would exceed it is answered 503. A decoded batch takes about as
	// much memory again as its JSON.
	DecodeBudget int64
	Log          *slog.Logger // default: discard
}

// errBusy is the decode budget refusing more bytes.
var errBusy = errors.New("the service is decoding too much at once")

// Handler is the ingest endpoint. It is safe for concurrent use.
type Handler struct {
	store    Store
	opts     Options
	log      *slog.Logger
	inFlight chan struct{}
	budget   *semaphore.Weighted

	mu       sync.Mutex
	limiters map[string]*rate.Limiter

	stats counters
}

type counters struct {
	batches, readings, alerts, wqi, duplicates atomic.Int64
	health                                     atomic.Int64
	byStatus                                   sync.Map // int -> *atomic.Int64
}

// Stats counts what the handler did since it started.
type Stats struct {
	Batches     int64         `json:"batches"`      // stored (200)
	NewReadings int64         `json:"new_readings"` // rows added
	NewAlerts   int64         `json:"new_alerts"`
	NewWQI      int64         `json:"new_wqi"`
	Health      int64         `json:"health_records"` // stations' health records that became their newest
	Duplicates  int64         `json:"duplicates"`     // records received again and ignored
	Refused     map[int]int64 `json:"refused"`        // by HTTP status
}

// New returns the handler.
func New(st Store, opts Options) *Handler {
	if opts.RatePerStation <= 0 {
		opts.RatePerStation = DefaultRatePerStation
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = DefaultRetryAfter
	}
	if opts.DecodeBudget <= 0 {
		opts.DecodeBudget = DefaultDecodeBudget
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Handler{
		store: st, opts: opts, log: opts.Log,
		inFlight: make(chan struct{}, opts.MaxInFlight),
		budget:   semaphore.NewWeighted(opts.DecodeBudget),
		limiters: map[string]*rate.Limiter{},
	}
}

// Stats returns the counters.
func (h *Handler) Stats() Stats {
	s := Stats{
		Batches: h.stats.batches.Load(), NewReadings: h.stats.readings.Load(), NewAlerts: h.stats.alerts.Load(),
		NewWQI: h.stats.wqi.Load(), Health: h.stats.health.Load(), Duplicates: h.stats.duplicates.Load(),
		Refused: map[int]int64{},
	}
	h.stats.byStatus.Range(func(k, v any) bool {
		s.Refused[k.(int)] = v.(*atomic.Int64).Load()
		return true
	})
	return s
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.refuse(w, http.StatusMethodNotAllowed, "use POST", "")
		return
	}
	if r.ContentLength > wire.MaxCompressedBytes {
		h.refuse(w, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("body of %d bytes exceeds %d", r.ContentLength, wire.MaxCompressedBytes), "")
		return
	}
	token, _ := bearer(r.Header.Get("Authorization"))
	cert := certStation(r)
	if token == "" && cert == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ph-cloud"`)
		h.refuse(w, http.StatusUnauthorized, "missing bearer token (or client certificate)", "")
		return
	}
	station, err := h.store.AuthenticateStation(r.Context(), store.Credentials{Token: token, CertStation: cert})
	switch {
	case errors.Is(err, store.ErrNotFound):
		w.Header().Set("WWW-Authenticate", `Bearer realm="ph-cloud", error="invalid_token"`)
		what := "unknown token"
		if token == "" {
			what = fmt.Sprintf("the client certificate names no station (%s)", cert)
		}
		h.refuse(w, http.StatusUnauthorized, what, "")
		return
	case errors.Is(err, store.ErrCredentials):
		w.Header().Set("WWW-Authenticate", `Bearer realm="ph-cloud"`)
		h.refuse(w, http.StatusUnauthorized, err.Error(), "")
		return
	case err != nil:
		h.storeFailed(w, "authenticate", err)
		return
	}
	log := h.log.With("station", station)

	if wait := h.reserve(station); wait > 0 {
		w.Header().Set("Retry-After", retryAfter(wait))
		h.refuse(w, http.StatusTooManyRequests, "too many batches from this station", "")
		return
	}
	select {
	case h.inFlight <- struct{}{}:
		defer func() { <-h.inFlight }()
	default:
		h.unavailable(w, "too many batches in progress")
		return
	}

	var gzipped bool
	switch enc := strings.TrimSpace(r.Header.Get("Content-Encoding")); {
	case wire.IsGzip(enc):
		gzipped = true
	case enc == "" || strings.EqualFold(enc, "identity"):
	default:
		h.refuse(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content encoding %q: send gzip", enc), "")
		return
	}
	// The bytes reserved stay reserved until the batch is stored: the decoded batch holds
	// about as much memory.
	var reserved int64
	defer func() { h.budget.Release(reserved) }()
	b, err := wire.DecodeWith(r.Body, gzipped, wire.DecodeOptions{Reserve: func(n int64) error {
		if !h.budget.TryAcquire(n) {
			return errBusy
		}
		reserved += n
		return nil
	}})
	if errors.Is(err, errBusy) {
		log.Warn("batch refused: decode budget exhausted", "budget", h.opts.DecodeBudget)
		h.unavailable(w, errBusy.Error())
		return
	}
	if err != nil {
		status, field := decodeStatus(err)
		log.Debug("batch refused", "status", status, "err", err)
		h.refuse(w, status, err.Error(), field)
		return
	}
	// Nothing keeps the batch's readings once it is stored: their array serves the next.
	defer b.Release()
	if b.Station != station {
		log.Warn("batch for another station refused", "batch_station", b.Station)
		h.refuse(w, http.StatusForbidden, fmt.Sprintf("this token belongs to station %s, not %s", station, b.Station), "station")
		return
	}

	// The batch is read: finish storing it even if the agent hangs up, so that the work
	// is not wasted and its resend is answered from what is stored.
	res, err := h.store.Ingest(context.WithoutCancel(r.Context()), station, b)
	if err != nil {
		if fe, ok := errors.AsType[*wire.FieldError](err); ok {
			h.refuse(w, http.StatusBadRequest, fe.Error(), fe.Field)
			return
		}
		h.storeFailed(w, "ingest", err)
		return
	}
	total := int64(len(b.Readings) + len(b.Alerts) + len(b.WQI))
	fresh := res.NewReadings + res.NewAlerts + res.NewWQI
	h.stats.batches.Add(1)
	h.stats.readings.Add(res.NewReadings)
	h.stats.alerts.Add(res.NewAlerts)
	h.stats.wqi.Add(res.NewWQI)
	if res.NewHealth {
		h.stats.health.Add(1)
	}
	h.stats.duplicates.Add(total - fresh)
	log.Debug("batch stored", "readings", len(b.Readings), "new_readings", res.NewReadings,
		"alerts", len(b.Alerts), "wqi", len(b.WQI), "duplicates", total-fresh, "acked_seq", res.Ack.AckedSeq)
	h.writeJSON(w, http.StatusOK, res.Ack)
}

// certStation is the station a verified client certificate names: its common name, or
// else the first of its DNS names that is a station id; "" without one. Only a
// certificate that chains to the configured client CA counts (VerifiedChains).
func certStation(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return ""
	}
	leaf := r.TLS.VerifiedChains[0][0]
	if telemetry.ValidStationID(leaf.Subject.CommonName) {
		return leaf.Subject.CommonName
	}
	for _, name := range leaf.DNSNames {
		if telemetry.ValidStationID(name) {
			return name
		}
	}
	return ""
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > 512 {
		return "", false
	}
	return token, true
}

// reserve takes a token of the station's bucket, or says how long to wait for one.
func (h *Handler) reserve(station string) time.Duration {
	h.mu.Lock()
	lim, ok := h.limiters[station]
	if !ok {
		// One limiter per authenticated station: the map is bounded by the stations table.
		lim = rate.NewLimiter(rate.Limit(h.opts.RatePerStation), h.opts.Burst)
		h.limiters[station] = lim
	}
	h.mu.Unlock()
	r := lim.Reserve()
	if !r.OK() {
		return time.Second
	}
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return d
	}
	return 0
}

// retryAfter renders a wait as whole seconds, rounded up.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(max(d, time.Second).Seconds())))
}

func decodeStatus(err error) (status int, field string) {
	if fe, ok := errors.AsType[*wire.FieldError](err); ok {
		return http.StatusBadRequest, fe.Field
	}
	switch {
	case errors.Is(err, wire.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, ""
	case errors.Is(err, wire.ErrVersion):
		return http.StatusBadRequest, "v"
	}
	return http.StatusBadRequest, ""
}

func (h *Handler) storeFailed(w http.ResponseWriter, what string, err error) {
	if errors.Is(err, store.ErrUnavailable) {
		h.log.Warn("database unavailable", "op", what, "err", err)
		h.unavailable(w, "database unavailable, retry later")
		return
	}
	h.log.Error("store failed", "op", what, "err", err)
	h.refuse(w, http.StatusInternalServerError, "internal error", "")
}

func (h *Handler) unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", retryAfter(h.opts.RetryAfter))
	h.refuse(w, http.StatusServiceUnavailable, msg, "")
}

func (h *Handler) refuse(w http.ResponseWriter, status int, msg, field string) {
	v, _ := h.stats.byStatus.LoadOrStore(status, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	h.writeJSON(w, status, wire.Error{Error: msg, Field: field})
}

func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		// The agent hung up; it will resend and be answered from what is stored.
		h.log.Debug("write response", "err", err)
	}
}

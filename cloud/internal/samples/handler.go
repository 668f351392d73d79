package samples

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/store"
)

// Store is what the handler needs of the database.
type Store interface {
	AuthenticateToken(ctx context.Context, token string) (store.Principal, error)
	StoreSamples(ctx context.Context, by string, samples []store.Sample) (store.StoreResult, error)
}

// Options tune the handler. Zero fields mean the defaults.
type Options struct {
	Limits Limits
	// Stored, if set, is called after samples were stored with the stations whose current
	// values changed: the service updates their fused WQI (fusedwqi.Updater.UpdateStations).
	Stored     func(ctx context.Context, stations []string)
	RetryAfter time.Duration    // sent with 503, default 5s
	Log        *slog.Logger     // default: discard
	Now        func() time.Time // default time.Now
}

// Handler serves POST /v1/samples. Safe for concurrent use.
type Handler struct {
	st   Store
	opts Options
	log  *slog.Logger

	accepted, duplicates, rejected atomic.Int64
}

// New returns the handler over st.
func New(st Store, opts Options) *Handler {
	opts.Limits = opts.Limits.withDefaults()
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Handler{st: st, opts: opts, log: opts.Log}
}

// Register adds POST /v1/samples to mux.
func (h *Handler) Register(mux *http.ServeMux) { mux.Handle("POST /v1/samples", h) }

// Reply is the answer to a stored body (contract: accepted and duplicates). Accepted
// counts the samples stored, Revised those of them that corrected an earlier value;
// Duplicates the rows that were stored before or repeat another row of the body.
type Reply struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Revised    int `json:"revised"`
}

// Stats counts rows since start.
type Stats struct {
	Accepted   int64 `json:"accepted"`
	Duplicates int64 `json:"duplicates"`
	Rejected   int64 `json:"rejected"` // bodies refused
}

// Stats returns the counters (for /stats and /metrics).
func (h *Handler) Stats() Stats {
	return Stats{Accepted: h.accepted.Load(), Duplicates: h.duplicates.Load(), Rejected: h.rejected.Load()}
}

type errorBody struct {
	Error  string `json:"error"`
	Row    *int   `json:"row,omitempty"`
	Column string `json:"column,omitempty"`
}

// ServeHTTP stores a body of samples, all or none.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ph-cloud"`)
		h.fail(w, http.StatusUnauthorized, errorBody{Error: "a bearer token of role lab or operator is required"})
		return
	}
	p, err := h.st.AuthenticateToken(r.Context(), token)
	if errors.Is(err, store.ErrNotFound) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ph-cloud", error="invalid_token"`)
		h.fail(w, http.StatusUnauthorized, errorBody{Error: "unknown token"})
		return
	}
	if err != nil {
		h.failed(w, err)
		return
	}
	if !p.Is(store.RoleLab, store.RoleOperator) {
		h.fail(w, http.StatusForbidden, errorBody{Error: "posting samples needs a token of role lab or operator, not " + string(p.Role)})
		return
	}
	f, err := FormatOf(r.Header.Get("Content-Type"))
	if err != nil {
		h.fail(w, http.StatusUnsupportedMediaType, errorBody{Error: err.Error()})
		return
	}
	if r.ContentLength > h.opts.Limits.MaxBytes {
		h.fail(w, http.StatusRequestEntityTooLarge, errorBody{Error: "the body is over " +
			strconv.FormatInt(h.opts.Limits.MaxBytes, 10) + " bytes"})
		return
	}
	res, err := Parse(r.Body, f, h.opts.Limits, h.opts.Now())
	if err != nil {
		var re *RowError
		switch {
		case errors.Is(err, ErrTooLarge):
			h.fail(w, http.StatusRequestEntityTooLarge, errorBody{Error: err.Error()})
		case errors.As(err, &re):
			h.fail(w, http.StatusBadRequest, rowError(re))
		default:
			h.fail(w, http.StatusBadRequest, errorBody{Error: err.Error()})
		}
		return
	}
	stored, err := h.st.StoreSamples(r.Context(), p.Name, res.Samples)
	var unknown *store.UnknownStationError
	if errors.As(err, &unknown) {
		i := slices.IndexFunc(res.Samples, func(s store.Sample) bool { return slices.Contains(unknown.Stations, s.Station) })
		h.fail(w, http.StatusBadRequest, rowError(&RowError{Row: res.Rows[i], Column: "station_id",
			Msg: "no station " + res.Samples[i].Station + " is registered"}))
		return
	}
	if err != nil {
		h.failed(w, err)
		return
	}
	reply := Reply{Accepted: stored.New + stored.Revised, Revised: stored.Revised, Duplicates: stored.Unchanged + res.Duplicates}
	h.accepted.Add(int64(reply.Accepted))
	h.duplicates.Add(int64(reply.Duplicates))
	h.log.Info("samples", "by", p.Name, "accepted", reply.Accepted, "revised", reply.Revised, "duplicates", reply.Duplicates)
	if h.opts.Stored != nil && len(stored.Stations) > 0 {
		h.opts.Stored(r.Context(), stored.Stations)
	}
	h.writeJSON(w, http.StatusOK, reply)
}

func rowError(re *RowError) errorBody {
	row := re.Row
	return errorBody{Error: re.Error(), Row: &row, Column: re.Column}
}

func (h *Handler) fail(w http.ResponseWriter, status int, body errorBody) {
	h.rejected.Add(1)
	h.writeJSON(w, status, body)
}

func (h *Handler) failed(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrUnavailable):
		h.log.Warn("samples: database unavailable", "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(int(h.opts.RetryAfter.Seconds())))
		h.fail(w, http.StatusServiceUnavailable, errorBody{Error: "database unavailable, retry later"})
	case errors.Is(err, context.Canceled):
	default:
		h.log.Error("samples failed", "err", err)
		h.fail(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
	}
}

func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		h.log.Debug("write response", "err", err)
	}
}

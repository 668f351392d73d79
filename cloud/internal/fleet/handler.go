package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
)

// Store is what the handlers read (*store.Store).
type Store interface {
	Fleet(ctx context.Context) ([]store.FleetStation, error)
	HealthHistory(ctx context.Context, station string, from, to time.Time, limit int) ([]store.HealthPoint, error)
}

// Limits of the history endpoint: a day of minute records by default, a week at most.
const (
	DefaultHistoryLimit = 1440
	MaxHistoryLimit     = 7 * 1440
	defaultHistorySpan  = 24 * time.Hour
)

// Options tune the handlers. Zero fields mean the defaults.
type Options struct {
	RetryAfter time.Duration    // sent with 503, default 5s
	Log        *slog.Logger     // default: discard
	Now        func() time.Time // default time.Now
}

// Handler serves the fleet endpoints. It is safe for concurrent use.
type Handler struct {
	store Store
	opts  Options
}

// New returns the handlers over st.
func New(st Store, opts Options) *Handler {
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Handler{store: st, opts: opts}
}

// Register adds the routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/fleet", h.fleet)
	mux.HandleFunc("GET /v1/fleet/{id}/history", h.history)
}

func (h *Handler) fleet(w http.ResponseWriter, r *http.Request) {
	list, err := h.store.Fleet(r.Context())
	if err != nil {
		h.failed(w, err)
		return
	}
	h.writeJSON(w, http.StatusOK, Build(list))
}

func (h *Handler) history(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !telemetry.ValidStationID(id) {
		h.writeError(w, http.StatusBadRequest, "not a station id", "id")
		return
	}
	q := r.URL.Query()
	to, from := h.opts.Now(), time.Time{}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"to", &to}, {"from", &from}} {
		if s := q.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				h.writeError(w, http.StatusBadRequest, "want an RFC 3339 time such as 2026-07-01T10:00:00Z", p.name)
				return
			}
			*p.t = t
		}
	}
	if from.IsZero() {
		from = to.Add(-defaultHistorySpan)
	}
	if !from.Before(to) {
		h.writeError(w, http.StatusBadRequest, "from must be before to", "from")
		return
	}
	limit := DefaultHistoryLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxHistoryLimit {
			h.writeError(w, http.StatusBadRequest, "limit must be a number from 1 to "+strconv.Itoa(MaxHistoryLimit), "limit")
			return
		}
		limit = n
	}
	points, err := h.store.HealthHistory(r.Context(), id, from, to, limit)
	if errors.Is(err, store.ErrNotFound) {
		h.writeError(w, http.StatusNotFound, "no station "+id, "id")
		return
	}
	if err != nil {
		h.failed(w, err)
		return
	}
	h.writeJSON(w, http.StatusOK, struct {
		Station string              `json:"station"`
		History []store.HealthPoint `json:"history"`
	}{id, points})
}

func (h *Handler) failed(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrUnavailable):
		h.opts.Log.Warn("database unavailable", "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(int(h.opts.RetryAfter.Seconds())))
		h.writeError(w, http.StatusServiceUnavailable, "database unavailable, retry later", "")
	case errors.Is(err, context.Canceled):
		// The client went away.
	default:
		h.opts.Log.Error("fleet query failed", "err", err)
		h.writeError(w, http.StatusInternalServerError, "internal error", "")
	}
}

func (h *Handler) writeError(w http.ResponseWriter, status int, msg, field string) {
	h.writeJSON(w, status, wire.Error{Error: msg, Field: field})
}

func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		h.opts.Log.Debug("write response", "err", err)
	}
}

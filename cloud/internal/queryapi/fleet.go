package queryapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/fleet"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// The fleet view:
//
//	GET /v1/fleet                            {"newest_version": "v1.4.0", "stations": [...]}
//	GET /v1/fleet/{id}/history?from=&to=&limit=   {"station": "ID", "history": [...]}
//
// A station of /v1/fleet is fleet.Station: the contract's id, last_seen, version,
// uptime_s, clock_synced, buffer {used_bytes, max_bytes, autonomy_h}, backlog, probes
// {total, online, failing}, calibration_due, with the fleet's verdicts version_lags and
// autonomy_low. The history lists the figures of a station's health records
// (store.HealthPoint), newest first, by default those of the day before to (now).

// defaultHistorySpan is how far back a history reaches without from.
const defaultHistorySpan = 24 * time.Hour

func (a *API) registerFleet(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/fleet", a.fleet)
	mux.HandleFunc("GET /v1/fleet/{id}/history", a.fleetHistory)
}

func (a *API) fleet(w http.ResponseWriter, r *http.Request) {
	if a.badRequest(w, newQuery(r.URL.Query())) {
		return
	}
	list, err := a.store.Fleet(r.Context())
	if err != nil {
		a.failed(w, err)
		return
	}
	a.writeJSON(w, http.StatusOK, fleet.Build(list))
}

func (a *API) fleetHistory(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !telemetry.ValidStationID(id) {
		a.writeError(w, http.StatusBadRequest, "not a station id", "id")
		return
	}
	q := newQuery(r.URL.Query(), "from", "to", "limit")
	from, to := q.timeRange()
	limit := q.limit()
	if a.badRequest(w, q) {
		return
	}
	if to.IsZero() {
		to = a.opts.Now()
	}
	if from.IsZero() {
		from = to.Add(-defaultHistorySpan)
	}
	points, err := a.store.HealthHistory(r.Context(), id, from, to, limit)
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(w, http.StatusNotFound, "no station "+id, "id")
		return
	}
	if err != nil {
		a.failed(w, err)
		return
	}
	a.writeJSON(w, http.StatusOK, struct {
		Station string              `json:"station"`
		History []store.HealthPoint `json:"history"`
	}{id, points})
}

package queryapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/purehealth/purehealth/cloud/internal/access"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// maxAckBody bounds the body of an acknowledgement.
const maxAckBody = 1 << 10

// Ack serves POST /v1/alerts/{id}/ack: it acknowledges the alert {id} of the station the
// query (?station=) or the JSON body ({"station", "origin"}) names, origin "station"
// (the default) or "cloud". The caller mounts it behind an operator check
// (access.Guard.Require); the operator's token name is who acknowledged it. The answer is
// the alert as it then stands; 404 for an unknown alert, 409 for a resolved one.
func (a *API) Ack(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		a.writeError(w, http.StatusBadRequest, "not an alert id", "id")
		return
	}
	var body struct {
		Station string `json:"station"`
		Origin  string `json:"origin"`
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxAckBody+1))
	if err != nil {
		a.writeError(w, http.StatusBadRequest, "cannot read the body", "")
		return
	}
	if len(data) > maxAckBody {
		a.writeError(w, http.StatusRequestEntityTooLarge, "body too large", "")
		return
	}
	if len(strings.TrimSpace(string(data))) > 0 {
		if err := json.Unmarshal(data, &body); err != nil {
			a.writeError(w, http.StatusBadRequest, "body: want {\"station\", \"origin\"}", "")
			return
		}
	}
	if s := r.URL.Query().Get("station"); s != "" {
		body.Station = s
	}
	if o := r.URL.Query().Get("origin"); o != "" {
		body.Origin = o
	}
	if body.Origin == "" {
		body.Origin = store.OriginStation
	}
	switch {
	case !telemetry.ValidStationID(body.Station):
		a.writeError(w, http.StatusBadRequest, "station: must be "+telemetry.StationIDRule, "station")
		return
	case body.Origin != store.OriginStation && body.Origin != store.OriginCloud:
		a.writeError(w, http.StatusBadRequest, "origin: station or cloud", "origin")
		return
	}
	who, _ := access.From(r.Context())
	by := who.Name
	if by == "" {
		by = "operator"
	}
	alert, err := a.store.AckAlert(r.Context(), body.Station, body.Origin, id, by)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.writeError(w, http.StatusNotFound, "no such alert", "id")
	case errors.Is(err, store.ErrResolved):
		a.writeJSON(w, http.StatusConflict, struct {
			Error string      `json:"error"`
			Alert store.Alert `json:"alert"`
		}{"the alert is resolved", alert})
	case err != nil:
		a.failed(w, err)
	default:
		a.writeJSON(w, http.StatusOK, alert)
	}
}

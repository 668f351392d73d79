package queryapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/store"
)

// NoModel is the "model" of a forecast answer without a forecast, as in `ph-cloud
// analyze --json`.
const NoModel = "none"

// noForecast is the answer for a series without a forecast: the forecast object with
// model "none", no skill, no points and the reason the forecast job gave when it last
// looked at the series (issued_at is when it looked; null when it never has).
type noForecast struct {
	Station  string     `json:"station"`
	Param    string     `json:"param"`
	IssuedAt *time.Time `json:"issued_at"`
	Model    string     `json:"model"`
	Skill    *struct{}  `json:"skill"`
	Points   []struct{} `json:"points"`
	Reason   string     `json:"reason"`
}

// forecast serves GET /v1/stations/{id}/forecast?param=P: the newest forecast of a
// parameter (or of the WQI, param=wqi) as the forecast job issued it, the object of
// design §5a, byte for byte as its "prediction" live message carried it. A series with no
// forecast is answered 200 all the same, with model "none", skill null, no points and
// "reason" saying why (too little history, no recent reading, not looked at yet), so
// that a client tells "no forecast" from "no such station" (404) without an error.
func (a *API) forecast(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r.URL.Query(), "param")
	param := ""
	if strings.EqualFold(q.v.Get("param"), store.WQISeries) {
		param = store.WQISeries
	} else {
		param = q.param()
	}
	if q.err == nil && param == "" {
		q.fail("param", "required: a parameter (do, ph, ...) or wqi")
	}
	if a.badRequest(w, q) {
		return
	}
	st, ok := a.stationOf(w, r)
	if !ok {
		return
	}
	rec, err := a.store.LatestForecast(r.Context(), st.ID, param)
	none := noForecast{Station: st.ID, Param: param, Model: NoModel, Points: []struct{}{}}
	switch {
	case errors.Is(err, store.ErrNotFound):
		none.Reason = "not forecast yet: the forecast job has not looked at this series"
		a.writeJSON(w, http.StatusOK, none)
		return
	case err != nil:
		a.failed(w, err)
		return
	case len(rec.Data) == 0:
		none.IssuedAt, none.Reason = &rec.IssuedAt, rec.Reason
		a.writeJSON(w, http.StatusOK, none)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(append(rec.Data, '\n')); err != nil {
		a.log.Debug("write response", "err", err)
	}
}

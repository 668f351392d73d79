package queryapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/store"
)

// noForecast is the 404 body of a series without a forecast: the error, and the reason
// the forecast job gave when it last looked at the series (with when it looked).
type noForecast struct {
	Error     string     `json:"error"`
	Field     string     `json:"field"`
	Reason    string     `json:"reason,omitempty"`
	CheckedAt *time.Time `json:"checked_at,omitempty"`
}

// forecast serves GET /v1/stations/{id}/forecast?param=P: the newest forecast of a
// parameter (or of the WQI, param=wqi) as the forecast job issued it, the object of
// design §5a, byte for byte as its "prediction" live message carried it. A series with no
// forecast is 404 with the reason (too little history, no recent reading ...).
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
	if errors.Is(err, store.ErrNotFound) {
		a.writeJSON(w, http.StatusNotFound, noForecast{Field: "param",
			Error: "no forecast of " + param + " at " + st.ID + " yet: the forecast job has not seen a reading of it"})
		return
	}
	if err != nil {
		a.failed(w, err)
		return
	}
	if len(rec.Data) == 0 {
		at := rec.IssuedAt
		a.writeJSON(w, http.StatusNotFound, noForecast{Field: "param", Reason: rec.Reason, CheckedAt: &at,
			Error: "no forecast of " + param + " at " + st.ID + ": " + rec.Reason})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(append(rec.Data, '\n')); err != nil {
		a.log.Debug("write response", "err", err)
	}
}

package samples_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/samples"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

type env struct {
	st      *store.Store
	url     string
	srv     *httptest.Server
	changed [][]string
	h       *samples.Handler
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{}
	e.st, e.url = storetest.Open(t, store.Options{})
	storetest.AddStation(t, e.st, "MH-PUNE-001")
	mux := http.NewServeMux()
	e.h = samples.New(e.st, samples.Options{Now: func() time.Time { return now }, Limits: samples.Limits{MaxBytes: 64 << 10},
		Stored: func(_ context.Context, stations []string) { e.changed = append(e.changed, stations) }})
	e.h.Register(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) post(t *testing.T, token, contentType, body string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+"/v1/samples", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil {
		require.NoError(t, json.Unmarshal(data, out), "%s", data)
	}
	return resp.StatusCode
}

func (e *env) stored(t *testing.T) int {
	t.Helper()
	rs, err := e.st.Readings(t.Context(), store.ReadingsQuery{Station: "MH-PUNE-001", Limit: 100, Revisions: true})
	require.NoError(t, err)
	return len(rs)
}

type rowErr struct {
	Error  string `json:"error"`
	Row    *int   `json:"row"`
	Column string `json:"column"`
}

func TestPostSamples(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	lab, err := e.st.AddToken(ctx, "lab-pune", store.RoleLab)
	require.NoError(t, err)
	viewer, err := e.st.AddToken(ctx, "screen", store.RoleViewer)
	require.NoError(t, err)
	operator, err := e.st.AddToken(ctx, "ops", store.RoleOperator)
	require.NoError(t, err)
	sheet, err := os.ReadFile("testdata/mpcb-pune-2025-11.csv")
	require.NoError(t, err)

	var reply samples.Reply
	require.Equal(t, http.StatusOK, e.post(t, lab, "text/csv", string(sheet), &reply))
	assert.Equal(t, samples.Reply{Accepted: 5}, reply)
	assert.Equal(t, [][]string{{"MH-PUNE-001"}}, e.changed, "the fused state is told which stations changed")

	require.Equal(t, http.StatusOK, e.post(t, lab, "text/csv; charset=utf-8", string(sheet), &reply))
	assert.Equal(t, samples.Reply{Duplicates: 5}, reply, "the same sheet again adds nothing")
	assert.Len(t, e.changed, 1)

	body := `{"samples": [{"station_id": "MH-PUNE-001", "param": "bod", "value": 4.6, "unit": "mg/L",
		"sampled_at": "2025-11-01T09:30+05:30", "sample_id": "PUN-1101-03", "lab": "MPCB Pune", "method": "APHA 5210 B"},
		{"station_id": "MH-PUNE-001", "param": "tds", "value": 310, "unit": "mg/L", "sampled_at": "2025-11-08T10:00+05:30"}]}`
	require.Equal(t, http.StatusOK, e.post(t, operator, "application/json", body, &reply))
	assert.Equal(t, samples.Reply{Accepted: 2, Revised: 1}, reply, "a corrected BOD and a new TDS, by an operator")
	assert.Equal(t, 7, e.stored(t), "five rows, a revision and a new one")

	// All or none: the unknown station in row 2 fails the body, and row 1 is not stored.
	var bad rowErr
	body = "station_id,param,value,unit,sampled_at\nMH-PUNE-001,ph,7.1,pH,2025-11-09T10:00Z\nMH-NOWHERE-9,ph,7.1,pH,2025-11-09T10:00Z\n"
	require.Equal(t, http.StatusBadRequest, e.post(t, lab, "text/csv", body, &bad))
	require.NotNil(t, bad.Row)
	assert.Equal(t, 2, *bad.Row)
	assert.Equal(t, "station_id", bad.Column)
	assert.Contains(t, bad.Error, "MH-NOWHERE-9")
	body = "station_id,param,value,unit,sampled_at\nMH-PUNE-001,ph,7.1,pH,2025-11-09T10:00Z\nMH-PUNE-001,ph,7.1,NTU,2025-11-09T11:00Z\n"
	require.Equal(t, http.StatusBadRequest, e.post(t, lab, "text/csv", body, &bad))
	assert.Equal(t, 2, *bad.Row)
	assert.Equal(t, "unit", bad.Column)
	assert.Equal(t, 7, e.stored(t), "nothing of a refused body is stored")

	var plain rowErr
	assert.Equal(t, http.StatusUnauthorized, e.post(t, "", "text/csv", string(sheet), &plain))
	assert.Equal(t, http.StatusUnauthorized, e.post(t, "pht_wrong", "text/csv", string(sheet), &plain))
	assert.Equal(t, http.StatusForbidden, e.post(t, viewer, "text/csv", string(sheet), &plain))
	assert.Contains(t, plain.Error, "viewer")
	station := storetest.AddStation(t, e.st, "MH-SANGLI-001")
	assert.Equal(t, http.StatusForbidden, e.post(t, station, "text/csv", string(sheet), &plain), "a station token cannot post samples")
	assert.Equal(t, http.StatusUnsupportedMediaType, e.post(t, lab, "text/plain", string(sheet), &plain))
	big := "station_id,param,value,unit,sampled_at\n" + strings.Repeat("MH-PUNE-001,bod,4,mg/L,2025-11-01T09:30+05:30\n", 2000)
	assert.Equal(t, http.StatusRequestEntityTooLarge, e.post(t, lab, "text/csv", big, &plain))
	assert.Equal(t, 7, e.stored(t), "five rows, a revision and a new one")
	assert.Equal(t, samples.Stats{Accepted: 7, Duplicates: 5, Rejected: 8}, e.h.Stats())
}

package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/config"
	"github.com/purehealth/purehealth/cloud/internal/server"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/shared/wire"
)

// accessEnv is a running service with require_viewer on and a token of each role.
type accessEnv struct {
	base                           string
	st                             *store.Store
	station, lab, viewer, operator string
	metrics                        string // a metrics-only token
}

func startAccessEnv(t *testing.T) *accessEnv {
	t.Helper()
	st, url := storetest.Open(t, store.Options{})
	metrics := "prometheus-scrape-token"
	cfg, err := config.Parse([]byte("database_url: " + url + "\nauth: {require_viewer: true, metrics_tokens_sha256: [" +
		config.HashViewerToken(metrics) + "]}\n"))
	require.NoError(t, err)
	e := &accessEnv{st: st, metrics: metrics, station: storetest.AddStation(t, st, "MH-PUNE-001")}
	for _, tok := range []struct {
		to   *string
		role store.Role
	}{{&e.lab, store.RoleLab}, {&e.viewer, store.RoleViewer}, {&e.operator, store.RoleOperator}} {
		*tok.to, err = st.AddToken(t.Context(), "t-"+string(tok.role), tok.role)
		require.NoError(t, err)
	}
	srv, err := server.New(cfg, st, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e.base = "http://" + ln.Addr().String()
	runServer(t, srv, ln)
	return e
}

func (e *accessEnv) do(t *testing.T, method, path, token string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, body)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(data)
}

// With auth.require_viewer every read path needs a viewer or operator token: the API,
// /stats, /metrics (or its own token) and /ws answered without one before.
func TestRequireViewerGuardsEveryReadPath(t *testing.T) {
	e := startAccessEnv(t)
	paths := []string{"/v1/stations", "/v1/stations/MH-PUNE-001", "/v1/stations/MH-PUNE-001/readings",
		"/v1/stations/MH-PUNE-001/wqi", "/v1/stations/MH-PUNE-001/status", "/v1/alerts", "/stats", "/metrics"}
	for _, p := range paths {
		code, _ := e.do(t, http.MethodGet, p, "", nil)
		assert.Equal(t, http.StatusUnauthorized, code, "%s without a token", p)
		code, _ = e.do(t, http.MethodGet, p, "guess", nil)
		assert.Equal(t, http.StatusUnauthorized, code, "%s with an unknown token", p)
		if p == "/metrics" { // it has tokens of its own: nothing else opens it
			for _, tok := range []string{e.station, e.lab, e.viewer} {
				code, _ = e.do(t, http.MethodGet, p, tok, nil)
				assert.Equal(t, http.StatusUnauthorized, code, "/metrics with another token")
			}
			code, _ = e.do(t, http.MethodGet, p, e.metrics, nil)
			assert.Equal(t, http.StatusOK, code, "/metrics with its own token")
			continue
		}
		for _, tok := range []string{e.station, e.lab} {
			code, _ = e.do(t, http.MethodGet, p, tok, nil)
			assert.Equal(t, http.StatusForbidden, code, "%s with a station or lab token", p)
		}
		for _, tok := range []string{e.viewer, e.operator} {
			code, body := e.do(t, http.MethodGet, p, tok, nil)
			assert.Equal(t, http.StatusOK, code, "%s with a reader's token: %s", p, body)
		}
	}
	for _, p := range []string{"/", "/static/app.js", "/health"} {
		code, _ := e.do(t, http.MethodGet, p, "", nil)
		assert.Equal(t, http.StatusOK, code, "%s carries no data and stays open", p)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ws := "ws" + strings.TrimPrefix(e.base, "http")
	_, resp, err := websocket.Dial(ctx, ws+"/ws", nil)
	require.Error(t, err)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "/ws without a token")
	c, _, err := websocket.Dial(ctx, ws+"/ws?token="+e.viewer, nil)
	require.NoError(t, err, "/ws with a viewer token in the query")
	c.Close(websocket.StatusNormalClosure, "")
}

// An operator acknowledges a station's alert in the cloud; it travels to the station in
// the answer to its next batch until the station's own acknowledged transition confirms
// it. A viewer may not acknowledge.
func TestAckTravelsToTheStation(t *testing.T) {
	e := startAccessEnv(t)
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	post := func(b *wire.Batch) wire.Ack {
		t.Helper()
		body, err := wire.Encode(b)
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodPost, e.base+"/v1/ingest", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+e.station)
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var ack wire.Ack
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&ack))
		return ack
	}
	b := storetest.Batch("MH-PUNE-001", nil)
	b.Alerts = []wire.AlertEvent{storetest.Alert(1, 7, "opened", "active", t0)}
	assert.Empty(t, post(b).Acks)

	code, _ := e.do(t, http.MethodPost, "/v1/alerts/7/ack?station=MH-PUNE-001", e.viewer, nil)
	assert.Equal(t, http.StatusForbidden, code, "a viewer may not acknowledge")
	code, _ = e.do(t, http.MethodPost, "/v1/alerts/7/ack?station=MH-PUNE-001", "", nil)
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _ = e.do(t, http.MethodPost, "/v1/alerts/99/ack?station=MH-PUNE-001", e.operator, nil)
	assert.Equal(t, http.StatusNotFound, code)

	code, body := e.do(t, http.MethodPost, "/v1/alerts/7/ack", e.operator, strings.NewReader(`{"station":"MH-PUNE-001"}`))
	require.Equal(t, http.StatusOK, code, body)
	var acked store.Alert
	require.NoError(t, json.Unmarshal([]byte(body), &acked))
	assert.Equal(t, "acknowledged", string(acked.State))
	assert.Equal(t, "t-operator", acked.AcknowledgedBy)
	assert.True(t, acked.AckPending)
	code, _ = e.do(t, http.MethodPost, "/v1/alerts/7/ack?station=MH-PUNE-001", e.operator, nil)
	assert.Equal(t, http.StatusOK, code, "acknowledging twice is not an error")

	// The station's next exchange carries it, until the station confirms.
	b.Alerts = nil
	b.Readings = storetest.Readings(1, 1, t0, time.Second)
	ack := post(b)
	require.Len(t, ack.Acks, 1)
	assert.Equal(t, uint64(7), ack.Acks[0].ID)
	assert.Equal(t, "t-operator", ack.Acks[0].By)
	// A transition of the station that is not the confirmation keeps it acknowledged.
	esc := storetest.Alert(2, 7, "escalated", "active", t0)
	esc.Time = t0.Add(time.Minute)
	b.Readings, b.Alerts = nil, []wire.AlertEvent{esc}
	require.Len(t, post(b).Acks, 1, "still not confirmed")
	alerts, err := e.st.Alerts(t.Context(), store.AlertQuery{Station: "MH-PUNE-001", Limit: 5})
	require.NoError(t, err)
	assert.Equal(t, "acknowledged", string(alerts[0].State), "an acknowledgement waiting for the station holds")

	conf := storetest.Alert(3, 7, "acknowledged", "acknowledged", t0)
	confAt := ack.Acks[0].At.Add(time.Second)
	conf.Time, conf.AcknowledgedAt, conf.AcknowledgedBy = confAt, &confAt, "t-operator"
	b.Alerts = []wire.AlertEvent{conf}
	assert.Empty(t, post(b).Acks, "confirmed: no longer sent")
	alerts, err = e.st.Alerts(t.Context(), store.AlertQuery{Station: "MH-PUNE-001", Limit: 5})
	require.NoError(t, err)
	assert.Equal(t, "acknowledged", string(alerts[0].State))
	assert.Equal(t, ack.Acks[0].At, alerts[0].AcknowledgedAt.UTC(), "the first acknowledgement is the one kept")
	assert.False(t, alerts[0].AckPending)

	res := storetest.Alert(4, 7, "resolved", "resolved", t0)
	resAt := t0.Add(time.Hour)
	res.Time, res.ResolvedAt = resAt, &resAt
	b.Alerts = []wire.AlertEvent{res}
	post(b)
	code, _ = e.do(t, http.MethodPost, "/v1/alerts/7/ack?station=MH-PUNE-001", e.operator, nil)
	assert.Equal(t, http.StatusConflict, code, "a resolved alert cannot be acknowledged")
}

// With metrics.listen, /metrics moves to its own address and answers there without a
// token (Prometheus on a management network), while the API's listener, guarded or not,
// no longer serves it.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	st, url := storetest.Open(t, store.Options{})
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg, err := config.Parse([]byte("database_url: " + url + "\nauth: {require_viewer: true}\nmetrics: {listen: \"" +
		mln.Addr().String() + "\"}\n"))
	require.NoError(t, err)
	viewer, err := st.AddToken(t.Context(), "t-viewer", store.RoleViewer)
	require.NoError(t, err)
	srv, err := server.New(cfg, st, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	srv.ServeMetricsOn(mln)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e := &accessEnv{base: "http://" + ln.Addr().String()}
	stop := runServer(t, srv, ln)

	code, _ := e.do(t, http.MethodGet, "/metrics", viewer, nil)
	assert.Equal(t, http.StatusNotFound, code, "/metrics on the API's listener")
	code, _ = e.do(t, http.MethodGet, "/v1/stations", "", nil)
	assert.Equal(t, http.StatusUnauthorized, code, "the API stays guarded")

	m := &accessEnv{base: "http://" + mln.Addr().String()}
	code, body := m.do(t, http.MethodGet, "/metrics", "", nil)
	assert.Equal(t, http.StatusOK, code, "/metrics on its own listener needs no token")
	assert.Contains(t, body, "ph_ws_clients ")
	for _, p := range []string{"/v1/stations", "/stats", "/", "/ws"} {
		code, _ = m.do(t, http.MethodGet, p, "", nil)
		assert.Equal(t, http.StatusNotFound, code, "%s is not on the metrics listener", p)
	}

	stop()
	_, err = net.DialTimeout("tcp", mln.Addr().String(), time.Second)
	assert.Error(t, err, "the metrics listener is closed after Run")
}

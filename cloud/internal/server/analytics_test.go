package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
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

// nightlyLowDO is ten days of DO that dips below class B's 5 mg/L every night.
func nightlyLowDO(end time.Time) []wire.Reading {
	var rs []wire.Reading
	level := 0.0
	seq := uint64(0)
	for at := end.Add(-10 * 24 * time.Hour); at.Before(end); at = at.Add(10 * time.Minute) {
		seq++
		h := float64(at.Unix()%86400) / 3600
		level = 0.995*level + 0.01*math.Sin(float64(seq)*1.7)
		v := 5.6 + level + 0.8*math.Sin(2*math.Pi*(h-9)/24) + 0.03*math.Sin(float64(seq)*12.9898)
		rs = append(rs, wire.Reading{Seq: seq, Time: at, Sensor: "do-1", Param: "do", Value: math.Round(v*1000) / 1000,
			Unit: "mg/L", Quality: "good", Source: "sensor"})
	}
	return rs
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// analyticsService is the service running over a station with ten days of DO that dips
// below its class's minimum every night (and one with too little history), its forecast
// round running at start.
type analyticsService struct {
	store *store.Store
	url   string
	base  string
	ln    net.Listener
	mark  int64 // the last event before the service started
}

func startAnalytics(t *testing.T) analyticsService {
	t.Helper()
	url := storetest.Migrated(t)
	st := storetest.OpenURL(t, url, store.Options{})
	const station = "MH-PUNE-001"
	_, err := st.AddStation(t.Context(), store.NewStation{ID: station, Name: "Sangam", Class: "B",
		River: &store.River{Name: "Mula-Mutha", Km: 0.5}})
	require.NoError(t, err)
	storetest.AddStation(t, st, "SHORT")
	end := time.Now().UTC().Truncate(time.Minute)
	rs := nightlyLowDO(end)
	for len(rs) > 0 {
		n := min(len(rs), 2000)
		_, err := st.Ingest(t.Context(), station, storetest.Batch(station, rs[:n]))
		require.NoError(t, err)
		rs = rs[n:]
	}
	_, err = st.Ingest(t.Context(), "SHORT", storetest.Batch("SHORT", storetest.Readings(1, 40, end.Add(-time.Hour), time.Minute)))
	require.NoError(t, err)
	_, mark, err := st.EventBounds(t.Context())
	require.NoError(t, err)

	cfg, err := config.Parse([]byte("database_url: " + url + "\nwebsocket: {poll_interval: 200ms}\n" +
		"forecast: {interval: 1h, timezone: Asia/Kolkata}\nanomaly: {interval: 1h}\n"))
	require.NoError(t, err)
	srv, err := server.New(cfg, st, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()
	runServer(t, srv, ln)
	return analyticsService{store: st, url: url, base: base, ln: ln, mark: mark}
}

// TestForecastServedPushedAndWarned runs the whole service: the forecast job's first
// round forecasts a station's history, a WebSocket client receives the forecast as a
// "prediction" message, the API serves the same object, and the early warning is an
// alert with its evidence; a station with too little history gets the reason.
func TestForecastServedPushedAndWarned(t *testing.T) {
	a := startAnalytics(t)
	base, ln, mark := a.base, a.ln, a.mark
	const station = "MH-PUNE-001"

	// A client that resumes from before the service started sees what the first round
	// published, whenever it ran.
	ws := dialWS(t, "ws://"+ln.Addr().String()+"/ws")
	sub, err := json.Marshal(map[string]any{"type": "subscribe", "stations": []string{station}, "since": fmt.Sprint(mark)})
	require.NoError(t, err)
	require.NoError(t, ws.conn.Write(t.Context(), websocket.MessageText, sub))
	var prediction, warning json.RawMessage
	for prediction == nil || warning == nil {
		m, err := ws.next()
		require.NoError(t, err, "waiting for the prediction and the warning")
		switch {
		case m.Type == "prediction" && strings.Contains(string(m.Data), `"param":"do"`):
			assert.Equal(t, station, m.Station)
			prediction = m.Data
		case m.Type == "alert" && strings.Contains(string(m.Data), `"rule":"forecast_breach"`):
			warning = m.Data
		}
	}

	code, body := get(t, base+"/v1/stations/"+station+"/forecast?param=do")
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.JSONEq(t, string(prediction), string(body), "the API serves what was pushed")
	var f struct {
		Station  string    `json:"station"`
		Param    string    `json:"param"`
		IssuedAt time.Time `json:"issued_at"`
		Model    string    `json:"model"`
		Skill    struct {
			MASE           *float64 `json:"mase"`
			Coverage80     *float64 `json:"coverage80"`
			Coverage95     *float64 `json:"coverage95"`
			BacktestPoints int      `json:"backtest_points"`
		} `json:"skill"`
		Points []map[string]any `json:"points"`
	}
	require.NoError(t, json.Unmarshal(body, &f))
	assert.Equal(t, station, f.Station)
	assert.Equal(t, "do", f.Param)
	assert.NotEmpty(t, f.Model)
	require.NotNil(t, f.Skill.MASE)
	require.NotNil(t, f.Skill.Coverage80)
	require.NotNil(t, f.Skill.Coverage95)
	assert.Positive(t, f.Skill.BacktestPoints)
	require.Len(t, f.Points, 24)
	for _, k := range []string{"time", "value", "lo80", "hi80", "lo95", "hi95"} {
		assert.Contains(t, f.Points[0], k)
	}

	var w store.AlertChange
	require.NoError(t, json.Unmarshal(warning, &w))
	assert.Equal(t, "opened", w.Transition)
	assert.Equal(t, store.OriginCloud, w.Origin)
	assert.Contains(t, w.Message, "DO is forecast to fall below 5 mg/L around")
	code, body = get(t, base+"/v1/alerts?station="+station)
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, string(body), `"rule":"forecast_breach"`)
	assert.Contains(t, string(body), `"evidence":{"limit":{"set":"cpcb-class-B","param":"do","bound":"min","value":5`)

	// Too little history: the reason, with no model, skill or points; a parameter never
	// looked at says so; bad input: 400; no such station: 404.
	var short struct {
		Model    string     `json:"model"`
		Skill    any        `json:"skill"`
		Points   []any      `json:"points"`
		Reason   string     `json:"reason"`
		IssuedAt *time.Time `json:"issued_at"`
	}
	// The round may still be on its way to that station.
	require.Eventually(t, func() bool {
		code, body = get(t, base+"/v1/stations/SHORT/forecast?param=do")
		return code == http.StatusOK && json.Unmarshal(body, &short) == nil && short.IssuedAt != nil
	}, 15*time.Second, 50*time.Millisecond, "the reason of SHORT: %s", body)
	assert.Equal(t, "none", short.Model)
	assert.Nil(t, short.Skill)
	assert.NotNil(t, short.Points)
	assert.Empty(t, short.Points)
	assert.Contains(t, short.Reason, "too little history")
	code, body = get(t, base+"/v1/stations/"+station+"/forecast?param=bod")
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"station":"MH-PUNE-001","param":"bod","issued_at":null,"model":"none","skill":null,"points":[],`+
		`"reason":"not forecast yet: the forecast job has not looked at this series"}`, string(body))
	code, _ = get(t, base+"/v1/stations/"+station+"/forecast")
	assert.Equal(t, http.StatusBadRequest, code)
	code, _ = get(t, base+"/v1/stations/"+station+"/forecast?param=mood")
	assert.Equal(t, http.StatusBadRequest, code)
	code, _ = get(t, base+"/v1/stations/NOPE/forecast?param=do")
	assert.Equal(t, http.StatusNotFound, code)

	code, body = get(t, base+"/v1/stations")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, string(body), `"river":"Mula-Mutha","river_km":0.5`)
}

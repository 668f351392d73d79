package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/config"
	"github.com/purehealth/purehealth/cloud/internal/server"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/shared/wire"
)

// wsMsg is a live message as a client sees it.
type wsMsg struct {
	Type    string          `json:"type"`
	ID      int64           `json:"id"`
	Station string          `json:"station"`
	Data    json.RawMessage `json:"data"`
}

type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialWS(t *testing.T, url string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err, "dial %s", url)
	conn.SetReadLimit(1 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	return &wsClient{t: t, conn: conn}
}

func (c *wsClient) next() (wsMsg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, data, err := c.conn.Read(ctx)
	if err != nil {
		return wsMsg{}, err
	}
	var m wsMsg
	return m, json.Unmarshal(data, &m)
}

// subscribe subscribes and waits for the acknowledgement.
func (c *wsClient) subscribe(stations ...string) {
	c.t.Helper()
	b, err := json.Marshal(map[string]any{"type": "subscribe", "stations": stations})
	require.NoError(c.t, err)
	require.NoError(c.t, c.conn.Write(c.t.Context(), websocket.MessageText, b))
	for {
		m, err := c.next()
		require.NoError(c.t, err)
		if m.Type == "status" && m.Station == "" && strings.Contains(string(m.Data), "subscribed") {
			return
		}
	}
}

// events reads n messages about stations.
func (c *wsClient) events(n int) []wsMsg {
	c.t.Helper()
	var out []wsMsg
	for len(out) < n {
		m, err := c.next()
		require.NoError(c.t, err, "after %d of %d events", len(out), n)
		require.NotEmpty(c.t, m.Station, "unexpected %+v", m)
		out = append(out, m)
	}
	return out
}

func postBatch(t *testing.T, base, token string, b *wire.Batch) int {
	t.Helper()
	body, err := wire.Encode(b)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, base+"/v1/ingest", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	return resp.StatusCode
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", url, b)
	return string(b)
}

// TestStatsMetricsAndStationHealth runs the service with the store's clock under the
// test's control: data flows to a WebSocket client, /stats and /metrics count it, and the
// station health job takes the silent station offline (a status message on the
// WebSocket) once the clock moves on.
func TestStatsMetricsAndStationHealth(t *testing.T) {
	url := storetest.Migrated(t)
	var offset atomic.Int64
	st := storetest.OpenURL(t, url, store.Options{LiveMaxAge: 2 * time.Hour,
		Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	const station = "MH-PUNE-001"
	token := storetest.AddStation(t, st, station)
	cfg, err := config.Parse([]byte("database_url: " + url + "\nstation_health: {interval: 1s, offline_after: 1m}\nwebsocket: {poll_interval: 200ms}\n"))
	require.NoError(t, err)
	srv, err := server.New(cfg, st, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()
	runServer(t, srv, ln)

	ws := dialWS(t, "ws://"+ln.Addr().String()+"/ws")
	ws.subscribe("*")
	assert.Equal(t, http.StatusUnauthorized, postBatch(t, base, "pht_wrong", storetest.Batch(station, nil)))
	rs := storetest.Readings(1, 10, time.Now().Add(-time.Hour), time.Minute)
	require.Equal(t, http.StatusOK, postBatch(t, base, token, storetest.Batch(station, rs)))
	got := ws.events(10)
	assert.Equal(t, "reading", got[9].Type)

	var stats server.Snapshot
	require.NoError(t, json.Unmarshal([]byte(getBody(t, base+"/stats")), &stats))
	assert.Equal(t, int64(1), stats.WebSocket.Clients)
	assert.GreaterOrEqual(t, stats.WebSocket.MessagesSent, int64(11), "an acknowledgement and ten readings")
	assert.Equal(t, int64(10), stats.WebSocket.Events)
	assert.Equal(t, int64(1), stats.Ingest.Batches)
	assert.Equal(t, int64(10), stats.Ingest.NewReadings)
	assert.Equal(t, int64(1), stats.Ingest.Rejects["unauthorized"])
	require.Contains(t, stats.Stations, station)
	assert.NotNil(t, stats.Stations[station].LastBatchAt)
	assert.True(t, stats.Stations[station].Online)
	assert.Equal(t, int32(10), stats.Database.MaxConns)

	metrics := getBody(t, base+"/metrics")
	for _, want := range []string{
		"ph_ws_clients 1", "ph_ws_connections_total 1", "ph_ingest_batches_total 1",
		`ph_ingest_rows_total{stream="readings"} 10`, `ph_ingest_rejects_total{reason="unauthorized"} 1`,
		`ph_ws_evictions_total{reason="slow_consumer"} 0`, `ph_station_online{station="MH-PUNE-001"} 1`,
		`ph_station_last_seen_timestamp_seconds{station="MH-PUNE-001"}`, "ph_db_pool_max_connections 10",
		"ph_events_received_total 10", "ph_stats_stations_up 1", "go_goroutines", "process_resident_memory_bytes",
	} {
		assert.Contains(t, metrics, want)
	}
	assert.Regexp(t, `ph_ws_messages_sent_total 1[1-9]`, metrics)

	// Silence: the health job (every second) takes the station offline.
	offset.Store(int64(2 * time.Minute))
	got = ws.events(2)
	assert.Equal(t, []string{"status", "alert"}, []string{got[0].Type, got[1].Type})
	assert.Contains(t, string(got[0].Data), `"state":"offline"`)
	assert.Contains(t, string(got[1].Data), `"rule":"station_offline"`)
	require.NoError(t, json.Unmarshal([]byte(getBody(t, base+"/stats")), &stats))
	assert.False(t, stats.Stations[station].Online)
	health := stats.Jobs["station health"]
	assert.GreaterOrEqual(t, health.Runs, int64(1), "the health job's rounds in /stats: %+v", stats.Jobs)
	assert.Zero(t, health.Failures)
	assert.Equal(t, 1.0, health.IntervalSeconds)
	assert.Contains(t, stats.Jobs, "forecasts", "every background job is listed")
	metrics = getBody(t, base+"/metrics")
	assert.Contains(t, metrics, `ph_station_online{station="MH-PUNE-001"} 0`)
	assert.Regexp(t, `ph_job_runs_total\{job="station health"\} [1-9]`, metrics)
	assert.Contains(t, metrics, `ph_job_failures_total{job="station health"} 0`)
	alerts := getBody(t, base+"/v1/alerts?station="+station)
	assert.Contains(t, alerts, `"origin":"cloud"`)

	// Data again: back online.
	require.Equal(t, http.StatusOK, postBatch(t, base, token, storetest.Batch(station, storetest.Readings(11, 1, time.Now(), time.Second))))
	got = ws.events(3)
	assert.Equal(t, []string{"status", "alert", "reading"}, []string{got[0].Type, got[1].Type, got[2].Type})
	assert.Contains(t, string(got[0].Data), `"state":"online"`)

	// A backlog older than LiveMaxAge: announced, not streamed.
	require.Equal(t, http.StatusOK, postBatch(t, base, token, storetest.Batch(station, storetest.Readings(12, 50, time.Now().Add(-5*time.Hour), time.Second))))
	require.Equal(t, http.StatusOK, postBatch(t, base, token, storetest.Batch(station, storetest.Readings(62, 1, time.Now(), time.Second))))
	got = ws.events(2)
	assert.Equal(t, []string{"status", "reading"}, []string{got[0].Type, got[1].Type})
	var notice store.Backfill
	require.NoError(t, json.Unmarshal(got[0].Data, &notice))
	assert.EqualValues(t, 50, notice.Backfill.Readings)
}

// buildCloud builds ph-cloud once per test binary.
var builtCloud struct {
	path string
	err  error
}

func buildCloud(t *testing.T) string {
	t.Helper()
	if builtCloud.path == "" && builtCloud.err == nil {
		dir, err := os.MkdirTemp("", "ph-cloud-bin-")
		require.NoError(t, err)
		builtCloud.path = filepath.Join(dir, "ph-cloud")
		out, err := exec.Command("go", "build", "-o", builtCloud.path, "github.com/purehealth/purehealth/cloud").CombinedOutput()
		if err != nil {
			builtCloud.err = fmt.Errorf("go build: %w: %s", err, out)
		}
	}
	require.NoError(t, builtCloud.err)
	return builtCloud.path
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// startCloud runs `ph-cloud serve` on addr and waits for /health. stop sends SIGTERM and
// checks that it exits 0; it runs when the test ends too.
func startCloud(t *testing.T, bin, dbURL, addr string) (stop func()) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cloud.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil,
		"listen: %q\ndatabase_url: %q\nlog: {level: warn}\nwebsocket: {poll_interval: 500ms}\n", addr, dbURL), 0o600))
	logf, err := os.Create(filepath.Join(dir, "cloud.log"))
	require.NoError(t, err)
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Logf("signal ph-cloud: %v", err)
			}
			select {
			case err := <-exited:
				assert.NoError(t, err, "ph-cloud exits 0 on SIGTERM")
			case <-time.After(40 * time.Second):
				cmd.Process.Kill()
				t.Error("ph-cloud did not stop on SIGTERM")
			}
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("ph-cloud %s log:\n%s", addr, b)
			}
		})
	}
	t.Cleanup(stop)
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "ph-cloud at %s did not come up", addr)
	return stop
}

// TestTwoReplicasShareTheStream runs two ph-cloud processes on one database: batches
// ingested at either reach the WebSocket clients of both, as the same messages in the
// same order.
func TestTwoReplicasShareTheStream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs ph-cloud")
	}
	bin := buildCloud(t)
	url := pgtest.New(t)
	_, err := store.Migrate(t.Context(), url, store.MigrateOptions{})
	require.NoError(t, err)
	st := storetest.OpenURL(t, url, store.Options{})
	tokens := map[string]string{"ST-A": storetest.AddStation(t, st, "ST-A"), "ST-B": storetest.AddStation(t, st, "ST-B")}

	a, b := freeAddr(t), freeAddr(t)
	stopA := startCloud(t, bin, url, a)
	startCloud(t, bin, url, b)
	onA, onB := dialWS(t, "ws://"+a+"/ws"), dialWS(t, "ws://"+b+"/ws")
	onA.subscribe("*")
	onB.subscribe("*")
	onlyB := dialWS(t, "ws://"+b+"/ws/station/ST-B")
	for {
		m, err := onlyB.next()
		require.NoError(t, err)
		if m.Type == "status" {
			break
		}
	}

	start := time.Now().Add(-time.Hour)
	for i := range 6 {
		id, at := "ST-A", a // alternate stations and the replica that ingests
		if i%2 == 1 {
			id, at = "ST-B", b
		}
		rs := storetest.Readings(uint64(i*5+1), 5, start.Add(time.Duration(i)*time.Minute), time.Second)
		require.Equal(t, http.StatusOK, postBatch(t, "http://"+at, tokens[id], storetest.Batch(id, rs)))
	}
	fromA, fromB := onA.events(30), onB.events(30)
	assert.Equal(t, fromA, fromB, "both replicas send the same stream in the same order")
	stationOf := map[string]int{}
	for i, m := range fromB {
		stationOf[m.Station]++
		if i > 0 {
			assert.Greater(t, m.ID, fromB[i-1].ID)
		}
	}
	assert.Equal(t, map[string]int{"ST-A": 15, "ST-B": 15}, stationOf, "batches ingested at A reach B's clients")
	onlyBs := onlyB.events(15)
	for _, m := range onlyBs {
		assert.Equal(t, "ST-B", m.Station)
	}

	// Shutting a replica down closes its clients with 1001; the other one goes on.
	stopA()
	_, err = onA.next()
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
	require.Equal(t, http.StatusOK, postBatch(t, "http://"+b, tokens["ST-A"],
		storetest.Batch("ST-A", storetest.Readings(100, 1, time.Now(), time.Second))))
	last := onB.events(1)
	assert.Equal(t, "ST-A", last[0].Station)
}

package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/purehealth/purehealth/cloud/internal/config"
	"github.com/purehealth/purehealth/cloud/internal/server"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/cloud/internal/upstream/upstreamtest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/internal/testrun"
	"github.com/purehealth/purehealth/shared/wire"
)

func TestMain(m *testing.M) {
	code := upstreamtest.Wrap(func() int { return pgtest.Main(m) })
	if builtCloud.path != "" {
		os.RemoveAll(filepath.Dir(builtCloud.path))
	}
	os.Exit(code)
}

type health struct {
	Status   string `json:"status"`
	Database struct {
		Status  string `json:"status"`
		Schema  int    `json:"schema"`
		Storage string `json:"storage"`
		Error   string `json:"error"`
	} `json:"database"`
	Ingest struct {
		Batches     int64 `json:"batches"`
		NewReadings int64 `json:"new_readings"`
	} `json:"ingest"`
}

func getHealth(t *testing.T, base string) (int, health) {
	t.Helper()
	resp, err := http.Get(base + "/health")
	require.NoError(t, err)
	defer resp.Body.Close()
	var h health
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&h))
	return resp.StatusCode, h
}

// TestServeIngestQueryHealthShutdown runs the whole service on a real listener: an agent's
// batch goes in, the API shows it, /health follows the database, and cancelling the
// context shuts everything down.
func TestServeIngestQueryHealthShutdown(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.CreateDB(t)
	_, err := store.Migrate(t.Context(), url, store.MigrateOptions{})
	require.NoError(t, err)
	cfg, err := config.Parse([]byte("database_url: " + url + "\ningest: {retry_after: 1s}\n"))
	require.NoError(t, err)
	st := storetest.OpenURL(t, url, store.Options{QueryTimeout: 2 * time.Second})
	token := storetest.AddStation(t, st, "MH-PUNE-001")
	srv, err := server.New(cfg, st, slog.New(slog.DiscardHandler))
	require.NoError(t, err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()

	code, h := getHealth(t, base)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", h.Status)
	assert.Equal(t, store.SchemaVersion(), h.Database.Schema)
	assert.Equal(t, "plain", h.Database.Storage)

	body, err := wire.Encode(storetest.Batch("MH-PUNE-001", storetest.Readings(1, 10, time.Now().Add(-time.Hour), time.Minute)))
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, base+"/v1/ingest", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var ack wire.Ack
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ack))
	resp.Body.Close()
	assert.Equal(t, uint64(10), ack.AckedSeq)

	resp, err = http.Get(base + "/v1/stations/MH-PUNE-001/readings?limit=3")
	require.NoError(t, err)
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(data), `"seq":10`)

	code, h = getHealth(t, base)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, int64(1), h.Ingest.Batches)
	assert.Equal(t, int64(10), h.Ingest.NewReadings)

	require.NoError(t, pg.Stop("fast"))
	code, h = getHealth(t, base)
	assert.Equal(t, http.StatusServiceUnavailable, code, "health follows the database")
	assert.Equal(t, "unavailable", h.Database.Status)
	require.NoError(t, pg.Start())
	require.Eventually(t, func() bool { code, _ := getHealth(t, base); return code == http.StatusOK },
		10*time.Second, 100*time.Millisecond, "health recovers with the database")

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "a requested shutdown is not an error")
	case <-time.After(server.ShutdownTimeout + 5*time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	_, err = http.Get(base + "/health")
	assert.Error(t, err, "the listener is closed after Run returns")
}

// TestRunStopsWhenServingFails: a listener that fails ends Run with the server's error,
// and Run stops the fan-out feed and the jobs before it returns.
func TestRunStopsWhenServingFails(t *testing.T) {
	url := storetest.Migrated(t)
	cfg, err := config.Parse([]byte("database_url: " + url + "\n"))
	require.NoError(t, err)
	st := storetest.OpenURL(t, url, store.Options{})
	srv, err := server.New(cfg, st, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, ln.Close())

	ignore := goleak.IgnoreCurrent()
	done := make(chan error, 1)
	go func() { done <- srv.Run(t.Context(), ln) }()
	select {
	case err := <-done:
		require.Error(t, err)
		assert.Contains(t, err.Error(), "http server: ")
	case <-time.After(server.ShutdownTimeout + 5*time.Second):
		t.Fatal("Run did not return after serving failed")
	}
	goleak.VerifyNone(t, ignore)
}

// runServer runs srv on ln until stop is called, or the test ends, and checks that Run
// then returns nil in time.
func runServer(t *testing.T, srv *server.Server, ln net.Listener) (stop func()) {
	t.Helper()
	return testrun.Go(t, func(ctx context.Context) error { return srv.Run(ctx, ln) }, server.ShutdownTimeout+5*time.Second)
}

package daemon

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/agent/internal/config"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/agent/internal/uplink"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
)

const guard = 30 * time.Second

// cloud answers the ingest contract, or 503 while down.
type cloud struct {
	mu       sync.Mutex
	down     bool
	readings map[uint64]bool
	sent     map[uint64]wire.Reading // as received, when set
}

func (c *cloud) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down || r.Header.Get("Authorization") != "Bearer tok" {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	b, err := wire.Decode(r.Body, wire.IsGzip(r.Header.Get("Content-Encoding")))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var top uint64
	for _, x := range b.Readings {
		c.readings[x.Seq] = true
		if c.sent != nil {
			c.sent[x.Seq] = x
		}
		top = max(top, x.Seq)
	}
	ack := wire.Ack{AckedSeq: top, Acked: map[string]uint64{"readings": top}}
	for _, a := range b.Alerts {
		ack.Acked["alerts"] = max(ack.Acked["alerts"], a.Seq)
	}
	for _, x := range b.WQI {
		ack.Acked["wqi"] = max(ack.Acked["wqi"], x.Seq)
	}
	_ = json.NewEncoder(w).Encode(ack) // the agent may be gone
}

func (c *cloud) setDown(down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = down
}

func (c *cloud) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.readings)
}

// The daemon runs the uplink: flush forwards, the queue shows the uplink's state and
// lanes, and at shutdown the uplink returns before the buffer closes.
func TestUplinkWiring(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // registered first: runs last

	c := &cloud{readings: map[uint64]bool{}}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	tokenPath := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenPath, []byte("tok\n"), 0o600))
	cfg, err := config.Parse([]byte(`
station: {id: MH-D-001, class: B}
data_dir: ` + filepath.Join(dir, "data") + `
admin_socket: ` + filepath.Join(dir, "admin.sock") + `
mqtt: {listen: "127.0.0.1:0", allow_anonymous: true}
clock: {sync_check: none}
uplink: {url: "` + srv.URL + `", token_file: ` + tokenPath + `, interval: 1h, backoff_max: 1s}
`))
	require.NoError(t, err)
	d, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NotNil(t, d.uplink)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	client := admin.NewClient(cfg.AdminSocket)
	require.Eventually(t, func() bool {
		_, err := client.Queue(t.Context())
		return err == nil
	}, guard, 10*time.Millisecond, "admin API up")

	var rs []telemetry.Reading
	for i := range 30 {
		rs = append(rs, telemetry.Reading{Station: "MH-D-001", Sensor: "ph-1", Param: telemetry.PH, Unit: "pH",
			Value: 7, Time: time.Now().Add(time.Duration(i) * time.Second), Source: telemetry.SourceSensor,
			Quality: telemetry.Good})
	}
	_, err = d.spool.AppendReadings(t.Context(), rs)
	require.NoError(t, err)

	q, err := client.Flush(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 30, c.count(), "flush forwarded everything")
	assert.Equal(t, "idle", q.State)
	assert.Zero(t, q.Backlog)
	assert.Equal(t, uint64(30), q.LastAckedSeq)
	assert.False(t, q.LastSuccessAt.IsZero())
	assert.Equal(t, uplink.DefaultBatchMax, q.BatchMax)
	raw, err := json.Marshal(q)
	require.NoError(t, err)
	var keys map[string]any
	require.NoError(t, json.Unmarshal(raw, &keys))
	for _, k := range []string{"backlog", "oldest_unsent_at", "last_acked_seq", "last_success_at", "lanes",
		"consecutive_failures", "bytes_today", "rejected"} {
		assert.Contains(t, keys, k)
	}

	// The cloud fails: flush says so, the queue shows the retry state.
	c.setDown(true)
	_, err = d.spool.AppendReadings(t.Context(), rs[:5])
	require.NoError(t, err)
	_, err = client.Flush(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "forwarding failed")
	q, err = client.Queue(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "backing off", q.State)
	assert.Equal(t, 1, q.ConsecutiveFailures)
	assert.Contains(t, q.LastError, "503")
	assert.Equal(t, 5, q.Backlog)
	require.Len(t, q.Lanes, 3)
	assert.Equal(t, admin.Lane{Stream: "readings", Backlog: 5, Live: 5, Cursor: 30, LastSeq: 35}, q.Lanes[2])
	st, err := client.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "backing off", st.Uplink.State)

	c.setDown(false)
	q, err = client.Flush(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 35, c.count())
	assert.Zero(t, q.ConsecutiveFailures)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(guard):
		t.Fatal("Run did not return")
	}
	assert.ErrorIs(t, d.spool.Put(context.Background(), "k", []byte("v")), spool.ErrClosed,
		"the buffer is closed once Run has returned")
	assert.ErrorIs(t, d.uplink.Flush(context.Background()), uplink.ErrNotRunning, "the uplink stopped with Run")
}

// Without uplink.url the daemon keeps everything locally and says so.
func TestNoUplink(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(`
station: {id: MH-D-002, class: B}
data_dir: ` + filepath.Join(dir, "data") + `
mqtt: {listen: "127.0.0.1:0", allow_anonymous: true}
clock: {sync_check: none}
`))
	require.NoError(t, err)
	d, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, d.spool.Close()) })
	assert.Nil(t, d.uplink)
	q, err := backend{d}.Queue(t.Context())
	require.NoError(t, err)
	assert.False(t, q.Configured)
	assert.Equal(t, "not configured", q.State)
	assert.ErrorIs(t, backend{d}.Flush(t.Context()), admin.ErrUnavailable)
}

// A lab sample entered through the admin API is stored with its provenance, listed among
// the readings and forwarded with it.
func TestSampleAdd(t *testing.T) {
	c := &cloud{readings: map[uint64]bool{}, sent: map[uint64]wire.Reading{}}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	tokenPath := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenPath, []byte("tok\n"), 0o600))
	cfg, err := config.Parse([]byte(`
station: {id: MH-D-001, class: B}
data_dir: ` + filepath.Join(dir, "data") + `
admin_socket: ` + filepath.Join(dir, "admin.sock") + `
mqtt: {listen: "127.0.0.1:0", allow_anonymous: true}
clock: {sync_check: none}
uplink: {url: "` + srv.URL + `", token_file: ` + tokenPath + `, interval: 1h, backoff_max: 1s}
`))
	require.NoError(t, err)
	d, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	client := admin.NewClient(cfg.AdminSocket)
	require.Eventually(t, func() bool {
		_, err := client.Queue(t.Context())
		return err == nil
	}, guard, 10*time.Millisecond, "admin API up")

	taken := time.Now().Add(-72 * time.Hour).UTC().Truncate(time.Second)
	got, err := client.AddSample(t.Context(), admin.SampleRequest{Param: "bod", Value: 3.1, Unit: "mg/L", Time: taken,
		SampleID: "PUN-1201-01", Lab: "MPCB Pune", Method: "APHA 5210 B"})
	require.NoError(t, err)
	assert.Equal(t, "manual", got.Source)
	assert.Equal(t, "PUN-1201-01", got.SampleID)
	assert.Equal(t, "good", got.Quality)
	_, err = client.AddSample(t.Context(), admin.SampleRequest{Param: "bod", Value: 3.1, Unit: "NTU", Time: taken})
	assert.ErrorContains(t, err, "invalid sample")

	list, err := client.Readings(t.Context(), admin.ReadingsQuery{Param: "bod", Limit: 5})
	require.NoError(t, err)
	require.Len(t, list.Readings, 1)
	assert.Equal(t, got, list.Readings[0])

	_, err = client.Flush(t.Context())
	require.NoError(t, err)
	c.mu.Lock()
	sent := c.sent[got.Seq]
	c.mu.Unlock()
	assert.Equal(t, "manual", sent.Source)
	assert.Equal(t, "PUN-1201-01", sent.SampleID)
	assert.Equal(t, "MPCB Pune", sent.Lab)
	assert.Equal(t, "APHA 5210 B", sent.Method)
	assert.Equal(t, taken, sent.Time)
}

// wqi.freshness_by_source reaches the station's index: a lab's BOD three days old feeds
// the WQI under the default 31 days for manual BOD, and not once the file shortens it.
func TestSampleFreshnessBySource(t *testing.T) {
	for _, tc := range []struct {
		name, wqi string
		feeds     bool
	}{
		{"default", "", true},
		{"shorter", "wqi: {freshness_by_source: {manual: {bod: 24h}}}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg, err := config.Parse([]byte(`
station: {id: MH-D-003, class: B}
data_dir: ` + filepath.Join(dir, "data") + `
admin_socket: ` + filepath.Join(dir, "admin.sock") + `
mqtt: {listen: "127.0.0.1:0", allow_anonymous: true}
clock: {sync_check: none}
` + tc.wqi))
			require.NoError(t, err)
			d, err := New(cfg, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			t.Cleanup(func() {
				cancel()
				require.NoError(t, <-done)
			})
			client := admin.NewClient(cfg.AdminSocket)
			require.Eventually(t, func() bool {
				_, err := client.Queue(t.Context())
				return err == nil
			}, guard, 10*time.Millisecond, "admin API up")
			_, err = client.AddSample(t.Context(), admin.SampleRequest{Param: "bod", Value: 2.4, Unit: "mg/L",
				Time: time.Now().Add(-72 * time.Hour)})
			require.NoError(t, err)
			raw, err := client.WQI(t.Context())
			require.NoError(t, err)
			var w struct {
				WQI        *float64           `json:"wqi"`
				SubIndices map[string]float64 `json:"sub_indices"`
			}
			require.NoError(t, json.Unmarshal(raw, &w), "%s", raw)
			if tc.feeds {
				require.NotNil(t, w.WQI, "%s", raw)
				assert.Contains(t, w.SubIndices, "bod")
			} else {
				assert.Nil(t, w.WQI, "a BOD older than its source's freshness feeds nothing: %s", raw)
			}
		})
	}
}

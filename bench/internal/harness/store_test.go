package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/testproc"
)

const queueJSON = `{
  "configured": true, "url": "http://127.0.0.1:58080", "state": "backing off", "backlog": 100032,
  "last_acked_seq": 0, "last_error": "post batch: dial tcp 127.0.0.1:58080: connect: connection refused",
  "consecutive_failures": 3, "bytes_today": 0, "daily_bytes": 0, "rejected": 0, "batch_limit": 500, "batch_max": 500,
  "lanes": [
    {"stream": "alerts", "backlog": 19, "live": 19, "acked_ahead": 0, "cursor": 0, "last_seq": 19},
    {"stream": "wqi", "backlog": 1, "live": 1, "acked_ahead": 0, "cursor": 0, "last_seq": 1},
    {"stream": "readings", "backlog": 100032, "live": 200, "acked_ahead": 0, "cursor": 0, "last_seq": 100032}
  ],
  "oldest_unsent_at": "2026-11-27T03:23:49.152Z", "last_success_at": null
}`

func TestParseQueue(t *testing.T) {
	q, err := ParseQueue([]byte(queueJSON))
	require.NoError(t, err)
	assert.Equal(t, "backing off", q.State)
	assert.Equal(t, int64(100032), q.Backlog)
	assert.Equal(t, 500, q.BatchLimit)
	assert.Contains(t, q.LastError, "connection refused")
	l, ok := q.Lane("readings")
	require.True(t, ok)
	assert.Equal(t, Lane{Stream: "readings", Backlog: 100032, Live: 200, LastSeq: 100032}, l)
	_, ok = q.Lane("nothing")
	assert.False(t, ok)

	for _, bad := range []string{
		"", "agent not running", `{"backlog": 1}`, `[1]`,
		`{"state": "idle", "backlog": -1}`,
		`{"state": "idle", "lanes": [{"stream": "readings", "cursor": 5, "last_seq": 4}]}`,
	} {
		_, err := ParseQueue([]byte(bad))
		assert.Error(t, err, "input %q", bad)
	}
}

func FuzzParseQueue(f *testing.F) {
	f.Add(queueJSON)
	f.Add(`{"state":"idle","lanes":[{"stream":"readings","cursor":1,"last_seq":1}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQueue([]byte(s))
		if err != nil {
			return
		}
		assert.NotEmpty(t, q.State)
		assert.GreaterOrEqual(t, q.Backlog, int64(0))
		for _, l := range q.Lanes {
			assert.LessOrEqual(t, l.Cursor, l.LastSeq)
		}
	})
}

const healthJSON = `{"status":"ok","version":"dev","database":{"status":"ok","latency_ms":0.31,"schema":3,"storage":"plain","conns":2,"idle_conns":2},
"ingest":{"batches":41,"new_readings":20021,"new_alerts":0,"new_wqi":1,"duplicates":3,"refused":{"429":2}}}`

func TestParseHealth(t *testing.T) {
	h, err := ParseHealth([]byte(healthJSON))
	require.NoError(t, err)
	assert.Equal(t, "ok", h.Status)
	assert.Equal(t, "plain", h.Database.Storage)
	assert.Equal(t, IngestStats{Batches: 41, NewReadings: 20021, Duplicates: 3, Refused: map[string]int64{"429": 2}}, h.Ingest)

	for _, bad := range []string{"", "{}", `{"status":"ok"}`, `{"status":"ok","version":"v","ingest":{"batches":-1}}`, "<html>"} {
		_, err := ParseHealth([]byte(bad))
		assert.Error(t, err, "input %q", bad)
	}
}

func FuzzParseHealth(f *testing.F) {
	f.Add(healthJSON)
	f.Add(`{"status":"unavailable","version":"v"}`)
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHealth([]byte(s))
		if err != nil {
			return
		}
		assert.NotEmpty(t, h.Status)
		assert.GreaterOrEqual(t, h.Ingest.NewReadings, int64(0))
	})
}

func TestStoreConfigsAreValid(t *testing.T) {
	bin := binDir(t, "ph-agent", "ph-cloud")
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(token, []byte("pht_x\n"), 0o600))
	tests := []struct {
		name, prog, path string
		yaml             []byte
	}{
		{"cloud, limits raised", "ph-cloud", filepath.Join(dir, "c1.yaml"), CloudConfig{Dir: dir, Listen: "127.0.0.1:1",
			DatabaseURL: "postgres://x@127.0.0.1:1/db", RatePerStation: 10000, Burst: 10000, MaxInFlight: 64, MaxConns: 12}.YAML()},
		{"cloud, defaults", "ph-cloud", filepath.Join(dir, "c2.yaml"), CloudConfig{Dir: dir, Listen: "127.0.0.1:1",
			DatabaseURL: "postgres://x@127.0.0.1:1/db"}.YAML()},
		{"forwarding agent", "ph-agent", filepath.Join(dir, "a1.yaml"), append(
			AgentConfig{Dir: dir, Station: "MH-PUNE-001", Listen: "127.0.0.1:1", MaxBytes: 1 << 30}.YAML(),
			Uplink{URL: "http://127.0.0.1:1", TokenFile: token, BackoffMax: time.Second, Interval: 2 * time.Second,
				BatchMax: 2000, LiveReadings: 100}.YAML()...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(tt.path, tt.yaml, 0o600))
			out, err := exec.Command(filepath.Join(bin, tt.prog), "config", "check", tt.path).CombinedOutput()
			assert.NoError(t, err, "%s config check says:\n%s\nof:\n%s", tt.prog, out, tt.yaml)
		})
	}
}

// TestForwardingStack runs the real stack of the store-and-forward benchmarks at a tiny
// size: PostgreSQL, the cloud, an agent buffering while the cloud is down and draining
// once it is up.
func TestForwardingStack(t *testing.T) {
	bin := binDir(t, "ph-agent", "ph-cloud")
	pg, err := StartPostgres(t.Context())
	if errors.Is(err, ErrNoPostgres) {
		t.Skip(err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, pg.Stop(), "PostgreSQL shuts down cleanly") })
	set, err := pg.Settings(t.Context())
	require.NoError(t, err)
	require.Len(t, set, len(PostgresSettings))
	assert.Equal(t, Setting{"fsync", "on"}, set[1], "the server runs with fsync on")
	require.NoError(t, pg.CreateDB(t.Context(), "ph"))

	dir := t.TempDir()
	listen, err := testproc.FreePort("tcp")
	require.NoError(t, err)
	cfg := CloudConfig{Dir: dir, Listen: listen, DatabaseURL: pg.URL("ph"), RatePerStation: 1000, Burst: 1000}
	prep, err := PrepareCloud(t.Context(), filepath.Join(bin, "ph-cloud"), cfg, "MH-PUNE-001")
	require.NoError(t, err)
	tokens := prep.Tokens
	assert.Contains(t, prep.Storage, "storage: plain PostgreSQL", "the run states the storage it measures")
	require.Len(t, tokens, 1)
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(tokens[0]), 0o600))

	mqtt, err := testproc.FreePort("tcp")
	require.NoError(t, err)
	acfg := AgentConfig{Dir: filepath.Join(dir, "agent"), Station: "MH-PUNE-001", Listen: mqtt}
	agent, err := StartForwardingAgent(t.Context(), filepath.Join(bin, "ph-agent"), acfg,
		Uplink{URL: cfg.URL(), TokenFile: tokenFile, BackoffMax: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, agent.Stop(), "the agent stops gracefully") })

	// 5 messages of 2 readings each, while the cloud is down.
	pub := Publish{Broker: mqtt, Topic: "purehealth/MH-PUNE-001/readings", Count: 5, Conns: 2, Window: 2, ClientID: "t",
		Payload: func(i int) ([]byte, error) {
			at := time.Now().UTC().Add(-time.Duration(10-i) * time.Minute).Format(time.RFC3339)
			return fmt.Appendf(nil, `[{"param":"ph","value":7.%d,"unit":"pH","timestamp":%q,"sensor":"ph-1"},
				{"param":"do","value":6.%d,"unit":"mg/L","timestamp":%q,"sensor":"do-1"}]`, i, at, i, at), nil
		}}
	require.NoError(t, pub.Run(t.Context()))
	q, err := agent.Queue(t.Context())
	require.NoError(t, err)
	assert.Equal(t, int64(10), q.Backlog, "everything waits for the cloud: %+v", q)

	cloud, err := StartCloud(t.Context(), filepath.Join(bin, "ph-cloud"), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, cloud.Stop(), "the cloud stops gracefully") })
	require.Eventually(t, func() bool {
		q, err := agent.Queue(t.Context())
		return err == nil && q.Backlog == 0
	}, time.Minute, 100*time.Millisecond, "the agent drains its backlog")
	h, err := cloud.Health(t.Context())
	require.NoError(t, err)
	assert.Equal(t, int64(10), h.Ingest.NewReadings)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.URL("ph"))
	require.NoError(t, err)
	defer conn.Close(context.WithoutCancel(ctx))
	var n int64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM measurements").Scan(&n))
	assert.Equal(t, int64(10), n)

	out, err := pg.Psql(ctx, "ph", "-At", "-c", "SELECT count(*) FROM measurements WHERE param = 'do'")
	require.NoError(t, err)
	assert.Equal(t, "5", strings.TrimSpace(string(out)), "psql reaches the same database")
}

func TestPublishRefusesNonsense(t *testing.T) {
	err := Publish{Broker: "127.0.0.1:1", Topic: "t", Count: 1, Conns: 0, Window: 1,
		Payload: func(int) ([]byte, error) { return nil, nil }}.Run(t.Context())
	assert.Error(t, err)
}

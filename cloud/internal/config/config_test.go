package config_test

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/purehealth/purehealth/cloud/internal/access"
	"github.com/purehealth/purehealth/cloud/internal/config"
	"github.com/purehealth/purehealth/cloud/internal/fanout"
	"github.com/purehealth/purehealth/cloud/internal/fusion"
)

var exampleFile = filepath.Join("..", "..", "..", "configs", "cloud.example.yaml")

// TestExampleIsValidAndMatchesDefaults: the example sets every key to its default, so
// loading it gives Default with only the database URL added.
func TestExampleIsValidAndMatchesDefaults(t *testing.T) {
	cfg, err := config.Load(exampleFile)
	require.NoError(t, err)
	want := config.Default()
	want.DatabaseURL = "postgres://purehealth@127.0.0.1:5432/purehealth?sslmode=disable"
	want.Path = exampleFile
	assert.Equal(t, &want, cfg, "the example documents the defaults: keep them in step")
}

func TestDefaults(t *testing.T) {
	cfg, err := config.Parse([]byte("database_url: postgres://u@h/db\n"))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8080", cfg.Listen)
	assert.Equal(t, "auto", cfg.Database.Mode)
	assert.Equal(t, 90*24*time.Hour, cfg.Retention.Measurements.Std())
	assert.Equal(t, 730*24*time.Hour, cfg.Retention.WQI.Std())
	assert.Equal(t, 365*24*time.Hour, cfg.Retention.Alerts.Std())
	assert.Equal(t, []string{"sensor", "manual", "api", "satellite", "model"}, cfg.Fusion.Priority)
	assert.Equal(t, 2*time.Hour, cfg.Fusion.Policy().MaxAge["sensor"])
	assert.Equal(t, 5*time.Second, cfg.Ingest.RetryAfter.Std())
	assert.Nil(t, cfg.TLS)
	assert.Equal(t, 7*24*time.Hour, cfg.Retention.Events.Std())
	assert.Equal(t, 10000, cfg.WebSocket.MaxClients)
	assert.Equal(t, 24*time.Hour, cfg.WebSocket.ReplayWindow.Std())
	assert.Equal(t, time.Hour, cfg.WebSocket.LiveMaxAge.Std())
	assert.Equal(t, time.Minute, cfg.StationHealth.Interval.Std())
	assert.Equal(t, 10*time.Minute, cfg.StationHealth.OfflineAfter.Std())
	assert.Equal(t, access.Policy{ViewerTokens: [][sha256.Size]byte{}, MetricsTokens: [][sha256.Size]byte{}}, cfg.AccessPolicy(),
		"reading is open by default")
}

func TestAccessPolicy(t *testing.T) {
	h := config.HashViewerToken("secret")
	cfg, err := config.Parse([]byte("database_url: postgres://h/db\nwebsocket: {viewer_tokens_sha256: [" + h + "]}\n"))
	require.NoError(t, err)
	p := cfg.AccessPolicy()
	require.Len(t, p.ViewerTokens, 1)
	assert.Equal(t, h, fmt.Sprintf("%x", p.ViewerTokens[0]))
	assert.True(t, p.RequireViewer, "listing viewer tokens means reading needs one")

	cfg, err = config.Parse([]byte("database_url: postgres://h/db\nauth: {require_viewer: true, metrics_tokens_sha256: [" + h + "]}\n"))
	require.NoError(t, err)
	p = cfg.AccessPolicy()
	assert.True(t, p.RequireViewer)
	assert.Len(t, p.MetricsTokens, 1)

	_, err = config.Parse([]byte("database_url: postgres://h/db\nauth: {metrics_tokens_sha256: [nope]}\n"))
	assert.ErrorContains(t, err, "auth.metrics_tokens_sha256[0]")
}

func TestOverrides(t *testing.T) {
	cfg, err := config.Parse([]byte(`
listen: "0.0.0.0:8443"
database_url: "host=db user=ph dbname=ph"
tls: {cert_file: c.pem, key_file: k.pem}
database: {mode: plain, max_conns: 20, query_timeout: 3s}
ingest: {rate_per_station: 0.5, burst: 3}
retention: {measurements: 30d, wqi: 2.5d, alerts: 48h}
fusion: {max_age: {sensor: 30m}}
`))
	require.NoError(t, err)
	assert.Equal(t, &config.TLS{CertFile: "c.pem", KeyFile: "k.pem"}, cfg.TLS)
	assert.Equal(t, int32(20), cfg.Database.MaxConns)
	assert.Equal(t, 30*24*time.Hour, cfg.Retention.Measurements.Std())
	assert.Equal(t, 60*time.Hour, cfg.Retention.WQI.Std())
	assert.Equal(t, 48*time.Hour, cfg.Retention.Alerts.Std())
	assert.Equal(t, 30*time.Minute, cfg.Fusion.Policy().MaxAge["sensor"])
	assert.Equal(t, fusion.DefaultMaxAge["api"], cfg.Fusion.Policy().MaxAge["api"], "unset sources keep their default")
	assert.Equal(t, "30d", cfg.Retention.Measurements.String())
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every problem is reported
	}{
		{"empty", "", []string{"config is empty"}},
		{"unknown key names its line", "database_url: postgres://h/db\nlisten_addr: x\n", []string{"line 2", "listen_addr"}},
		{"missing url", "listen: 127.0.0.1:1\n", []string{"database_url: required"}},
		{"everything wrong at once", `
listen: nope
database_url: "postgres://u@h:notaport/db"
log: {level: loud, format: xml}
tls: {cert_file: c.pem}
database: {mode: mongo, max_conns: 1, query_timeout: 1ms}
ingest: {rate_per_station: -1, burst: -1, retry_after: 10ms}
retention: {measurements: 1h}
partitions: {ahead_days: 99, maintenance_interval: 1s}
fusion: {priority: [sensor, rumour, sensor], max_age: {gossip: 1h}}
`, []string{"listen:", "database_url:", "log.level", "log.format", "tls.key_file", "database.mode",
			"database.max_conns", "database.query_timeout", "ingest.rate_per_station", "ingest.burst", "ingest.retry_after",
			"retention.measurements", "partitions.ahead_days", "partitions.maintenance_interval",
			`"rumour" is not a source`, `"sensor" is listed twice`, `fusion.max_age: "gossip"`}},
		{"websocket and station health", `
database_url: postgres://h/db
retention: {events: 2h}
websocket: {allowed_origins: ["*", "https://*", "a[b"], viewer_tokens_sha256: [abc], max_clients: -1,
  queue: -5, write_timeout: 1ms, read_limit: 10, replay_window: 1s, poll_interval: 1ms, live_max_age: 30s}
station_health: {interval: 1ms, offline_after: 5s, offline_after_by_station: {"no good": 1h, A: 1s}}
`, []string{`allowed_origins: "*"`, `allowed_origins: "https://*"`, `allowed_origins: "a[b"`,
			"viewer_tokens_sha256[0]", "websocket.max_clients", "websocket.queue", "websocket.write_timeout",
			"websocket.read_limit", "websocket.replay_window", "websocket.poll_interval", "websocket.live_max_age", "station_health.interval",
			"station_health.offline_after:", `"no good" is not a station id`, "offline_after_by_station.A"}},
		{"events kept shorter than the replay window", "database_url: postgres://h/db\nretention: {events: 2h}\n",
			[]string{"retention.events"}},
		{"bad duration names its line", "database_url: postgres://h/db\nretention:\n  wqi: forever\n", []string{"line 3", "forever"}},
		{"metrics address not host:port", "database_url: postgres://h/db\nmetrics: {listen: \"9465\"}\n",
			[]string{`metrics.listen: "9465" is not host:port`}},
		{"metrics on the API's own address", "database_url: postgres://h/db\nlisten: 127.0.0.1:8080\nmetrics: {listen: 127.0.0.1:8080}\n",
			[]string{"metrics.listen", "the API's listen address"}},
		{"two documents", "database_url: postgres://h/db\n---\nlisten: x\n", []string{"second YAML document"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.yaml))
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestDatabaseURLPasswordIsNotEchoed(t *testing.T) {
	_, err := config.Parse([]byte(`database_url: "postgres://u:s3cret-pw@h:99999999/db"`))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret-pw")
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cloud.yaml")
	require.NoError(t, os.WriteFile(path, []byte("bogus: 1\n"), 0o600))
	_, err := config.Load(path)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), path+": "), err.Error())
	_, err = config.Load(filepath.Join(t.TempDir(), "missing.yaml"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func FuzzParse(f *testing.F) {
	seeds, err := os.ReadFile(exampleFile)
	require.NoError(f, err)
	f.Add(seeds)
	f.Add([]byte("database_url: postgres://h/db\nretention: {wqi: 1.5d}\n"))
	f.Add([]byte("fusion: {max_age: {sensor: -1d}}"))
	f.Add([]byte("{"))
	f.Add([]byte("database_url: postgres://h/db\nfusion: {max_age: ~}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(data)
		if err != nil {
			return
		}
		// Whatever parses is valid and complete.
		require.NoError(t, cfg.Validate())
		require.NotEmpty(t, cfg.Listen)
		require.Positive(t, cfg.Retention.Measurements.Std())
		// And written back out, it loads the same.
		out, err := yaml.Marshal(cfg)
		require.NoError(t, err)
		again, err := config.Parse(out)
		require.NoError(t, err, "a parsed config does not parse after a round trip:\n%s", out)
		out2, err := yaml.Marshal(again)
		require.NoError(t, err)
		require.Equal(t, string(out), string(out2), "Parse is not a fixed point")
	})
}

// TestExplicitZero: a zero written in the file is taken as written: a setting where zero
// means something, an error naming the key where it does not.
func TestExplicitZero(t *testing.T) {
	cfg, err := config.Parse([]byte("database_url: postgres://h/db\nwebsocket: {recent: 0, replay_max: 0}\n"))
	require.NoError(t, err)
	assert.Zero(t, cfg.WebSocket.Recent, "recent: 0 keeps no events in memory")
	assert.Zero(t, cfg.WebSocket.ReplayMax, "replay_max: 0 never replays")

	for doc, want := range map[string]string{
		"ingest: {burst: 0}":             "ingest.burst: 0 must be at least 1",
		"ingest: {rate_per_station: 0}":  "ingest.rate_per_station: 0 must be a positive number of batches a second",
		"database: {max_conns: 0}":       "database.max_conns: 0 must be 2..1000",
		"websocket: {queue: 0}":          "websocket.queue: 0 must be 1..100000",
		"partitions: {ahead_days: 0}":    "partitions.ahead_days: 0 must be 1..60",
		"fusion: {priority: []}":         "fusion.priority: empty: list the sources, most trusted first",
		"station_health: {interval: 0s}": "station_health.interval: 0s is shorter than 1s",
		"websocket: {read_limit: 0}":     "websocket.read_limit: 0 must be 256..1048576 bytes",
		"websocket: {read_limit: 2MiB}":  "websocket.read_limit: 2097152 must be 256..1048576 bytes",
		"retention: {measurements: 0s}":  "retention.measurements: 0s is shorter than 2d",
		"websocket: {live_max_age: 0s}":  "websocket.live_max_age: 0s is shorter than 1m",
	} {
		t.Run(doc, func(t *testing.T) {
			_, err := config.Parse([]byte("database_url: postgres://h/db\n" + doc + "\n"))
			require.Error(t, err)
			assert.Equal(t, want, err.Error())
		})
	}
}

// TestAllowedOriginsRule: the configuration refuses exactly the origin patterns the hub
// refuses, with the hub's reason.
func TestAllowedOriginsRule(t *testing.T) {
	for _, p := range []string{"*", "https://*", "*://*", "?", "**", "", "a[b", "https://a[", "dash.example.org",
		"*.example.org", "https://*.example.org", "http://localhost:8080"} {
		t.Run(p, func(t *testing.T) {
			_, err := config.Parse([]byte(fmt.Sprintf("database_url: postgres://h/db\nwebsocket: {allowed_origins: [%q]}\n", p)))
			hubErr := fanout.CheckOriginPattern(p)
			if hubErr == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, "websocket.allowed_origins: "+hubErr.Error(), err.Error())
		})
	}
}

// The example's notify channels, uncommented, load onto notify's defaults and become the
// channels the dispatcher takes.
func TestNotifyChannels(t *testing.T) {
	data, err := os.ReadFile(exampleFile)
	require.NoError(t, err)
	i := strings.Index(string(data), "# notify:")
	require.Positive(t, i, "the example shows notify channels")
	var doc strings.Builder
	doc.WriteString("database_url: postgres://x@127.0.0.1/db\n")
	for _, line := range strings.Split(string(data[i:]), "\n") {
		doc.WriteString(strings.TrimPrefix(line, "# ") + "\n")
	}
	cfg, err := config.Parse([]byte(doc.String()))
	require.NoError(t, err, doc.String())
	chans := cfg.NotifyChannels()
	require.Len(t, chans, 2)
	assert.Equal(t, "ops-chat", chans[0].Name)
	assert.Equal(t, []string{"*"}, chans[0].Stations, "default: every station")
	assert.Equal(t, time.Minute, chans[0].Group)
	assert.Equal(t, "smtp.example.org", chans[1].SMTP.Host)
	assert.Equal(t, []string{"critical"}, chans[1].Severities)
	assert.Equal(t, []string{"opened", "resolved"}, chans[1].On, "default transitions")

	_, err = config.Parse([]byte("database_url: postgres://x@127.0.0.1/db\nnotify:\n  - {name: a, kind: pager}\n  - {name: a, kind: webhook, url: \"ftp://x\"}\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `notify[0] "a"`)
	assert.Contains(t, err.Error(), "used twice")
}

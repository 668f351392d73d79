// Package config loads and checks ph-cloud's YAML configuration.
//
// There is one load path: Load strictly decodes the file (an unknown key is an error that
// names its line), fills in defaults, and runs Validate, which reports every problem at
// once. `ph-cloud config check` runs exactly this path. A loaded Config is treated as
// immutable by the rest of the service.
//
// A documented example with every key is in testdata/example.yaml.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.yaml.in/yaml/v3"

	"github.com/purehealth/purehealth/internal/strictyaml"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Config is the whole cloud configuration. Listen and DatabaseURL are contract keys.
type Config struct {
	Listen      string     `yaml:"listen"`       // host:port of the HTTP API, default 127.0.0.1:8080
	DatabaseURL string     `yaml:"database_url"` // postgres://... (libpq URL or key=value form)
	Log         Log        `yaml:"log"`
	TLS         *TLS       `yaml:"tls"` // nil: plain HTTP (behind a TLS-terminating proxy)
	Database    Database   `yaml:"database"`
	Ingest      Ingest     `yaml:"ingest"`
	Retention   Retention  `yaml:"retention"`
	Partitions  Partitions `yaml:"partitions"`
	Fusion      Fusion     `yaml:"fusion"`
	WebSocket   WebSocket  `yaml:"websocket"`
	// StationHealth is the check that takes silent stations offline.
	StationHealth StationHealth `yaml:"station_health"`

	// Path is the file the configuration came from (not a YAML key).
	Path string `yaml:"-"`
}

// Log sets the service's log output.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// TLS makes the listener serve HTTPS.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Database tunes the connection pool and the storage layout.
type Database struct {
	// Mode is auto (default: TimescaleDB when the server offers the extension, native
	// partitions otherwise), timescaledb or plain. Migrate records the mode it chose and
	// later runs keep it.
	Mode     string `yaml:"mode"`
	MaxConns int32  `yaml:"max_conns"` // default 10
	// QueryTimeout bounds one acquire plus query of the API (default 10s).
	QueryTimeout Duration `yaml:"query_timeout"`
	// IngestTimeout bounds one batch transaction, retry included (default 30s).
	IngestTimeout Duration `yaml:"ingest_timeout"`
}

// Ingest tunes POST /v1/ingest.
type Ingest struct {
	// RatePerStation is the sustained number of batches a second one station may send
	// (default 20: an agent sends a batch within 50 ms of new readings, and back to back
	// while a backlog drains); Burst is how many it may send at once (default 50). Beyond:
	// 429.
	RatePerStation float64 `yaml:"rate_per_station"`
	Burst          int     `yaml:"burst"`
	// MaxInFlight bounds batches being written at once across all stations (default 16);
	// beyond it the service answers 503 so that agents back off instead of piling up.
	MaxInFlight int `yaml:"max_in_flight"`
	// RetryAfter is the Retry-After the service sends with 503 (default 5s).
	RetryAfter Duration `yaml:"retry_after"`
}

// Retention says how long data is kept. Durations take a "d" suffix for days.
type Retention struct {
	Measurements Duration `yaml:"measurements"` // raw readings, default 90d
	WQI          Duration `yaml:"wqi"`          // default 730d
	Alerts       Duration `yaml:"alerts"`       // alert history and resolved alerts, default 365d
	Rollups      Duration `yaml:"rollups"`      // measurements_hourly and _daily, default 730d
	// Events are the live events kept for WebSocket clients to resume from (default 7d; at
	// least websocket.replay_window).
	Events Duration `yaml:"events"`
}

// Partitions tunes plain-PostgreSQL storage (native daily partitions).
type Partitions struct {
	// AheadDays is how many days of partitions are kept ready beyond today (default 3).
	AheadDays int `yaml:"ahead_days"`
	// MaintenanceInterval is how often partitions are created ahead and expired ones dropped
	// (default 1h). In TimescaleDB mode the job only expires resolved alerts.
	MaintenanceInterval Duration `yaml:"maintenance_interval"`
}

// Fusion tunes a station's fused current state (GET /v1/stations/{id}/status).
type Fusion struct {
	// Priority lists sources, most trusted first (default sensor, manual, api, satellite,
	// model: a manual entry is a lab result for the station itself).
	Priority []string `yaml:"priority"`
	// MaxAge is how old a source's latest value may be and still count (defaults: sensor
	// 2h, manual 7d, api 24h, satellite 14d, model 6h).
	MaxAge map[string]Duration `yaml:"max_age"`
}

// WebSocket tunes the live fan-out (GET /ws, /ws/station/{id}).
type WebSocket struct {
	// AllowedOrigins are the hosts (patterns like "dash.example.org" or "*.example.org")
	// of web pages other than ph-cloud's own that may open a WebSocket. Never "*".
	AllowedOrigins []string `yaml:"allowed_origins"`
	// ViewerTokensSHA256 are hex SHA-256 hashes of viewer tokens (ph-cloud viewer-token
	// makes one). When there are any, a client must present a token.
	ViewerTokensSHA256 []string `yaml:"viewer_tokens_sha256"`
	MaxClients         int      `yaml:"max_clients"`   // connections at once, default 10000
	Queue              int      `yaml:"queue"`         // events waiting per client before it is evicted, default 4096
	WriteTimeout       Duration `yaml:"write_timeout"` // one write or ping, default 10s
	PingInterval       Duration `yaml:"ping_interval"` // default 30s
	ReadLimit          int64    `yaml:"read_limit"`    // largest client message in bytes, default 16384
	ReplayMax          int      `yaml:"replay_max"`    // events a resume may send, default 10000
	// ReplayWindow is how old the first event a resume sends may be (default 24h).
	ReplayWindow Duration `yaml:"replay_window"`
	// Recent is how many of the latest events each replica keeps in memory for resumes
	// (default 10000).
	Recent int `yaml:"recent"`
	// PollInterval is how often new events are read without a notification (default 5s).
	PollInterval Duration `yaml:"poll_interval"`
	// LiveMaxAge is how old a reading may be on arrival and still be sent to clients
	// (default 1h). Older readings, a station's backlog after an outage, are stored and
	// announced by one status message per batch instead of streamed one by one.
	LiveMaxAge Duration `yaml:"live_max_age"`
}

// StationHealth tunes the station health check.
type StationHealth struct {
	Interval     Duration `yaml:"interval"`      // how often it runs, default 1m
	OfflineAfter Duration `yaml:"offline_after"` // silence before a station is offline, default 10m
	// OfflineAfterByStation overrides offline_after per station id.
	OfflineAfterByStation map[string]Duration `yaml:"offline_after_by_station"`
}

// Defaults.
const (
	DefaultListen              = "127.0.0.1:8080"
	DefaultMaxConns            = 10
	DefaultQueryTimeout        = 10 * time.Second
	DefaultIngestTimeout       = 30 * time.Second
	DefaultRatePerStation      = 20
	DefaultBurst               = 50
	DefaultMaxInFlight         = 16
	DefaultRetryAfter          = 5 * time.Second
	DefaultAheadDays           = 3
	DefaultMaintenanceInterval = time.Hour
	DefaultEventsRetention     = 7 * Day
	DefaultWSMaxClients        = 10000
	DefaultWSQueue             = 4096
	DefaultWSWriteTimeout      = 10 * time.Second
	DefaultWSPingInterval      = 30 * time.Second
	DefaultWSReadLimit         = 16 << 10
	DefaultWSReplayMax         = 10000
	DefaultWSReplayWindow      = Day
	DefaultWSRecent            = 10000
	DefaultWSPollInterval      = 5 * time.Second
	DefaultWSLiveMaxAge        = time.Hour
	DefaultHealthInterval      = time.Minute
	DefaultOfflineAfter        = 10 * time.Minute
	Day                        = 24 * time.Hour
)

// DefaultRetention is the retention the design sets.
var DefaultRetention = Retention{
	Measurements: Duration(90 * Day),
	WQI:          Duration(730 * Day),
	Alerts:       Duration(365 * Day),
	Rollups:      Duration(730 * Day),
}

// DefaultPriority is the fusion order of sources.
var DefaultPriority = []string{"sensor", "manual", "api", "satellite", "model"}

// DefaultMaxAge is how old each source's value may be in the fused state.
var DefaultMaxAge = map[string]time.Duration{
	"sensor":    2 * time.Hour,
	"manual":    7 * Day,
	"api":       Day,
	"satellite": 14 * Day,
	"model":     6 * time.Hour,
}

// Load reads, strictly decodes, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.Path = path
	return cfg, nil
}

// Parse decodes, defaults and validates a configuration document.
func Parse(data []byte) (*Config, error) {
	var cfg Config
	if err := strictyaml.Decode(data, &cfg); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Database.Mode == "" {
		c.Database.Mode = "auto"
	}
	if c.Database.MaxConns == 0 {
		c.Database.MaxConns = DefaultMaxConns
	}
	if c.Database.QueryTimeout == 0 {
		c.Database.QueryTimeout = Duration(DefaultQueryTimeout)
	}
	if c.Database.IngestTimeout == 0 {
		c.Database.IngestTimeout = Duration(DefaultIngestTimeout)
	}
	if c.Ingest.RatePerStation == 0 {
		c.Ingest.RatePerStation = DefaultRatePerStation
	}
	if c.Ingest.Burst == 0 {
		c.Ingest.Burst = DefaultBurst
	}
	if c.Ingest.MaxInFlight == 0 {
		c.Ingest.MaxInFlight = DefaultMaxInFlight
	}
	if c.Ingest.RetryAfter == 0 {
		c.Ingest.RetryAfter = Duration(DefaultRetryAfter)
	}
	if c.Retention.Measurements == 0 {
		c.Retention.Measurements = DefaultRetention.Measurements
	}
	if c.Retention.WQI == 0 {
		c.Retention.WQI = DefaultRetention.WQI
	}
	if c.Retention.Alerts == 0 {
		c.Retention.Alerts = DefaultRetention.Alerts
	}
	if c.Retention.Rollups == 0 {
		c.Retention.Rollups = DefaultRetention.Rollups
	}
	if c.Retention.Events == 0 {
		c.Retention.Events = Duration(DefaultEventsRetention)
	}
	c.WebSocket.applyDefaults()
	if c.StationHealth.Interval == 0 {
		c.StationHealth.Interval = Duration(DefaultHealthInterval)
	}
	if c.StationHealth.OfflineAfter == 0 {
		c.StationHealth.OfflineAfter = Duration(DefaultOfflineAfter)
	}
	if c.StationHealth.OfflineAfterByStation == nil {
		c.StationHealth.OfflineAfterByStation = map[string]Duration{}
	}
	if c.Partitions.AheadDays == 0 {
		c.Partitions.AheadDays = DefaultAheadDays
	}
	if c.Partitions.MaintenanceInterval == 0 {
		c.Partitions.MaintenanceInterval = Duration(DefaultMaintenanceInterval)
	}
	if len(c.Fusion.Priority) == 0 {
		c.Fusion.Priority = slices.Clone(DefaultPriority)
	}
	if c.Fusion.MaxAge == nil {
		c.Fusion.MaxAge = map[string]Duration{}
	}
	for src, d := range DefaultMaxAge {
		if _, ok := c.Fusion.MaxAge[src]; !ok {
			c.Fusion.MaxAge[src] = Duration(d)
		}
	}
}

func (w *WebSocket) applyDefaults() {
	setInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setDur := func(v *Duration, d time.Duration) {
		if *v == 0 {
			*v = Duration(d)
		}
	}
	setInt(&w.MaxClients, DefaultWSMaxClients)
	setInt(&w.Queue, DefaultWSQueue)
	setDur(&w.WriteTimeout, DefaultWSWriteTimeout)
	setDur(&w.PingInterval, DefaultWSPingInterval)
	if w.ReadLimit == 0 {
		w.ReadLimit = DefaultWSReadLimit
	}
	setInt(&w.ReplayMax, DefaultWSReplayMax)
	setDur(&w.ReplayWindow, DefaultWSReplayWindow)
	setInt(&w.Recent, DefaultWSRecent)
	setDur(&w.PollInterval, DefaultWSPollInterval)
	setDur(&w.LiveMaxAge, DefaultWSLiveMaxAge)
}

// ViewerTokenHashes decodes ViewerTokensSHA256 (Validate has checked them).
func (w WebSocket) ViewerTokenHashes() [][sha256.Size]byte {
	out := make([][sha256.Size]byte, 0, len(w.ViewerTokensSHA256))
	for _, h := range w.ViewerTokensSHA256 {
		var sum [sha256.Size]byte
		if b, err := hex.DecodeString(h); err == nil && len(b) == sha256.Size {
			copy(sum[:], b)
			out = append(out, sum)
		}
	}
	return out
}

// HashViewerToken returns the hex SHA-256 of a viewer token, as viewer_tokens_sha256
// lists it.
func HashViewerToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Validate reports every problem in the configuration, joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen: %q is not host:port", c.Listen)
	}
	if c.DatabaseURL == "" {
		bad("database_url: required (postgres://user@host/dbname)")
	} else if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		// pgx redacts the password in its message.
		bad("database_url: %v", err)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level: %q must be debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format: %q must be text or json", c.Log.Format)
	}
	if c.TLS != nil {
		if c.TLS.CertFile == "" {
			bad("tls.cert_file: required")
		}
		if c.TLS.KeyFile == "" {
			bad("tls.key_file: required")
		}
	}

	switch c.Database.Mode {
	case "auto", "timescaledb", "plain":
	default:
		bad("database.mode: %q must be auto, timescaledb or plain", c.Database.Mode)
	}
	if c.Database.MaxConns < 2 || c.Database.MaxConns > 1000 {
		bad("database.max_conns: %d must be 2..1000", c.Database.MaxConns)
	}
	if c.Database.QueryTimeout.Std() < 100*time.Millisecond {
		bad("database.query_timeout: %s is shorter than 100ms", c.Database.QueryTimeout)
	}
	if c.Database.IngestTimeout.Std() < time.Second {
		bad("database.ingest_timeout: %s is shorter than 1s", c.Database.IngestTimeout)
	}

	if !(c.Ingest.RatePerStation > 0) || c.Ingest.RatePerStation > 1e6 {
		bad("ingest.rate_per_station: %v must be a positive number of batches a second", c.Ingest.RatePerStation)
	}
	if c.Ingest.Burst < 1 {
		bad("ingest.burst: %d must be at least 1", c.Ingest.Burst)
	}
	if c.Ingest.MaxInFlight < 1 {
		bad("ingest.max_in_flight: %d must be at least 1", c.Ingest.MaxInFlight)
	}
	if c.Ingest.RetryAfter.Std() < time.Second {
		bad("ingest.retry_after: %s is shorter than 1s (Retry-After counts whole seconds)", c.Ingest.RetryAfter)
	}

	for _, r := range []struct {
		name string
		d    Duration
	}{
		{"measurements", c.Retention.Measurements}, {"wqi", c.Retention.WQI},
		{"alerts", c.Retention.Alerts}, {"rollups", c.Retention.Rollups},
	} {
		if r.d.Std() < 2*Day {
			bad("retention.%s: %s is shorter than 2d", r.name, r.d)
		}
	}
	if c.Retention.Events.Std() < c.WebSocket.ReplayWindow.Std() || c.Retention.Events.Std() < time.Hour {
		bad("retention.events: %s is shorter than websocket.replay_window (%s) or 1h", c.Retention.Events, c.WebSocket.ReplayWindow)
	}
	c.WebSocket.validate(bad)
	if c.StationHealth.Interval.Std() < time.Second {
		bad("station_health.interval: %s is shorter than 1s", c.StationHealth.Interval)
	}
	if c.StationHealth.OfflineAfter.Std() < time.Minute {
		bad("station_health.offline_after: %s is shorter than 1m", c.StationHealth.OfflineAfter)
	}
	for _, id := range sortedKeys(c.StationHealth.OfflineAfterByStation) {
		if !validStationID(id) {
			bad("station_health.offline_after_by_station: %q is not a station id", id)
		}
		if c.StationHealth.OfflineAfterByStation[id].Std() < time.Minute {
			bad("station_health.offline_after_by_station.%s: %s is shorter than 1m", id, c.StationHealth.OfflineAfterByStation[id])
		}
	}
	if c.Partitions.AheadDays < 1 || c.Partitions.AheadDays > 60 {
		bad("partitions.ahead_days: %d must be 1..60", c.Partitions.AheadDays)
	}
	if c.Partitions.MaintenanceInterval.Std() < time.Minute {
		bad("partitions.maintenance_interval: %s is shorter than 1m", c.Partitions.MaintenanceInterval)
	}

	seen := map[string]bool{}
	for _, s := range c.Fusion.Priority {
		if !telemetry.Source(s).Valid() {
			bad("fusion.priority: %q is not a source (sensor, manual, api, satellite, model)", s)
		} else if seen[s] {
			bad("fusion.priority: %q is listed twice", s)
		}
		seen[s] = true
	}
	for _, s := range sortedKeys(c.Fusion.MaxAge) {
		if !telemetry.Source(s).Valid() {
			bad("fusion.max_age: %q is not a source", s)
		}
		if c.Fusion.MaxAge[s] <= 0 {
			bad("fusion.max_age.%s: must be positive", s)
		}
	}
	return errors.Join(errs...)
}

func (w *WebSocket) validate(bad func(string, ...any)) {
	for _, p := range w.AllowedOrigins {
		host := p
		if _, after, ok := strings.Cut(p, "://"); ok {
			host = after
		}
		if strings.Trim(host, "*?") == "" {
			bad("websocket.allowed_origins: %q would let every web page connect: name the hosts", p)
		} else if _, err := path.Match(p, ""); err != nil {
			bad("websocket.allowed_origins: %q: %v", p, err)
		}
	}
	for i, h := range w.ViewerTokensSHA256 {
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			bad("websocket.viewer_tokens_sha256[%d]: want 64 hex digits (ph-cloud viewer-token prints one)", i)
		}
	}
	if w.MaxClients < 1 || w.MaxClients > 1_000_000 {
		bad("websocket.max_clients: %d must be 1..1000000", w.MaxClients)
	}
	if w.Queue < 1 || w.Queue > 100_000 {
		bad("websocket.queue: %d must be 1..100000", w.Queue)
	}
	if w.WriteTimeout.Std() < 100*time.Millisecond {
		bad("websocket.write_timeout: %s is shorter than 100ms", w.WriteTimeout)
	}
	if w.PingInterval.Std() < time.Second {
		bad("websocket.ping_interval: %s is shorter than 1s", w.PingInterval)
	}
	if w.ReadLimit < 256 || w.ReadLimit > 1<<20 {
		bad("websocket.read_limit: %d must be 256..1048576 bytes", w.ReadLimit)
	}
	if w.ReplayMax < 0 {
		bad("websocket.replay_max: %d must not be negative", w.ReplayMax)
	}
	if w.ReplayWindow.Std() < time.Minute {
		bad("websocket.replay_window: %s is shorter than 1m", w.ReplayWindow)
	}
	if w.Recent < 0 || w.Recent > 10_000_000 {
		bad("websocket.recent: %d must be 0..10000000", w.Recent)
	}
	if w.PollInterval.Std() < 100*time.Millisecond {
		bad("websocket.poll_interval: %s is shorter than 100ms", w.PollInterval)
	}
	if w.LiveMaxAge.Std() < time.Minute {
		bad("websocket.live_max_age: %s is shorter than 1m", w.LiveMaxAge)
	}
}

var stationID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func validStationID(id string) bool { return stationID.MatchString(id) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Duration is a time.Duration that YAML spells like Go ("90m", "36h") or in days ("90d",
// "1.5d").
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String prints whole days as "Nd" and everything else like time.Duration.
func (d Duration) String() string {
	if d > 0 && time.Duration(d)%Day == 0 {
		return strconv.FormatInt(int64(time.Duration(d)/Day), 10) + "d"
	}
	return time.Duration(d).String()
}

// UnmarshalYAML parses a duration scalar.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration like 30s, 2h or 90d", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses Go durations and a number of days with a "d" suffix.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		f, err := strconv.ParseFloat(days, 64)
		if err != nil || !(f >= 0) || f > 100*365 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(f * float64(Day)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 30s, 2h or 90d", s)
	}
	return v, nil
}

// MaxAgeOf returns how old a value from source may be in the fused state.
func (f Fusion) MaxAgeOf(source string) time.Duration {
	if d, ok := f.MaxAge[source]; ok {
		return d.Std()
	}
	return DefaultMaxAge[source]
}

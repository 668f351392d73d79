// Package config loads and checks ph-cloud's YAML configuration.
//
// There is one load path (internal/strictyaml): Load decodes the file strictly (an unknown
// key is an error that names its line) onto Default, so a key the file leaves out keeps
// its default and any value written, zero included, is taken as written; then Validate
// reports every problem at once. `ph-cloud config check` runs exactly this path. A loaded
// Config is treated as immutable by the rest of the service.
//
// The defaults belong to the components that use them (ingest.DefaultBurst,
// store.DefaultRetention, fanout.DefaultQueue ...): Default is built from them.
// configs/cloud.example.yaml shows every key with its default, and a test keeps the two
// in step.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/purehealth/purehealth/cloud/internal/access"
	"github.com/purehealth/purehealth/cloud/internal/fanout"
	"github.com/purehealth/purehealth/cloud/internal/fusedwqi"
	"github.com/purehealth/purehealth/cloud/internal/fusion"
	"github.com/purehealth/purehealth/cloud/internal/ingest"
	"github.com/purehealth/purehealth/cloud/internal/notify"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/internal/logging"
	"github.com/purehealth/purehealth/internal/strictyaml"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Config is the whole cloud configuration. Listen and DatabaseURL are contract keys.
type Config struct {
	Listen      string         `yaml:"listen"`       // host:port of the HTTP API, default DefaultListen
	DatabaseURL string         `yaml:"database_url"` // postgres://... (libpq URL or key=value form)
	Log         logging.Config `yaml:"log"`
	TLS         *TLS           `yaml:"tls"` // nil: plain HTTP (behind a TLS-terminating proxy)
	Database    Database       `yaml:"database"`
	Ingest      Ingest         `yaml:"ingest"`
	Retention   Retention      `yaml:"retention"`
	Partitions  Partitions     `yaml:"partitions"`
	Fusion      Fusion         `yaml:"fusion"`
	WebSocket   WebSocket      `yaml:"websocket"`
	// Upstream, Satellite and Samples are the sources outside the stations (sources.go).
	Upstream  []Upstream `yaml:"upstream"`
	Satellite *Satellite `yaml:"satellite"` // nil: no satellite estimates
	Samples   Samples    `yaml:"samples"`
	// StationHealth is the check that takes silent stations offline.
	StationHealth StationHealth `yaml:"station_health"`
	// Notify lists the channels alert transitions are sent to (contract keys).
	Notify []NotifyChannel `yaml:"notify"`
	// Auth says who may read.
	Auth Auth `yaml:"auth"`
	// Metrics can move /metrics off the public listener.
	Metrics Metrics `yaml:"metrics"`

	// Forecast and Anomaly tune the analytics jobs (contract keys forecast.interval and
	// anomaly.interval).
	Forecast Forecast `yaml:"forecast"`
	Anomaly  Anomaly  `yaml:"anomaly"`

	strictyaml.Source `yaml:"-"` // the file it came from
}

// TLS makes the listener serve HTTPS.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, holds the CA certificates (PEM) that issue stations' client
	// certificates: a station presenting one whose common name (or a DNS name) is its id
	// is identified by it, instead of or beside its token as the station's auth mode says
	// (ph-cloud station set-auth).
	ClientCAFile string `yaml:"client_ca_file"`
}

// Database tunes the connection pool and the storage layout.
type Database struct {
	// Mode is auto (the default: TimescaleDB when the server offers the extension, native
	// partitions otherwise), timescaledb or plain. Migrate records the mode it chose and
	// later runs keep it.
	Mode     string `yaml:"mode"`
	MaxConns int32  `yaml:"max_conns"` // default store.DefaultMaxConns
	// QueryTimeout bounds one acquire plus query of the API (default store.DefaultQueryTimeout).
	QueryTimeout Duration `yaml:"query_timeout"`
	// IngestTimeout bounds one batch transaction, retry included (default store.DefaultIngestTimeout).
	IngestTimeout Duration `yaml:"ingest_timeout"`
}

// Ingest tunes POST /v1/ingest.
type Ingest struct {
	// RatePerStation is the sustained number of batches a second one station may send
	// (default ingest.DefaultRatePerStation); Burst is how many it may send at once
	// (default ingest.DefaultBurst). Beyond: 429.
	RatePerStation float64 `yaml:"rate_per_station"`
	Burst          int     `yaml:"burst"`
	// MaxInFlight bounds batches being written at once across all stations (default ingest.DefaultMaxInFlight);
	// beyond it the service answers 503 so that agents back off instead of piling up.
	MaxInFlight int `yaml:"max_in_flight"`
	// RetryAfter is the Retry-After the service sends with 503 (default ingest.DefaultRetryAfter).
	RetryAfter Duration `yaml:"retry_after"`
}

// Retention says how long data is kept (defaults store.DefaultRetention).
type Retention struct {
	Measurements Duration `yaml:"measurements"` // raw readings
	External     Duration `yaml:"external"`     // lab, government and satellite data (validated in sources.go)
	WQI          Duration `yaml:"wqi"`
	Alerts       Duration `yaml:"alerts"`  // alert history and resolved alerts
	Rollups      Duration `yaml:"rollups"` // measurements_hourly and _daily
	Health       Duration `yaml:"health"`  // the stations' health records (the newest is always kept)
	// Events are the live events kept for WebSocket clients to resume from (default
	// store.DefaultEventsRetention; at least websocket.replay_window).
	Events Duration `yaml:"events"`
	// Forecasts are the forecasts issued (default store.DefaultForecastRetention).
	Forecasts Duration `yaml:"forecasts"`
}

// Partitions tunes plain-PostgreSQL storage (native daily partitions).
type Partitions struct {
	// AheadDays is how many days of partitions are kept ready beyond today (default store.DefaultAheadDays).
	AheadDays int `yaml:"ahead_days"`
	// MaintenanceInterval is how often partitions are created ahead and expired ones dropped
	// (default store.DefaultMaintenanceInterval). In TimescaleDB mode the job only expires resolved alerts.
	MaintenanceInterval Duration `yaml:"maintenance_interval"`
}

// Fusion tunes a station's fused current state (GET /v1/stations/{id}/status).
type Fusion struct {
	// Priority lists sources, most trusted first (default fusion.DefaultPolicy).
	Priority []string `yaml:"priority"`
	// MaxAge is how old a source's latest value may be and still count (default
	// fusion.DefaultPolicy for a source the file does not name).
	MaxAge map[string]Duration `yaml:"max_age"`
	// Interval is how often every station's fused WQI is recomputed, for inputs that age
	// out while nothing arrives (default fusedwqi.DefaultInterval).
	Interval Duration `yaml:"interval"`
}

// WebSocket tunes the live fan-out (GET /ws, /ws/station/{id}).
type WebSocket struct {
	// AllowedOrigins are the hosts (patterns like "dash.example.org" or "*.example.org")
	// of web pages other than ph-cloud's own that may open a WebSocket. Never "*".
	AllowedOrigins []string `yaml:"allowed_origins"`
	// ViewerTokensSHA256 are hex SHA-256 hashes of viewer tokens (ph-cloud viewer-token
	// makes one). When there are any, a client must present a token.
	ViewerTokensSHA256 []string `yaml:"viewer_tokens_sha256"`
	// The rest default to fanout's Default* of the same name.
	MaxClients   int      `yaml:"max_clients"`   // connections at once
	Queue        int      `yaml:"queue"`         // events waiting per client before it is evicted
	WriteTimeout Duration `yaml:"write_timeout"` // one write or ping
	PingInterval Duration `yaml:"ping_interval"`
	ReadLimit    ByteSize `yaml:"read_limit"` // largest client message
	ReplayMax    int      `yaml:"replay_max"` // events a resume may send; 0: none, always resync
	// ReplayWindow is how old the first event a resume sends may be.
	ReplayWindow Duration `yaml:"replay_window"`
	// Recent is how many of the latest events each replica keeps in memory for resumes
	// (0: none, resumes read the database).
	Recent int `yaml:"recent"`
	// PollInterval is how often new events are read without a notification.
	PollInterval Duration `yaml:"poll_interval"`
	// LiveMaxAge is how old a reading may be on arrival and still be sent to clients
	// (default store.DefaultLiveMaxAge). Older readings, a station's backlog after an outage, are stored and
	// announced by one status message per batch instead of streamed one by one.
	LiveMaxAge Duration `yaml:"live_max_age"`
}

// StationHealth tunes the station health check.
type StationHealth struct {
	Interval     Duration `yaml:"interval"`      // how often it runs, default store.DefaultHealthInterval
	OfflineAfter Duration `yaml:"offline_after"` // silence before a station is offline, default store.DefaultOfflineAfter
	// OfflineAfterByStation overrides offline_after per station id.
	OfflineAfterByStation map[string]Duration `yaml:"offline_after_by_station"`
}

// Auth says who may read; acting always needs an operator token.
type Auth struct {
	// RequireViewer makes every read path (the API, /ws, /stats, /metrics, the
	// dashboard's data) need a viewer or operator token (contract key). Listing
	// websocket.viewer_tokens_sha256 turns it on too.
	RequireViewer bool `yaml:"require_viewer"`
	// MetricsTokensSHA256 are hex SHA-256 hashes of tokens that may scrape /metrics
	// (a Prometheus bearer_token), instead of a viewer token.
	MetricsTokensSHA256 []string `yaml:"metrics_tokens_sha256"`
}

// AccessPolicy returns the policy the service's access guard applies.
func (c *Config) AccessPolicy() access.Policy {
	return access.Policy{
		RequireViewer: c.Auth.RequireViewer || len(c.WebSocket.ViewerTokensSHA256) > 0,
		ViewerTokens:  hashes(c.WebSocket.ViewerTokensSHA256),
		MetricsTokens: hashes(c.Auth.MetricsTokensSHA256),
	}
}

// NotifyChannel is one notify[] entry: where alert transitions go and which ones. The
// keys name, kind, url, secret, smtp, to, stations, severities and on are contract.
type NotifyChannel struct {
	Name       string   `yaml:"name"`
	Kind       string   `yaml:"kind"`   // webhook or email
	URL        string   `yaml:"url"`    // webhook
	Secret     string   `yaml:"secret"` // webhook: the HMAC-SHA256 key of X-PH-Signature
	SMTP       SMTP     `yaml:"smtp"`   // email
	To         []string `yaml:"to"`     // email recipients
	Stations   []string `yaml:"stations"`
	Severities []string `yaml:"severities"`
	On         []string `yaml:"on"`
	// Group is the least time between two messages about one station (default
	// notify.DefaultGroup); Timeout bounds one attempt (default by kind).
	Group   Duration `yaml:"group"`
	Timeout Duration `yaml:"timeout"`
}

// SMTP is an e-mail channel's server.
type SMTP struct {
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"` // 0: notify.DefaultSMTPPort
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	From     string `yaml:"from"`
	TLS      string `yaml:"tls"`     // auto (default, also when empty), starttls, tls or none
	CAFile   string `yaml:"ca_file"` // trust these instead of the system's roots
}

// UnmarshalYAML decodes a channel onto notify's defaults.
func (n *NotifyChannel) UnmarshalYAML(unmarshal func(any) error) error {
	*n = NotifyChannel{
		Stations: notify.DefaultStations(), Severities: notify.DefaultSeverities(), On: notify.DefaultOn(),
		Group: Duration(notify.DefaultGroup),
	}
	type plain NotifyChannel
	return unmarshal((*plain)(n))
}

// NotifyChannels returns the channels as the notify package takes them.
func (c *Config) NotifyChannels() []notify.Channel {
	out := make([]notify.Channel, 0, len(c.Notify))
	for _, n := range c.Notify {
		out = append(out, notify.Channel{
			Name: n.Name, Kind: n.Kind, URL: n.URL, Secret: n.Secret, To: n.To,
			SMTP: notify.SMTP{Host: n.SMTP.Host, Port: n.SMTP.Port, Username: n.SMTP.Username,
				Password: n.SMTP.Password, From: n.SMTP.From, TLS: n.SMTP.TLS, CAFile: n.SMTP.CAFile},
			Stations: n.Stations, Severities: n.Severities, On: n.On,
			Group: n.Group.Std(), Timeout: n.Timeout.Std(),
		})
	}
	return out
}

// Metrics says where Prometheus scrapes.
type Metrics struct {
	// Listen, when set (host:port), serves /metrics on an address of its own, without a
	// token (the address is the protection: loopback or a management network), and the
	// API's listener stops serving it. Empty: /metrics on the API's listener, guarded as
	// auth says.
	Listen string `yaml:"listen"`
}

// DefaultListen is the HTTP API's address when the file names none: this host only.
const DefaultListen = "127.0.0.1:8080"

// Default is the configuration of a file that sets nothing but database_url: every
// default, taken from the component that owns it.
func Default() Config {
	maxAge := map[string]Duration{}
	for src, d := range fusion.DefaultPolicy().MaxAge {
		maxAge[src] = Duration(d)
	}
	ret := store.DefaultRetention()
	return Config{
		Listen: DefaultListen,
		Log:    logging.Default(),
		Database: Database{
			Mode:          string(store.ModeAuto),
			MaxConns:      store.DefaultMaxConns,
			QueryTimeout:  Duration(store.DefaultQueryTimeout),
			IngestTimeout: Duration(store.DefaultIngestTimeout),
		},
		Ingest: Ingest{
			RatePerStation: ingest.DefaultRatePerStation,
			Burst:          ingest.DefaultBurst,
			MaxInFlight:    ingest.DefaultMaxInFlight,
			RetryAfter:     Duration(ingest.DefaultRetryAfter),
		},
		Retention: Retention{
			Measurements: Duration(ret.Measurements), WQI: Duration(ret.WQI), External: Duration(ret.External),
			Alerts: Duration(ret.Alerts), Rollups: Duration(ret.Rollups), Health: Duration(ret.Health),
			Events: Duration(store.DefaultEventsRetention), Forecasts: Duration(ret.Forecasts),
		},
		Partitions: Partitions{
			AheadDays:           store.DefaultAheadDays,
			MaintenanceInterval: Duration(store.DefaultMaintenanceInterval),
		},
		Fusion:  Fusion{Priority: fusion.DefaultPolicy().Priority, MaxAge: maxAge, Interval: Duration(fusedwqi.DefaultInterval)},
		Samples: defaultSamples(),
		WebSocket: WebSocket{
			MaxClients:   fanout.DefaultMaxClients,
			Queue:        fanout.DefaultQueue,
			WriteTimeout: Duration(fanout.DefaultWriteTimeout),
			PingInterval: Duration(fanout.DefaultPingInterval),
			ReadLimit:    fanout.DefaultReadLimit,
			ReplayMax:    fanout.DefaultReplayMax,
			ReplayWindow: Duration(fanout.DefaultReplayWindow),
			Recent:       fanout.DefaultRecent,
			PollInterval: Duration(fanout.DefaultPollInterval),
			LiveMaxAge:   Duration(store.DefaultLiveMaxAge),
		},
		StationHealth: StationHealth{
			Interval:              Duration(store.DefaultHealthInterval),
			OfflineAfter:          Duration(store.DefaultOfflineAfter),
			OfflineAfterByStation: map[string]Duration{},
		},
		Forecast: defaultForecast(),
		Anomaly:  defaultAnomaly(),
	}
}

// Load reads, strictly decodes and validates the file at path.
func Load(path string) (*Config, error) {
	return strictyaml.Load[Config](path, Default)
}

// Parse decodes and validates a configuration document.
func Parse(data []byte) (*Config, error) {
	return strictyaml.Parse[Config](data, Default)
}

// hashes decodes hex SHA-256 hashes (Validate has checked them).
func hashes(hexes []string) [][sha256.Size]byte {
	out := make([][sha256.Size]byte, 0, len(hexes))
	for _, h := range hexes {
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
	if m := c.Metrics.Listen; m != "" {
		if _, _, err := net.SplitHostPort(m); err != nil {
			bad("metrics.listen: %q is not host:port", m)
		} else if m == c.Listen {
			bad("metrics.listen: %q is the API's listen address; give /metrics an address of its own or leave it empty", m)
		}
	}
	if c.DatabaseURL == "" {
		bad("database_url: required (postgres://user@host/dbname)")
	} else if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		// pgx redacts the password in its message.
		bad("database_url: %v", err)
	}
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
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
		{"alerts", c.Retention.Alerts}, {"rollups", c.Retention.Rollups}, {"health", c.Retention.Health},
		{"forecasts", c.Retention.Forecasts},
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
		if !telemetry.ValidStationID(id) {
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

	if len(c.Fusion.Priority) == 0 {
		bad("fusion.priority: empty: list the sources, most trusted first")
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
	for i, h := range c.Auth.MetricsTokensSHA256 {
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			bad("auth.metrics_tokens_sha256[%d]: want 64 hex digits (ph-cloud viewer-token prints a token and its hash)", i)
		}
	}
	c.validateSources(bad)
	if err := (notify.Options{Channels: c.NotifyChannels()}).Validate(); err != nil {
		errs = append(errs, err)
	}
	c.Forecast.validate(bad)
	c.Anomaly.validate(bad)
	return errors.Join(errs...)
}

func (w *WebSocket) validate(bad func(string, ...any)) {
	for _, p := range w.AllowedOrigins {
		if err := fanout.CheckOriginPattern(p); err != nil {
			bad("websocket.allowed_origins: %v", err)
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Duration is a duration in the file: Go's syntax ("30s", "2h") or days ("90d", "1.5d").
type Duration = strictyaml.Duration

// ByteSize is a number of bytes in the file: a plain integer or with a unit ("16KiB").
type ByteSize = strictyaml.ByteSize

// Day is the unit of a duration written in days.
const Day = strictyaml.Day

// Policy returns the fusion policy the configuration sets.
func (f Fusion) Policy() fusion.Policy {
	p := fusion.Policy{Priority: slices.Clone(f.Priority), MaxAge: map[string]time.Duration{}}
	for src, d := range f.MaxAge {
		p.MaxAge[src] = d.Std()
	}
	return p
}

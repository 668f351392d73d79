// Package config loads and checks the station agent's YAML configuration.
//
// There is one load path: Load strictly decodes the file (an unknown key is an error that
// names its line), fills in defaults, and runs Validate, which reports every problem at
// once. `ph-agent config check` runs exactly this path. A loaded Config is treated as
// immutable by the rest of the agent.
package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/purehealth/purehealth/agent/internal/serialprobe"
	"github.com/purehealth/purehealth/internal/strictyaml"
	"github.com/purehealth/purehealth/shared/criteria"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
	"github.com/purehealth/purehealth/shared/wqi"
)

// Config is the whole agent configuration. Keys marked contract in the design document keep
// their names.
type Config struct {
	Station     Station    `yaml:"station"`
	DataDir     string     `yaml:"data_dir"`
	AdminSocket string     `yaml:"admin_socket"` // default <data_dir>/admin.sock
	Log         Log        `yaml:"log"`
	MQTT        MQTT       `yaml:"mqtt"`
	Uplink      Uplink     `yaml:"uplink"`
	Buffer      Buffer     `yaml:"buffer"`
	Probes      []Probe    `yaml:"probes"`
	Alerts      Alerts     `yaml:"alerts"`
	WQI         WQI        `yaml:"wqi"`
	Validation  Validation `yaml:"validation"`
	Clock       Clock      `yaml:"clock"`

	// Path is the file the configuration came from (not a YAML key).
	Path string `yaml:"-"`
}

// Station identifies the station and the facts the science needs about it.
type Station struct {
	ID       string `yaml:"id"`
	Name     string `yaml:"name"`
	Timezone string `yaml:"timezone"` // IANA name; offset-less timestamps are read in it
	// Class is the CPCB designated-best-use class (A–E) that threshold alerts use. Load
	// stores it upper-case, so criteria.Class(Class) is valid.
	Class string `yaml:"class"`
	// ElevationM sets the air pressure for DO saturation (Benson & Krause with pressure
	// correction); 0 = sea level.
	ElevationM float64 `yaml:"elevation_m"`
	// DOMethod is benson-krause (default) or mpcb. Load stores it in canonical form, so
	// wqi.DOMethod(DOMethod) is valid.
	DOMethod string  `yaml:"do_method"`
	Lat      float64 `yaml:"lat"`
	Lon      float64 `yaml:"lon"`
}

// Log sets the daemon's log output.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// MQTT configures the embedded broker.
type MQTT struct {
	Listen         string     `yaml:"listen"`          // default 127.0.0.1:1883
	AllowAnonymous bool       `yaml:"allow_anonymous"` // default false: dev configs only
	Users          []MQTTUser `yaml:"users"`
	TLS            *TLS       `yaml:"tls"`
	MaxPacketBytes uint32     `yaml:"max_packet_bytes"` // default 64 KiB
	MaxClients     int64      `yaml:"max_clients"`      // default 1000
}

// MQTTUser is a broker account. Passwords are stored only as bcrypt hashes
// (`ph-agent passwd` prints one).
type MQTTUser struct {
	Name         string   `yaml:"name"`
	PasswordHash string   `yaml:"password_hash"`
	Role         string   `yaml:"role"` // device (default), viewer, admin
	Publish      []string `yaml:"publish"`
	Subscribe    []string `yaml:"subscribe"`
}

// TLS is an optional TLS listener.
type TLS struct {
	Listen   string `yaml:"listen"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	ClientCA string `yaml:"client_ca"` // optional: require client certificates
}

// Uplink configures store-and-forward to the cloud.
type Uplink struct {
	URL   string `yaml:"url"`
	Token string `yaml:"token"`
	// TokenFile holds the token instead; it is read again whenever the cloud refuses the
	// token, so a rotated one takes effect without a restart.
	TokenFile string        `yaml:"token_file"`
	Interval  time.Duration `yaml:"interval"`  // default 2s
	BatchMax  int           `yaml:"batch_max"` // records per batch, default 2000
	// CAFile replaces the system roots for the cloud's certificate; CertFile and KeyFile
	// are a client certificate for mutual TLS. All need an https:// url.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// LiveReadings is how many of the newest unsent readings go first, with the unsent
	// alerts and the latest WQI, when the link comes back (default 200).
	LiveReadings int `yaml:"live_readings"`
	// BackoffMax caps the wait between failed attempts (default 5m).
	BackoffMax time.Duration `yaml:"backoff_max"`
	// DailyBytes is a budget of bytes on the wire per UTC day for metered links; 0 (the
	// default) means no limit. Once it is spent only alerts and the latest WQI go.
	DailyBytes     int64         `yaml:"daily_bytes"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"` // TCP connect and TLS handshake, default 10s
	RequestTimeout time.Duration `yaml:"request_timeout"` // one whole request, default 30s
}

// Buffer bounds the local store.
type Buffer struct {
	MaxBytes  int64         `yaml:"max_bytes"` // default 512 MiB (256 MiB on 32-bit ARM)
	Retention time.Duration `yaml:"retention"` // forwarded history kept locally, default 30 days
	// UnsafeNoFsync skips fsync on commit so benchmarks can show what durability costs.
	// A power cut can then lose acknowledged readings: never set it on a station.
	UnsafeNoFsync bool `yaml:"unsafe_no_fsync"`
}

// Probe is one configured probe. Configured probes are the station's expected inventory.
type Probe struct {
	Name     string        `yaml:"name"`
	Kind     string        `yaml:"kind"`     // serial, coap, http
	Param    string        `yaml:"param"`    // name or alias; Load stores the canonical name
	Interval time.Duration `yaml:"interval"` // poll interval and expected reporting interval, default 60s
	Device   string        `yaml:"device"`   // serial
	Baud     int           `yaml:"baud"`     // serial, default 9600
	URL      string        `yaml:"url"`      // coap, http
	Observe  bool          `yaml:"observe"`  // coap
	Timeout  time.Duration `yaml:"timeout"`  // 0: the probe driver's default
}

// Alerts tunes local alerting.
type Alerts struct {
	// RuleSets adds optional criteria beyond the station class: "bathing",
	// "drinking-reference".
	RuleSets []string `yaml:"rule_sets"`
	// Deadband is the hysteresis margin, as a fraction of the limit, a value must come back
	// inside before a threshold alert resolves (default 0.02: DO ≥ 5 clears at 5.1, pH ≤ 8.5 at 8.33).
	Deadband float64 `yaml:"deadband"`
	// ClearCount is how many consecutive clean evaluations resolve an alert (default 3).
	ClearCount int `yaml:"clear_count"`
	// OfflineFactor times a sensor's expected interval without a reading makes it offline
	// (default 3).
	OfflineFactor float64 `yaml:"offline_factor"`
	// BadCount consecutive bad readings make a sensor-fault alert (default 3).
	BadCount int `yaml:"bad_count"`
	// CalibrationDue is how old a serial probe's last calibration may get before a
	// "calibration due" alert (default 720h, 30 days).
	CalibrationDue time.Duration `yaml:"calibration_due"`
	Hooks          []Hook        `yaml:"hooks"`
}

// Hook runs a local command on alert transitions (a siren, an SMS modem script).
type Hook struct {
	Command []string      `yaml:"command"`
	On      []string      `yaml:"on"`      // opened, acknowledged, resolved, escalated; empty = all
	Timeout time.Duration `yaml:"timeout"` // default 10s
}

// WQI tunes the live index.
type WQI struct {
	// Freshness is how old the latest value of a parameter may be and still feed the index,
	// per parameter (defaults: ph, do, temp 2h; bod, fc 48h, as they are sampled rarely).
	Freshness map[string]time.Duration `yaml:"freshness"`
	// HistoryInterval is the least time between two stored WQI history points, unless the
	// class changes (default 1m).
	HistoryInterval time.Duration `yaml:"history_interval"`
}

// Validation tunes reading quality checks (see shared/validate).
type Validation struct {
	SpikeSigma    float64       `yaml:"spike_sigma"`
	FlatlineCount int           `yaml:"flatline_count"`
	MaxFuture     time.Duration `yaml:"max_future"`
	MaxPast       time.Duration `yaml:"max_past"`
}

// Clock says how the agent decides the wall clock can be trusted (a Pi has no RTC).
type Clock struct {
	// SyncCheck: "kernel" (default: the kernel's NTP status via adjtimex, set by chrony or
	// systemd-timesyncd), "file" (SyncFile exists, e.g. systemd-timesyncd's
	// /run/systemd/timesync/synchronized), "floor" (only the sanity floor), "none" (always
	// trust the clock).
	SyncCheck string `yaml:"sync_check"`
	SyncFile  string `yaml:"sync_file"`
	// MinTime is the sanity floor: a clock before it is certainly wrong (default
	// 2025-01-01).
	MinTime string `yaml:"min_time"`
}

// Defaults.
const (
	DefaultMQTTListen     = "127.0.0.1:1883"
	DefaultMaxPacketBytes = 64 << 10
	DefaultMaxClients     = 1000
	DefaultMaxBytes       = 512 << 20 // MaxBytes32 on 32-bit platforms
	DefaultRetention      = 30 * 24 * time.Hour
	DefaultUplinkInterval = 2 * time.Second
	DefaultBatchMax       = 2000
	DefaultLiveReadings   = 200
	DefaultBackoffMax     = 5 * time.Minute
	DefaultConnectTimeout = 10 * time.Second
	DefaultRequestTimeout = 30 * time.Second
	MinDailyBytes         = 64 << 10
	DefaultHookTimeout    = 10 * time.Second
	DefaultMinTime        = "2025-01-01"
	DefaultSyncFile       = "/run/systemd/timesync/synchronized"
	DefaultCalibrationDue = 30 * 24 * time.Hour
)

// DefaultFreshness is how long a parameter's latest value may feed the WQI.
var DefaultFreshness = map[telemetry.Param]time.Duration{
	telemetry.PH:   2 * time.Hour,
	telemetry.DO:   2 * time.Hour,
	telemetry.Temp: 2 * time.Hour,
	telemetry.BOD:  48 * time.Hour,
	telemetry.FC:   48 * time.Hour,
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
	if c.AdminSocket == "" && c.DataDir != "" {
		c.AdminSocket = filepath.Join(c.DataDir, "admin.sock")
	}
	if c.Station.Timezone == "" {
		c.Station.Timezone = "UTC"
	}
	// Consumers convert these strings straight to their typed forms, so store the canonical
	// spelling; a value that does not parse is left as written for Validate to report.
	if class, err := criteria.ParseClass(c.Station.Class); err == nil {
		c.Station.Class = string(class)
	}
	if m, err := wqi.ParseDOMethod(c.Station.DOMethod); err == nil {
		c.Station.DOMethod = string(m)
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.MQTT.Listen == "" {
		c.MQTT.Listen = DefaultMQTTListen
	}
	if c.MQTT.MaxPacketBytes == 0 {
		c.MQTT.MaxPacketBytes = DefaultMaxPacketBytes
	}
	if c.MQTT.MaxClients == 0 {
		c.MQTT.MaxClients = DefaultMaxClients
	}
	for i := range c.MQTT.Users {
		if c.MQTT.Users[i].Role == "" {
			c.MQTT.Users[i].Role = "device"
		}
	}
	if c.Uplink.Interval == 0 {
		c.Uplink.Interval = DefaultUplinkInterval
	}
	if c.Uplink.BatchMax == 0 {
		c.Uplink.BatchMax = DefaultBatchMax
	}
	if c.Uplink.LiveReadings == 0 {
		c.Uplink.LiveReadings = DefaultLiveReadings
	}
	if c.Uplink.BackoffMax == 0 {
		c.Uplink.BackoffMax = DefaultBackoffMax
	}
	if c.Uplink.ConnectTimeout == 0 {
		c.Uplink.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Uplink.RequestTimeout == 0 {
		c.Uplink.RequestTimeout = DefaultRequestTimeout
	}
	if c.Buffer.MaxBytes == 0 {
		c.Buffer.MaxBytes = DefaultMaxBytes
		if strconv.IntSize == 32 {
			// The default must itself be valid on a 32-bit ARM gateway.
			c.Buffer.MaxBytes = MaxBytes32
		}
	}
	if c.Buffer.Retention == 0 {
		c.Buffer.Retention = DefaultRetention
	}
	for i := range c.Probes {
		p := &c.Probes[i]
		if p.Kind == "serial" && p.Baud == 0 {
			p.Baud = 9600
		}
		if p.Interval == 0 {
			p.Interval = 60 * time.Second
		}
		if param, err := telemetry.ParseParam(p.Param); err == nil {
			p.Param = string(param)
		}
	}
	if c.Alerts.Deadband == 0 {
		c.Alerts.Deadband = 0.02
	}
	if c.Alerts.ClearCount == 0 {
		c.Alerts.ClearCount = 3
	}
	if c.Alerts.OfflineFactor == 0 {
		c.Alerts.OfflineFactor = 3
	}
	if c.Alerts.BadCount == 0 {
		c.Alerts.BadCount = 3
	}
	if c.Alerts.CalibrationDue == 0 {
		c.Alerts.CalibrationDue = DefaultCalibrationDue
	}
	for i := range c.Alerts.Hooks {
		if c.Alerts.Hooks[i].Timeout == 0 {
			c.Alerts.Hooks[i].Timeout = DefaultHookTimeout
		}
	}
	if c.WQI.HistoryInterval == 0 {
		c.WQI.HistoryInterval = time.Minute
	}
	if c.Clock.SyncCheck == "" {
		c.Clock.SyncCheck = "kernel"
	}
	if c.Clock.SyncFile == "" {
		c.Clock.SyncFile = DefaultSyncFile
	}
	if c.Clock.MinTime == "" {
		c.Clock.MinTime = DefaultMinTime
	}
}

var (
	stationIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	bcryptPattern    = regexp.MustCompile(`^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$`)
)

// Validate reports every problem in the configuration, joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if !stationIDPattern.MatchString(c.Station.ID) {
		bad("station.id: %q must be 1–64 letters, digits, '-' or '_'", c.Station.ID)
	}
	if _, err := time.LoadLocation(c.Station.Timezone); err != nil {
		bad("station.timezone: %q is not a known time zone", c.Station.Timezone)
	}
	if _, err := criteria.ParseClass(c.Station.Class); err != nil {
		bad("station.class: %q must be one of A, B, C, D, E", c.Station.Class)
	}
	if _, err := wqi.ParseDOMethod(c.Station.DOMethod); err != nil {
		bad("station.do_method: %q must be benson-krause or mpcb", c.Station.DOMethod)
	}
	// Every range check is written so that NaN fails it: YAML spells NaN .nan.
	if !(c.Station.ElevationM >= -500 && c.Station.ElevationM <= 6000) {
		bad("station.elevation_m: %v m is outside -500..6000", c.Station.ElevationM)
	}
	if !(c.Station.Lat >= -90 && c.Station.Lat <= 90) {
		bad("station.lat: %v is outside -90..90", c.Station.Lat)
	}
	if !(c.Station.Lon >= -180 && c.Station.Lon <= 180) {
		bad("station.lon: %v is outside -180..180", c.Station.Lon)
	}
	if c.DataDir == "" {
		bad("data_dir: required")
	}
	if len(c.AdminSocket) > 100 {
		// sun_path is 108 bytes on Linux; leave room for the terminator.
		bad("admin_socket: path %q is longer than a unix socket allows", c.AdminSocket)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level: %q must be debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format: %q must be text or json", c.Log.Format)
	}

	if _, _, err := net.SplitHostPort(c.MQTT.Listen); err != nil {
		bad("mqtt.listen: %q is not host:port", c.MQTT.Listen)
	}
	if !c.MQTT.AllowAnonymous && len(c.MQTT.Users) == 0 {
		bad("mqtt: no users and allow_anonymous is false: no device could publish (add mqtt.users or, for a dev setup, allow_anonymous: true)")
	}
	seenUsers := map[string]bool{}
	for i, u := range c.MQTT.Users {
		at := fmt.Sprintf("mqtt.users[%d]", i)
		if u.Name == "" {
			bad("%s.name: required", at)
		} else if seenUsers[u.Name] {
			bad("%s.name: %q is listed twice", at, u.Name)
		}
		seenUsers[u.Name] = true
		// The pattern checks the shape, bcrypt.Cost the cost (4..31) the broker will accept.
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil || !bcryptPattern.MatchString(u.PasswordHash) {
			bad("%s.password_hash: not a bcrypt hash (make one with `ph-agent passwd`)", at)
		}
		switch u.Role {
		case "device", "viewer", "admin":
		default:
			bad("%s.role: %q must be device, viewer or admin", at, u.Role)
		}
	}
	if t := c.MQTT.TLS; t != nil {
		if _, _, err := net.SplitHostPort(t.Listen); err != nil {
			bad("mqtt.tls.listen: %q is not host:port", t.Listen)
		}
		if t.CertFile == "" {
			bad("mqtt.tls.cert_file: required")
		}
		if t.KeyFile == "" {
			bad("mqtt.tls.key_file: required")
		}
	}
	if c.MQTT.MaxPacketBytes < 1<<10 {
		bad("mqtt.max_packet_bytes: %d is below the 1 KiB minimum", c.MQTT.MaxPacketBytes)
	}
	if c.MQTT.MaxClients < 1 {
		bad("mqtt.max_clients: %d must be at least 1", c.MQTT.MaxClients)
	}

	if c.Uplink.URL != "" {
		u, err := url.Parse(c.Uplink.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("uplink.url: %q must be an http:// or https:// URL", c.Uplink.URL)
		}
		if c.Uplink.Token == "" && c.Uplink.TokenFile == "" {
			bad("uplink: token or token_file is required with a url")
		}
		if err == nil && u.Scheme == "http" {
			for _, f := range []struct{ key, v string }{
				{"ca_file", c.Uplink.CAFile}, {"cert_file", c.Uplink.CertFile}, {"key_file", c.Uplink.KeyFile},
			} {
				if f.v != "" {
					bad("uplink.%s: set, but the url %q is not https://, so it would not be used", f.key, c.Uplink.URL)
				}
			}
		}
	}
	if (c.Uplink.CertFile == "") != (c.Uplink.KeyFile == "") {
		bad("uplink: cert_file and key_file go together (a client certificate and its key)")
	}
	if c.Uplink.Token != "" && c.Uplink.TokenFile != "" {
		bad("uplink: give token or token_file, not both")
	}
	if c.Uplink.Interval < 100*time.Millisecond {
		bad("uplink.interval: %s is shorter than 100ms", c.Uplink.Interval)
	}
	if c.Uplink.BatchMax < 1 || c.Uplink.BatchMax > wire.MaxRecords {
		bad("uplink.batch_max: %d must be 1..%d (the most records the cloud takes in one batch)", c.Uplink.BatchMax, wire.MaxRecords)
	}
	if c.Uplink.LiveReadings < 1 || c.Uplink.LiveReadings > wire.MaxRecords {
		bad("uplink.live_readings: %d must be 1..%d", c.Uplink.LiveReadings, wire.MaxRecords)
	}
	if c.Uplink.BackoffMax < time.Second || c.Uplink.BackoffMax > 24*time.Hour {
		bad("uplink.backoff_max: %s must be within 1s..24h", c.Uplink.BackoffMax)
	}
	if c.Uplink.DailyBytes != 0 && c.Uplink.DailyBytes < MinDailyBytes {
		bad("uplink.daily_bytes: %d is below %d (64 KiB); 0 means no limit", c.Uplink.DailyBytes, MinDailyBytes)
	}
	if c.Uplink.ConnectTimeout < 100*time.Millisecond {
		bad("uplink.connect_timeout: %s is shorter than 100ms", c.Uplink.ConnectTimeout)
	}
	if c.Uplink.RequestTimeout < time.Second {
		bad("uplink.request_timeout: %s is shorter than 1s", c.Uplink.RequestTimeout)
	}

	if c.Buffer.MaxBytes < 1<<20 {
		bad("buffer.max_bytes: %d is below the 1 MiB minimum", c.Buffer.MaxBytes)
	}
	if strconv.IntSize == 32 && c.Buffer.MaxBytes > MaxBytes32 {
		bad("buffer.max_bytes: %d is above %d, the most a 32-bit ARM gateway can map", c.Buffer.MaxBytes, MaxBytes32)
	}
	if c.Buffer.Retention < time.Hour {
		bad("buffer.retention: %s is shorter than 1h", c.Buffer.Retention)
	}

	seenProbes := map[string]bool{}
	for i, p := range c.Probes {
		at := fmt.Sprintf("probes[%d]", i)
		if p.Name == "" {
			bad("%s.name: required", at)
		} else if seenProbes[p.Name] {
			bad("%s.name: %q is listed twice", at, p.Name)
		}
		seenProbes[p.Name] = true
		if _, err := telemetry.ParseParam(p.Param); err != nil {
			bad("%s.param: %q is not a known parameter", at, p.Param)
		}
		if p.Interval < 100*time.Millisecond {
			bad("%s.interval: %s is shorter than 100ms", at, p.Interval)
		}
		if p.Timeout < 0 {
			bad("%s.timeout: %s must not be negative", at, p.Timeout)
		}
		switch p.Kind {
		case "serial":
			if p.Device == "" {
				bad("%s.device: required for a serial probe", at)
			}
			if p.Baud < 1 {
				bad("%s.baud: %d must be positive", at, p.Baud)
			}
			if param, err := telemetry.ParseParam(p.Param); err == nil && !slices.Contains(serialprobe.Params(), param) {
				bad("%s.param: no EZO circuit measures %s (serial probes: %v)", at, param, serialprobe.Params())
			}
		case "coap":
			if u, err := url.Parse(p.URL); err != nil || u.Scheme == "coaps" {
				bad("%s.url: %q: coaps (CoAP over DTLS) is not supported; use coap://", at, p.URL)
			} else if u.Scheme != "coap" || u.Host == "" {
				bad("%s.url: %q must be a coap:// URL", at, p.URL)
			}
		case "http":
			if u, err := url.Parse(p.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("%s.url: %q must be an http:// URL", at, p.URL)
			}
		default:
			bad("%s.kind: %q must be serial, coap or http", at, p.Kind)
		}
	}

	for _, s := range c.Alerts.RuleSets {
		if s != "bathing" && s != "drinking-reference" {
			bad("alerts.rule_sets: %q must be bathing or drinking-reference", s)
		}
	}
	if !(c.Alerts.Deadband >= 0 && c.Alerts.Deadband <= 0.5) {
		bad("alerts.deadband: %v must be within 0..0.5", c.Alerts.Deadband)
	}
	if c.Alerts.ClearCount < 1 {
		bad("alerts.clear_count: %d must be at least 1", c.Alerts.ClearCount)
	}
	if c.Alerts.BadCount < 1 {
		bad("alerts.bad_count: %d must be at least 1", c.Alerts.BadCount)
	}
	if !(c.Alerts.OfflineFactor >= 1) || math.IsInf(c.Alerts.OfflineFactor, 1) {
		bad("alerts.offline_factor: %v must be at least 1", c.Alerts.OfflineFactor)
	}
	if c.Alerts.CalibrationDue < time.Hour {
		bad("alerts.calibration_due: %s is shorter than 1h", c.Alerts.CalibrationDue)
	}
	for i, h := range c.Alerts.Hooks {
		at := fmt.Sprintf("alerts.hooks[%d]", i)
		if len(h.Command) == 0 || h.Command[0] == "" {
			bad("%s.command: required", at)
		}
		for _, on := range h.On {
			switch on {
			case "opened", "acknowledged", "resolved", "escalated":
			default:
				bad("%s.on: %q must be opened, acknowledged, resolved or escalated", at, on)
			}
		}
		if h.Timeout <= 0 {
			bad("%s.timeout: must be positive", at)
		}
	}

	// Sorted, so that the report reads the same on every run.
	for _, name := range slices.Sorted(maps.Keys(c.WQI.Freshness)) {
		d := c.WQI.Freshness[name]
		p, err := telemetry.ParseParam(name)
		if err != nil {
			bad("wqi.freshness: %q is not a known parameter", name)
			continue
		}
		if string(p) != name {
			bad("wqi.freshness: use the canonical name %q, not %q", p, name)
		}
		if d <= 0 {
			bad("wqi.freshness.%s: must be positive", name)
		}
	}
	if c.WQI.HistoryInterval < 0 {
		bad("wqi.history_interval: %s must not be negative", c.WQI.HistoryInterval)
	}

	// Zero means the validator's default here (shared/validate); a negative value is a typo.
	if !(c.Validation.SpikeSigma >= 0) || math.IsInf(c.Validation.SpikeSigma, 1) {
		bad("validation.spike_sigma: %v must be a finite number, 0 or more (0: default)", c.Validation.SpikeSigma)
	}
	if c.Validation.FlatlineCount < 0 {
		bad("validation.flatline_count: %d must not be negative (0: default)", c.Validation.FlatlineCount)
	}
	if c.Validation.MaxFuture < 0 {
		bad("validation.max_future: %s must not be negative (0: default)", c.Validation.MaxFuture)
	}
	if c.Validation.MaxPast < 0 {
		bad("validation.max_past: %s must not be negative (0: default)", c.Validation.MaxPast)
	}

	switch c.Clock.SyncCheck {
	case "kernel", "file", "floor", "none":
	default:
		bad("clock.sync_check: %q must be kernel, file, floor or none", c.Clock.SyncCheck)
	}
	if _, err := time.Parse(time.DateOnly, c.Clock.MinTime); err != nil {
		bad("clock.min_time: %q must be a date like 2025-01-01", c.Clock.MinTime)
	}
	return errors.Join(errs...)
}

// MaxBytes32 caps the buffer on 32-bit ARM, where mapping a file near 1 GiB fails.
const MaxBytes32 = 256 << 20

// Location returns the station's time zone (validated by Load).
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Station.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Freshness returns the freshness window for p.
func (c *Config) Freshness(p telemetry.Param) time.Duration {
	if d, ok := c.WQI.Freshness[string(p)]; ok {
		return d
	}
	if d, ok := DefaultFreshness[p]; ok {
		return d
	}
	return 2 * time.Hour
}

// MinTime returns the clock sanity floor.
func (c *Config) MinTime() time.Time {
	t, err := time.Parse(time.DateOnly, c.Clock.MinTime)
	if err != nil {
		return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return t
}

// UplinkToken returns the configured token, reading token_file when set (surrounding
// whitespace trimmed; an empty file is an error). It reads the file on each call.
func (c *Config) UplinkToken() (string, error) {
	if c.Uplink.TokenFile == "" {
		return c.Uplink.Token, nil
	}
	b, err := os.ReadFile(c.Uplink.TokenFile)
	if err != nil {
		return "", fmt.Errorf("uplink.token_file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		// An empty bearer token would only earn 401s from the cloud, forever.
		return "", fmt.Errorf("uplink.token_file: %s is empty", c.Uplink.TokenFile)
	}
	return token, nil
}

// SocketPath finds the admin socket named by the file at path without validating the rest,
// so a technician can still query a running agent while its file has an unrelated mistake.
func SocketPath(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read config: %w", err)
	}
	var c struct {
		DataDir     string `yaml:"data_dir"`
		AdminSocket string `yaml:"admin_socket"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		return "", fmt.Errorf("%s: decode: %w", path, err)
	}
	switch {
	case c.AdminSocket != "":
		return c.AdminSocket, nil
	case c.DataDir != "":
		return filepath.Join(c.DataDir, "admin.sock"), nil
	}
	return "", fmt.Errorf("%s: neither admin_socket nor data_dir is set", path)
}

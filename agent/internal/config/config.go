// Package config loads and checks the station agent's YAML configuration.
//
// There is one load path (internal/strictyaml): Load decodes the file strictly (an unknown
// key is an error that names its line) onto Default, so a key the file leaves out keeps
// its default and any value written, zero included, is taken as written; Complete derives
// what depends on other keys; Validate reports every problem at once. `ph-agent config
// check` runs exactly this path. A loaded Config is treated as immutable by the rest of
// the agent.
//
// The defaults belong to the components that use them (spool.DefaultMaxBytes,
// uplink.DefaultInterval, alerting.DefaultDeadband ...): Default is built from them, and
// configs/agent.example.yaml documents them with a test keeping the two in step.
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

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/broker"
	"github.com/purehealth/purehealth/agent/internal/calibration"
	"github.com/purehealth/purehealth/agent/internal/clock"
	"github.com/purehealth/purehealth/agent/internal/coapprobe"
	"github.com/purehealth/purehealth/agent/internal/httpprobe"
	"github.com/purehealth/purehealth/agent/internal/pipeline"
	"github.com/purehealth/purehealth/agent/internal/serialprobe"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/agent/internal/uplink"
	"github.com/purehealth/purehealth/internal/logging"
	"github.com/purehealth/purehealth/internal/strictyaml"
	"github.com/purehealth/purehealth/shared/criteria"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/validate"
	"github.com/purehealth/purehealth/shared/wire"
	"github.com/purehealth/purehealth/shared/wqi"
)

// Duration is a duration in the file: Go's syntax ("30s", "2h") or days ("30d").
type Duration = strictyaml.Duration

// ByteSize is a number of bytes in the file: a plain integer or with a unit ("512MiB").
type ByteSize = strictyaml.ByteSize

// Config is the whole agent configuration. Keys marked contract in the design document keep
// their names.
type Config struct {
	Station     Station        `yaml:"station"`
	DataDir     string         `yaml:"data_dir"`
	AdminSocket string         `yaml:"admin_socket"` // default <data_dir>/admin.sock
	Log         logging.Config `yaml:"log"`
	MQTT        MQTT           `yaml:"mqtt"`
	Uplink      Uplink         `yaml:"uplink"`
	Buffer      Buffer         `yaml:"buffer"`
	Probes      []Probe        `yaml:"probes"`
	Alerts      Alerts         `yaml:"alerts"`
	WQI         WQI            `yaml:"wqi"`
	Validation  Validation     `yaml:"validation"`
	Clock       Clock          `yaml:"clock"`
	Sensors     Sensors        `yaml:"sensors"`
	Metrics     Metrics        `yaml:"metrics"`

	strictyaml.Source `yaml:"-"` // the file it came from
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

// MQTT configures the embedded broker.
type MQTT struct {
	Listen         string     `yaml:"listen"`          // default broker.DefaultListen
	AllowAnonymous bool       `yaml:"allow_anonymous"` // default false: dev configs only
	Users          []MQTTUser `yaml:"users"`
	TLS            *TLS       `yaml:"tls"`
	MaxPacketBytes ByteSize   `yaml:"max_packet_bytes"` // default broker.DefaultMaxPacketSize
	MaxClients     int64      `yaml:"max_clients"`      // default broker.DefaultMaxClients
	// Insecure allows allow_anonymous on a listener other than loopback: anyone who
	// reaches the port could publish readings. Without it that combination is refused.
	Insecure bool `yaml:"insecure"`
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
	TokenFile string   `yaml:"token_file"`
	Interval  Duration `yaml:"interval"`  // default uplink.DefaultInterval
	BatchMax  int      `yaml:"batch_max"` // records per batch, default uplink.DefaultBatchMax
	// CAFile replaces the system roots for the cloud's certificate; CertFile and KeyFile
	// are a client certificate for mutual TLS. All need an https:// url.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// LiveReadings is how many of the newest unsent readings go first, with the unsent
	// alerts and the latest WQI, when the link comes back (default uplink.DefaultLiveReadings).
	LiveReadings int `yaml:"live_readings"`
	// BackoffMax caps the wait between failed attempts (default uplink.DefaultBackoffMax).
	BackoffMax Duration `yaml:"backoff_max"`
	// DailyBytes is a budget of bytes on the wire per UTC day for metered links; 0 (the
	// default) means no limit. Once it is spent only alerts and the latest WQI go.
	DailyBytes     ByteSize `yaml:"daily_bytes"`
	ConnectTimeout Duration `yaml:"connect_timeout"` // TCP connect and TLS handshake, default uplink.DefaultConnectTimeout
	RequestTimeout Duration `yaml:"request_timeout"` // one whole request, default uplink.DefaultRequestTimeout
	// HealthInterval is how often the station's health record goes to the cloud (default
	// uplink.DefaultHealthInterval).
	HealthInterval Duration `yaml:"health_interval"`
	// Insecure allows an http:// url to a host other than loopback: the bearer token and
	// the data would cross the network in clear. Without it that url is refused.
	Insecure bool `yaml:"insecure"`
}

// Sensors bounds the per-sensor state the agent keeps.
type Sensors struct {
	// Max is how many sensors the station keeps state for, configured probes included;
	// readings of a new sensor beyond it are refused, counted and alerted (default
	// state.DefaultMaxSensors).
	Max int `yaml:"max"`
	// ForgetAfter is how long a sensor that is not a configured probe may stay silent
	// before it is forgotten (default state.DefaultForgetAfter).
	ForgetAfter Duration `yaml:"forget_after"`
}

// Buffer bounds the local store.
type Buffer struct {
	MaxBytes  ByteSize `yaml:"max_bytes"` // default spool.DefaultMaxBytes; at most spool.MaxBytes32 on 32-bit ARM
	Retention Duration `yaml:"retention"` // forwarded history kept locally, default spool.DefaultRetention
	// UnsafeNoFsync skips fsync on commit so benchmarks can show what durability costs.
	// A power cut can then lose acknowledged readings: never set it on a station.
	UnsafeNoFsync bool `yaml:"unsafe_no_fsync"`
}

// Probe is one configured probe. Configured probes are the station's expected inventory.
type Probe struct {
	Name     string   `yaml:"name"`
	Kind     string   `yaml:"kind"`     // serial, coap, http
	Param    string   `yaml:"param"`    // name or alias; Load stores the canonical name
	Interval Duration `yaml:"interval"` // poll interval and expected reporting interval; default: the driver's DefaultInterval
	Device   string   `yaml:"device"`   // serial
	Baud     int      `yaml:"baud"`     // serial, default serialprobe.DefaultBaud
	URL      string   `yaml:"url"`      // coap, http
	Observe  bool     `yaml:"observe"`  // coap
	Timeout  Duration `yaml:"timeout"`  // 0: the probe driver's default
}

// Alerts tunes local alerting.
type Alerts struct {
	// RuleSets adds optional criteria beyond the station class: "bathing",
	// "drinking-reference".
	RuleSets []string `yaml:"rule_sets"`
	// Deadband is the hysteresis margin, as a fraction of the limit, a value must come back
	// inside before a threshold alert resolves (default alerting.DefaultDeadband; 0: none).
	Deadband float64 `yaml:"deadband"`
	// ClearCount is how many consecutive clean evaluations resolve an alert (default alerting.DefaultClearCount).
	ClearCount int `yaml:"clear_count"`
	// OfflineFactor times a sensor's expected interval without a reading makes it offline
	// (default state.DefaultOfflineFactor).
	OfflineFactor float64 `yaml:"offline_factor"`
	// BadCount consecutive bad readings make a sensor-fault alert (default alerting.DefaultBadCount).
	BadCount int `yaml:"bad_count"`
	// CalibrationDue is how old a serial probe's last calibration may get before a
	// "calibration due" alert (default calibration.DefaultDue).
	CalibrationDue Duration `yaml:"calibration_due"`
	Hooks          []Hook   `yaml:"hooks"`
}

// Hook runs a local command on alert transitions (a siren, an SMS modem script).
type Hook struct {
	Command []string `yaml:"command"`
	On      []string `yaml:"on"`      // opened, acknowledged, resolved, escalated; empty = all
	Timeout Duration `yaml:"timeout"` // default alerting.DefaultHookTimeout
}

// WQI tunes the live index.
type WQI struct {
	// Freshness is how old the latest value of a parameter may be and still feed the index,
	// per parameter (default state.DefaultFreshness for a parameter the file does not name).
	Freshness map[string]Duration `yaml:"freshness"`
	// FreshnessBySource overrides Freshness for the values of one source, per parameter
	// (default state.DefaultSourceFreshness: a lab's BOD and FC count for 31 days). A
	// source the file names replaces its default entry; {} overrides nothing.
	FreshnessBySource map[string]map[string]Duration `yaml:"freshness_by_source"`
	// HistoryInterval is the least time between two stored WQI history points, unless the
	// class changes (default pipeline.DefaultHistoryInterval).
	HistoryInterval Duration `yaml:"history_interval"`
}

// Validation tunes reading quality checks (see shared/validate).
type Validation struct {
	SpikeSigma    float64  `yaml:"spike_sigma"`
	FlatlineCount int      `yaml:"flatline_count"`
	MaxFuture     Duration `yaml:"max_future"`
	MaxPast       Duration `yaml:"max_past"`
}

// Clock says how the agent decides the wall clock can be trusted (a Pi has no RTC).
type Clock struct {
	// SyncCheck: "kernel" (default: the kernel's NTP status via adjtimex, set by chrony or
	// systemd-timesyncd), "file" (SyncFile exists, e.g. systemd-timesyncd's
	// /run/systemd/timesync/synchronized), "floor" (only the sanity floor), "none" (always
	// trust the clock).
	SyncCheck string `yaml:"sync_check"`
	SyncFile  string `yaml:"sync_file"`
	// MinTime is the sanity floor, a date: a clock before it is certainly wrong (default
	// clock.DefaultFloor).
	MinTime string `yaml:"min_time"`
}

// Warnings lists the risky settings the file allows explicitly (insecure: true), for
// `config check` and the log at start-up to say loudly.
func (c *Config) Warnings() []string {
	var w []string
	if c.MQTT.AllowAnonymous && c.MQTT.Insecure && (!loopbackListen(c.MQTT.Listen) ||
		c.MQTT.TLS != nil && !loopbackListen(c.MQTT.TLS.Listen)) {
		w = append(w, "mqtt: anonymous clients are allowed on a listener other than loopback (mqtt.insecure): anyone who reaches it can publish readings")
	}
	if u, err := url.Parse(c.Uplink.URL); err == nil && u.Scheme == "http" && c.Uplink.Insecure && !loopbackHost(u.Hostname()) {
		w = append(w, fmt.Sprintf("uplink: %s is plain http to another host (uplink.insecure): the token and the data cross the network in clear", c.Uplink.URL))
	}
	if c.Buffer.UnsafeNoFsync {
		w = append(w, "buffer.unsafe_no_fsync: a power cut can lose acknowledged readings")
	}
	return w
}

// loopbackListen reports whether a listen address binds loopback only ("" or
// "0.0.0.0" and other wildcards do not).
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && loopbackHost(host)
}

// loopbackHost reports whether host names this machine only: localhost or a loopback IP.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// MinDailyBytes is the smallest uplink.daily_bytes budget other than 0 (no limit).
const MinDailyBytes = 64 << 10

// Default is the configuration of a file that sets nothing: every default, taken from the
// component that owns it. Station, data_dir and the MQTT users have none.
func Default() Config {
	freshness := map[string]Duration{}
	for p, d := range state.DefaultFreshness() {
		freshness[string(p)] = Duration(d)
	}
	v := validate.Default()
	return Config{
		Station: Station{Timezone: "UTC", DOMethod: string(wqi.BensonKrause)},
		Log:     logging.Default(),
		MQTT: MQTT{
			Listen:         broker.DefaultListen,
			MaxPacketBytes: broker.DefaultMaxPacketSize,
			MaxClients:     broker.DefaultMaxClients,
		},
		Uplink: Uplink{
			Interval:       Duration(uplink.DefaultInterval),
			BatchMax:       uplink.DefaultBatchMax,
			LiveReadings:   uplink.DefaultLiveReadings,
			BackoffMax:     Duration(uplink.DefaultBackoffMax),
			ConnectTimeout: Duration(uplink.DefaultConnectTimeout),
			RequestTimeout: Duration(uplink.DefaultRequestTimeout),
			HealthInterval: Duration(uplink.DefaultHealthInterval),
		},
		Buffer: Buffer{
			MaxBytes:  ByteSize(min(spool.DefaultMaxBytes, spool.MaxBytesOn(strconv.IntSize))),
			Retention: Duration(spool.DefaultRetention),
		},
		Alerts: Alerts{
			RuleSets:       []string{},
			Deadband:       alerting.DefaultDeadband,
			ClearCount:     alerting.DefaultClearCount,
			OfflineFactor:  state.DefaultOfflineFactor,
			BadCount:       alerting.DefaultBadCount,
			CalibrationDue: Duration(calibration.DefaultDue),
		},
		WQI: WQI{Freshness: freshness, FreshnessBySource: defaultSourceFreshness(),
			HistoryInterval: Duration(pipeline.DefaultHistoryInterval)},
		Validation: Validation{
			SpikeSigma: v.SpikeSigma, FlatlineCount: v.FlatlineCount,
			MaxFuture: Duration(v.MaxFuture), MaxPast: Duration(v.MaxPast),
		},
		Sensors: Sensors{Max: state.DefaultMaxSensors, ForgetAfter: Duration(state.DefaultForgetAfter)},
		Clock: Clock{
			SyncCheck: string(clock.DefaultMode),
			SyncFile:  clock.DefaultSyncFile,
			MinTime:   clock.DefaultFloor.Format(time.DateOnly),
		},
	}
}

// defaultProbe is a probe of kind with nothing else set: its driver's defaults.
func defaultProbe(kind string) Probe {
	switch kind {
	case "serial":
		return Probe{Kind: kind, Interval: Duration(serialprobe.DefaultInterval), Baud: serialprobe.DefaultBaud}
	case "coap":
		return Probe{Kind: kind, Interval: Duration(coapprobe.DefaultInterval)}
	case "http":
		return Probe{Kind: kind, Interval: Duration(httpprobe.DefaultInterval)}
	}
	return Probe{Kind: kind}
}

// UnmarshalYAML decodes a probe onto the defaults of its kind. (The older form of the
// method keeps the decoder's strictness for the probe's own keys.)
func (p *Probe) UnmarshalYAML(unmarshal func(any) error) error {
	// The kind alone is read first, into a map that takes any key; the strict decode below
	// reports everything else.
	var keys map[string]any
	if err := unmarshal(&keys); err != nil {
		return err
	}
	kind, _ := keys["kind"].(string)
	*p = defaultProbe(kind)
	return unmarshal((*probe)(p))
}

// UnmarshalYAML decodes a hook onto the default timeout.
func (h *Hook) UnmarshalYAML(unmarshal func(any) error) error {
	*h = Hook{Timeout: Duration(alerting.DefaultHookTimeout)}
	return unmarshal((*hook)(h))
}

// UnmarshalYAML decodes a broker account onto the default role.
func (u *MQTTUser) UnmarshalYAML(unmarshal func(any) error) error {
	*u = MQTTUser{Role: broker.RoleDevice}
	return unmarshal((*mqttUser)(u))
}

// The list items' fields without their UnmarshalYAML methods, for the strict decode that
// those methods finish with. Unknown keys are reported against these names.
type (
	probe    Probe
	hook     Hook
	mqttUser MQTTUser
)

// Load reads, strictly decodes, completes and validates the file at path.
func Load(path string) (*Config, error) {
	return strictyaml.Load[Config](path, Default)
}

// Parse decodes, completes and validates a configuration document.
func Parse(data []byte) (*Config, error) {
	return strictyaml.Parse[Config](data, Default)
}

// Complete derives the admin socket from data_dir and stores canonical spellings.
// Consumers convert these strings straight to their typed forms; a value that does not
// parse is left as written for Validate to report.
func (c *Config) Complete() {
	if c.AdminSocket == "" && c.DataDir != "" {
		c.AdminSocket = filepath.Join(c.DataDir, "admin.sock")
	}
	if class, err := criteria.ParseClass(c.Station.Class); err == nil {
		c.Station.Class = string(class)
	}
	if m, err := wqi.ParseDOMethod(c.Station.DOMethod); err == nil {
		c.Station.DOMethod = string(m)
	}
	for i := range c.Probes {
		if param, err := telemetry.ParseParam(c.Probes[i].Param); err == nil {
			c.Probes[i].Param = string(param)
		}
	}
}

var bcryptPattern = regexp.MustCompile(`^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$`)

// intSize is the width of int on this system; tests of the 32-bit limits change it.
var intSize = strconv.IntSize

// maxPacketBytes is the largest MQTT packet the protocol can carry (its remaining length
// tops out just under 256 MiB).
const maxPacketBytes = 268435455

// Validate reports every problem in the configuration, joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if !telemetry.ValidStationID(c.Station.ID) {
		bad("station.id: %q must be %s", c.Station.ID, telemetry.StationIDRule)
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
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}

	if _, _, err := net.SplitHostPort(c.MQTT.Listen); err != nil {
		bad("mqtt.listen: %q is not host:port", c.MQTT.Listen)
	}
	if c.MQTT.AllowAnonymous && !c.MQTT.Insecure && !loopbackListen(c.MQTT.Listen) {
		bad("mqtt.allow_anonymous: anyone who reaches %s could publish readings; listen on 127.0.0.1, add mqtt.users, or set mqtt.insecure: true if this is meant", c.MQTT.Listen)
	}
	if c.MQTT.AllowAnonymous && c.MQTT.TLS != nil && !c.MQTT.Insecure && !loopbackListen(c.MQTT.TLS.Listen) {
		bad("mqtt.allow_anonymous: anyone who reaches %s could publish readings; add mqtt.users, or set mqtt.insecure: true if this is meant", c.MQTT.TLS.Listen)
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
		case broker.RoleDevice, broker.RoleViewer, broker.RoleAdmin:
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
	} else if c.MQTT.MaxPacketBytes > maxPacketBytes {
		bad("mqtt.max_packet_bytes: %d is above MQTT's maximum, %d", c.MQTT.MaxPacketBytes, maxPacketBytes)
	}
	if c.MQTT.MaxClients < 1 {
		bad("mqtt.max_clients: %d must be at least 1", c.MQTT.MaxClients)
	}

	if c.Uplink.URL != "" {
		u, err := url.Parse(c.Uplink.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("uplink.url: %q must be an http:// or https:// URL", c.Uplink.URL)
		}
		if c.Uplink.Token == "" && c.Uplink.TokenFile == "" && c.Uplink.CertFile == "" {
			bad("uplink: token, token_file or a client certificate (cert_file, key_file) is required with a url")
		}
		if err == nil && u.Scheme == "http" && u.Host != "" && !c.Uplink.Insecure && !loopbackHost(u.Hostname()) {
			bad("uplink.url: %q sends the station's token and data in clear over the network; use https://, or set uplink.insecure: true if this is meant", c.Uplink.URL)
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
	if c.Uplink.Interval.Std() < 100*time.Millisecond {
		bad("uplink.interval: %s is shorter than 100ms", c.Uplink.Interval)
	}
	if c.Uplink.BatchMax < 1 || c.Uplink.BatchMax > wire.MaxRecords {
		bad("uplink.batch_max: %d must be 1..%d (the most records the cloud takes in one batch)", c.Uplink.BatchMax, wire.MaxRecords)
	}
	if c.Uplink.LiveReadings < 1 || c.Uplink.LiveReadings > wire.MaxRecords {
		bad("uplink.live_readings: %d must be 1..%d", c.Uplink.LiveReadings, wire.MaxRecords)
	}
	if c.Uplink.BackoffMax.Std() < time.Second || c.Uplink.BackoffMax.Std() > 24*time.Hour {
		bad("uplink.backoff_max: %s must be within 1s..24h", c.Uplink.BackoffMax)
	}
	if c.Uplink.DailyBytes != 0 && c.Uplink.DailyBytes < MinDailyBytes {
		bad("uplink.daily_bytes: %d is below %d (64 KiB); 0 means no limit", c.Uplink.DailyBytes, MinDailyBytes)
	}
	if c.Uplink.ConnectTimeout.Std() < 100*time.Millisecond {
		bad("uplink.connect_timeout: %s is shorter than 100ms", c.Uplink.ConnectTimeout)
	}
	if c.Uplink.RequestTimeout.Std() < time.Second {
		bad("uplink.request_timeout: %s is shorter than 1s", c.Uplink.RequestTimeout)
	}
	if c.Uplink.HealthInterval.Std() < time.Second {
		bad("uplink.health_interval: %s is shorter than 1s", c.Uplink.HealthInterval)
	}

	if c.Buffer.MaxBytes < spool.MinMaxBytes {
		bad("buffer.max_bytes: %d is below the 1 MiB minimum", c.Buffer.MaxBytes)
	}
	if limit := spool.MaxBytesOn(intSize); int64(c.Buffer.MaxBytes) > limit {
		bad("buffer.max_bytes: %d is above %d, the most a 32-bit ARM gateway can map", c.Buffer.MaxBytes, limit)
	}
	if c.Buffer.Retention.Std() < time.Hour {
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
		// A probe of an unknown kind has no default interval; its kind is the problem.
		if known := slices.Contains([]string{"serial", "coap", "http"}, p.Kind); known && p.Interval.Std() < 100*time.Millisecond {
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
	if c.Alerts.CalibrationDue.Std() < time.Hour {
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
	c.WQI.validateBySource(bad)
	if c.WQI.HistoryInterval <= 0 {
		bad("wqi.history_interval: %s must be positive", c.WQI.HistoryInterval)
	}

	if !(c.Validation.SpikeSigma > 0) || math.IsInf(c.Validation.SpikeSigma, 1) {
		bad("validation.spike_sigma: %v must be a positive number", c.Validation.SpikeSigma)
	}
	if c.Validation.FlatlineCount < 1 {
		bad("validation.flatline_count: %d must be positive", c.Validation.FlatlineCount)
	}
	if c.Validation.MaxFuture <= 0 {
		bad("validation.max_future: %s must be positive", c.Validation.MaxFuture)
	}
	if c.Validation.MaxPast <= 0 {
		bad("validation.max_past: %s must be positive", c.Validation.MaxPast)
	}

	switch clock.Mode(c.Clock.SyncCheck) {
	case clock.Kernel, clock.File, clock.Floor, clock.None:
	default:
		bad("clock.sync_check: %q must be kernel, file, floor or none", c.Clock.SyncCheck)
	}
	if _, err := time.Parse(time.DateOnly, c.Clock.MinTime); err != nil {
		bad("clock.min_time: %q must be a date like 2025-01-01", c.Clock.MinTime)
	}
	if c.Sensors.Max < max(1, len(c.Probes)) || c.Sensors.Max > 100000 {
		bad("sensors.max: %d must be at least 1 and the %d configured probes, and at most 100000", c.Sensors.Max, len(c.Probes))
	}
	if c.Sensors.ForgetAfter.Std() < time.Hour {
		bad("sensors.forget_after: %s is shorter than 1h", c.Sensors.ForgetAfter)
	}
	if err := c.Metrics.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

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
		return d.Std()
	}
	return state.DefaultFreshness()[p]
}

// defaultSourceFreshness is state.DefaultSourceFreshness as the file spells it.
func defaultSourceFreshness() map[string]map[string]Duration {
	out := map[string]map[string]Duration{}
	for src, params := range state.DefaultSourceFreshness {
		m := map[string]Duration{}
		for p, d := range params {
			m[string(p)] = Duration(d)
		}
		out[string(src)] = m
	}
	return out
}

func (w *WQI) validateBySource(bad func(string, ...any)) {
	for _, src := range slices.Sorted(maps.Keys(w.FreshnessBySource)) {
		if !telemetry.Source(src).Valid() {
			bad("wqi.freshness_by_source: %q is not a source (sensor, manual, api, satellite, model)", src)
			continue
		}
		params := w.FreshnessBySource[src]
		for _, name := range slices.Sorted(maps.Keys(params)) {
			p, err := telemetry.ParseParam(name)
			switch {
			case err != nil:
				bad("wqi.freshness_by_source.%s: %q is not a known parameter", src, name)
			case string(p) != name:
				bad("wqi.freshness_by_source.%s: use the canonical name %q, not %q", src, p, name)
			case params[name] <= 0:
				bad("wqi.freshness_by_source.%s.%s: must be positive", src, name)
			}
		}
	}
}

// SourceFreshness returns the per-source freshness windows (state.Options.SourceFreshness):
// never nil, so that an empty map in the file overrides nothing.
func (c *Config) SourceFreshness() map[telemetry.Source]map[telemetry.Param]time.Duration {
	out := map[telemetry.Source]map[telemetry.Param]time.Duration{}
	for src, params := range c.WQI.FreshnessBySource {
		m := map[telemetry.Param]time.Duration{}
		for p, d := range params {
			m[telemetry.Param(p)] = d.Std()
		}
		out[telemetry.Source(src)] = m
	}
	return out
}

// MinTime returns the clock sanity floor.
func (c *Config) MinTime() time.Time {
	t, err := time.Parse(time.DateOnly, c.Clock.MinTime)
	if err != nil {
		return clock.DefaultFloor
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

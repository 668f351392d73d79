package config_test

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/coapprobe"
	"github.com/purehealth/purehealth/agent/internal/config"
	"github.com/purehealth/purehealth/agent/internal/httpprobe"
	"github.com/purehealth/purehealth/agent/internal/serialprobe"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/internal/logging"
	"github.com/purehealth/purehealth/internal/strictyaml"
	"github.com/purehealth/purehealth/shared/criteria"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wqi"
)

var update = flag.Bool("update", false, "rewrite the golden error files in testdata/invalid")

// d converts a duration for the expected configurations.
func d(v time.Duration) config.Duration { return config.Duration(v) }

const (
	hashGW        = "$2a$04$BE5OsmVYAAol75WadfhBQeI8GxVcxLDI1fQP.UbCFz7W6JAiBy906"
	hashDashboard = "$2a$04$b0jFL4uK2JXaxoNRyrtskuVlCSQxdFDy7rRr9dbFhestDVjZq4ALe"
)

func TestLoadValid(t *testing.T) {
	// full.yaml sets every key to a value other than its default.
	full := config.Config{
		Station: config.Station{
			ID: "MH-PUNE-001", Name: "Mula-Mutha at Sangam", Timezone: "Asia/Kolkata",
			Class: "B", ElevationM: 560, DOMethod: "mpcb", Lat: 18.5286, Lon: 73.8567,
		},
		DataDir:     "/data/agent",
		AdminSocket: "/run/ph-agent/admin.sock",
		Log:         logging.Config{Level: "debug", Format: "json"},
		MQTT: config.MQTT{
			Listen: "0.0.0.0:1883",
			Users: []config.MQTTUser{
				{Name: "probe-gw", PasswordHash: hashGW, Role: "device", Publish: []string{"purehealth/MH-PUNE-001/#"}},
				{Name: "dashboard", PasswordHash: hashDashboard, Role: "viewer", Subscribe: []string{"purehealth/MH-PUNE-001/wqi", "purehealth/MH-PUNE-001/alerts"}},
			},
			TLS: &config.TLS{
				Listen: "0.0.0.0:8883", CertFile: "/data/tls/cert.pem",
				KeyFile: "/data/tls/key.pem", ClientCA: "/data/tls/ca.pem",
			},
			MaxPacketBytes: 131072,
			MaxClients:     50,
		},
		Uplink: config.Uplink{
			URL: "https://cloud.example.org", TokenFile: "/data/uplink.token",
			Interval: d(5 * time.Second), BatchMax: 1000, CAFile: "/data/tls/cloud-ca.pem",
			CertFile: "/data/tls/station.pem", KeyFile: "/data/tls/station-key.pem",
			LiveReadings: 50, BackoffMax: d(15 * time.Minute), DailyBytes: 20 << 20,
			ConnectTimeout: d(5 * time.Second), RequestTimeout: d(time.Minute),
			HealthInterval: d(2 * time.Minute),
		},
		Buffer: config.Buffer{MaxBytes: 128 << 20, Retention: d(7 * 24 * time.Hour)},
		// The probes' LAN names of the documented example: parsed here, never resolved or dialled.
		Probes: []config.Probe{
			{Name: "ph-1", Kind: "serial", Param: "ph", Interval: d(30 * time.Second), Device: "/dev/ttyUSB0", Baud: 19200, Timeout: d(2 * time.Second)},
			{Name: "do-1", Kind: "coap", Param: "do", Interval: d(2 * time.Minute), URL: "coap://sonde.local:5683/do", Observe: true},
			{Name: "turb-1", Kind: "http", Param: "turbidity", Interval: d(time.Minute), URL: "http://turbidity.local/turbidity", Timeout: d(5 * time.Second)},
		},
		Alerts: config.Alerts{
			RuleSets: []string{"bathing", "drinking-reference"},
			Deadband: 0.05, ClearCount: 5, OfflineFactor: 4, BadCount: 2, CalibrationDue: d(14 * 24 * time.Hour),
			Hooks: []config.Hook{
				{Command: []string{"/usr/local/bin/siren", "--on"}, On: []string{"opened", "escalated"}, Timeout: d(3 * time.Second)},
				{Command: []string{"/usr/local/bin/sms"}, Timeout: d(alerting.DefaultHookTimeout)},
			},
		},
		WQI: config.WQI{
			// A parameter the file does not name keeps its default window.
			Freshness: map[string]config.Duration{"ph": d(30 * time.Minute), "bod": d(72 * time.Hour),
				"do": d(2 * time.Hour), "temp": d(2 * time.Hour), "fc": d(48 * time.Hour)},
			// A source the file names replaces its default entry (manual fc is gone).
			FreshnessBySource: map[string]map[string]config.Duration{
				"manual": {"bod": d(240 * time.Hour)}, "api": {"fc": d(2160 * time.Hour), "bod": d(2160 * time.Hour)}},
			HistoryInterval: d(5 * time.Minute),
		},
		Validation: config.Validation{SpikeSigma: 8, FlatlineCount: 20, MaxFuture: d(10 * time.Minute), MaxPast: d(48 * time.Hour)},
		Clock:      config.Clock{SyncCheck: "file", SyncFile: "/run/chrony.synced", MinTime: "2025-06-01"},
		Sensors:    config.Sensors{Max: 64, ForgetAfter: config.Duration(72 * time.Hour)},
		Metrics:    config.Metrics{Listen: "127.0.0.1:9464"},
		Source:     strictyaml.Source{Path: filepath.Join("testdata", "valid", "full.yaml")},
	}

	// The others set a few keys: everything else is Default.
	minimal := config.Default()
	minimal.Station.ID, minimal.Station.Class = "MH-PUNE-001", "B"
	minimal.DataDir, minimal.AdminSocket = "./data/agent", "data/agent/admin.sock"
	minimal.MQTT.AllowAnonymous = true
	minimal.Path = filepath.Join("testdata", "valid", "minimal.yaml")

	defaults := config.Default()
	defaults.Station.ID, defaults.Station.Class = "st_2", "C"
	defaults.DataDir, defaults.AdminSocket = "/data", "/data/admin.sock"
	defaults.MQTT.Users = []config.MQTTUser{
		{Name: "gw", PasswordHash: "$2y$04$BE5OsmVYAAol75WadfhBQeI8GxVcxLDI1fQP.UbCFz7W6JAiBy906", Role: "device"},
	}
	defaults.Probes = []config.Probe{
		// Only a serial probe gets a default baud rate.
		{Name: "ph-1", Kind: "serial", Param: "ph", Interval: d(serialprobe.DefaultInterval), Device: "/dev/ttyAMA0", Baud: serialprobe.DefaultBaud},
		{Name: "do-1", Kind: "coap", Param: "do", Interval: d(coapprobe.DefaultInterval), URL: "coap://probe.local/do"},
	}
	defaults.Alerts.Hooks = []config.Hook{{Command: []string{"logger", "alert"}, Timeout: d(alerting.DefaultHookTimeout)}}
	defaults.Path = filepath.Join("testdata", "valid", "defaults.yaml")

	// Consumers convert these fields with a plain type conversion, so Load must store the
	// canonical spelling whatever the file says.
	canonical := config.Default()
	canonical.Station = config.Station{ID: "st-3", Class: "D", Timezone: "UTC", DOMethod: "mpcb"}
	canonical.DataDir, canonical.AdminSocket = "/data", "/data/admin.sock"
	canonical.MQTT.AllowAnonymous = true
	canonical.Probes = []config.Probe{
		{Name: "o2", Kind: "http", Param: "do", Interval: d(httpprobe.DefaultInterval), URL: "http://127.0.0.1/o2"},
		{Name: "t", Kind: "http", Param: "temp", Interval: d(httpprobe.DefaultInterval), URL: "http://127.0.0.1/t"},
	}
	canonical.Path = filepath.Join("testdata", "valid", "canonical.yaml")

	for _, want := range []config.Config{full, minimal, defaults, canonical} {
		t.Run(filepath.Base(want.Path), func(t *testing.T) {
			cfg, err := config.Load(want.Path)
			require.NoError(t, err)
			assert.Equal(t, want, *cfg)
		})
	}
}

// TestLoadValidFiles loads every valid example, including the design document's, so an
// example that stops loading is caught even without an expected struct.
func TestLoadValidFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "valid", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			cfg, err := config.Load(file)
			require.NoError(t, err)
			assert.NoError(t, cfg.Validate(), "a loaded config must validate again")
			assert.Equal(t, file, cfg.Path)

			// The canonical fields convert directly to their typed forms.
			_, err = criteria.ParseClass(cfg.Station.Class)
			assert.NoError(t, err)
			assert.Equal(t, cfg.Station.Class, strings.ToUpper(cfg.Station.Class))
			m, err := wqi.ParseDOMethod(cfg.Station.DOMethod)
			assert.NoError(t, err)
			assert.Equal(t, string(m), cfg.Station.DOMethod)
			for _, p := range cfg.Probes {
				assert.True(t, telemetry.Param(p.Param).Valid(), "probe %s param %q is not canonical", p.Name, p.Param)
			}
		})
	}
}

// TestLoadInvalid checks each broken file against explicit expectations and a golden copy
// of the whole message (go test -run TestLoadInvalid -update rewrites the golden files).
func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		file string
		// want are fragments the message must contain; lines is the number of problems.
		want  []string
		lines int
	}{
		{file: "empty.yaml", want: []string{"config is empty"}, lines: 1},
		{file: "comments-only.yaml", want: []string{"config is empty"}, lines: 1},
		{file: "unknown-key-top.yaml", want: []string{"line 3", "field datadir not found"}, lines: 2},
		{file: "unknown-key-nested.yaml", want: []string{"line 4", "field elevation not found", "config.Station"}, lines: 2},
		{file: "unknown-key-probe.yaml", want: []string{"line 12", "field baudrate not found", "config.probe"}, lines: 2},
		{file: "two-documents.yaml", want: []string{"line 4", "second YAML document"}, lines: 1},
		{file: "second-document-broken.yaml", want: []string{"second YAML document", "line 5"}, lines: 1},
		{file: "not-a-mapping.yaml", want: []string{"line 1", "cannot unmarshal !!seq"}, lines: 2},
		{file: "duplicate-key.yaml", want: []string{"line 4", `"data_dir" already defined at line 2`}, lines: 2},
		{file: "bare-int-duration.yaml", want: []string{"line 4", `"60" is not a duration`}, lines: 1},
		{file: "six-mistakes.yaml", want: []string{
			`station.timezone: "Mars/Olympus"`, `station.class: "Z"`, `uplink.interval: 10ms`,
			`probes[1].param: "salinity"`, `alerts.deadband: 0.9`, `clock.sync_check: "ntp"`,
		}, lines: 6},
		{file: "station.yaml", want: []string{
			`station.id: "MH/PUNE/001"`, `station.timezone: "Asia/Pune"`, `station.class: "F"`,
			`station.do_method: "winkler"`, "station.elevation_m: NaN", "station.lat: 91", "station.lon: -181",
		}, lines: 7},
		{file: "insecure.yaml", want: []string{
			`mqtt.allow_anonymous: anyone who reaches 0.0.0.0:1883 could publish readings`,
			`uplink.url: "http://cloud.example.org:8080" sends the station's token and data in clear`,
			"sensors.max: 0 must be at least 1", "sensors.forget_after: 10m0s is shorter than 1h",
		}, lines: 4},
		{file: "station-missing.yaml", want: []string{`station.id: ""`, `station.class: ""`, "data_dir: required"}, lines: 3},
		{file: "bcrypt.yaml", want: []string{
			"mqtt.users[0].password_hash", "mqtt.users[1].password_hash", "mqtt.users[2].password_hash",
			"mqtt.users[3].password_hash", `mqtt.users[4].role: "root"`, `mqtt.users[5].name: "good" is listed twice`,
			"mqtt.users[6].name: required",
		}, lines: 7},
		{file: "mqtt.yaml", want: []string{
			`mqtt.listen: "1883"`, "mqtt: no users and allow_anonymous is false", `mqtt.tls.listen: "0.0.0.0"`,
			"mqtt.tls.cert_file: required", "mqtt.tls.key_file: required", "mqtt.max_packet_bytes: 100",
			"mqtt.max_clients: -1",
		}, lines: 7},
		{file: "probes.yaml", want: []string{
			`probes[0].kind: "modbus"`, "probes[1].device: required", "probes[1].baud: -9600",
			`probes[2].url: "http://probe.local/do" must be a coap://`, `probes[3].url: "coap:///do"`,
			`probes[4].url: "coap://probe.local/t" must be an http://`, `probes[5].name: "e" is listed twice`,
			"probes[5].interval: 10ms", "probes[5].timeout: -1s", "probes[6].name: required",
			`probes[6].param: ""`,
		}, lines: 11},
		{file: "freshness.yaml", want: []string{
			`canonical name "ph", not "PH"`, `canonical name "do", not "dissolved_oxygen"`,
			`wqi.freshness: "salinity"`, "wqi.freshness.fc: must be positive",
			"wqi.freshness.bod: must be positive", "wqi.history_interval: -1m0s must be positive",
			`wqi.freshness_by_source: "lab" is not a source`, `wqi.freshness_by_source.manual: use the canonical name "fc", not "FC"`,
			`wqi.freshness_by_source.manual.bod: must be positive`, `wqi.freshness_by_source.api: "salinity" is not a known parameter`,
		}, lines: 10},
		{file: "uplink.yaml", want: []string{
			`uplink.url: "ftp://cloud.example.org"`, "uplink: give token or token_file, not both",
			"uplink.batch_max: 100000",
		}, lines: 3},
		{file: "uplink-no-token.yaml", want: []string{"uplink: token, token_file or a client certificate"}, lines: 1},
		{file: "uplink-options.yaml", want: []string{
			`uplink.ca_file: set, but the url "http://cloud.example.org"`, "uplink.cert_file: set",
			"uplink: cert_file and key_file go together", "uplink.live_readings: -5",
			"uplink.backoff_max: 500ms", "uplink.daily_bytes: 1000", "uplink.connect_timeout: 10ms",
			"uplink.request_timeout: 200ms",
		}, lines: 8},
		{file: "buffer-log-socket.yaml", want: []string{
			"admin_socket: path", `log.level: "verbose"`, `log.format: "xml"`,
			"buffer.max_bytes: 1000", "buffer.retention: 30m0s",
		}, lines: 5},
		{file: "alerts.yaml", want: []string{
			`alerts.rule_sets: "swimming"`, "alerts.deadband: -0.1", "alerts.clear_count: -1",
			"alerts.bad_count: -2", "alerts.offline_factor: 0.5", "alerts.hooks[0].command: required",
			`alerts.hooks[1].on: "closed"`, "alerts.hooks[1].timeout: must be positive",
		}, lines: 8},
		{file: "clock-validation.yaml", want: []string{
			`clock.sync_check: "ntp"`, `clock.min_time: "01/01/2025"`, "validation.spike_sigma: -1 must be a positive number",
			"validation.flatline_count: -3 must be positive", "validation.max_future: -1m0s must be positive",
			"validation.max_past: -1h0m0s must be positive",
		}, lines: 6},
		{file: "not-finite.yaml", want: []string{
			"station.lat: NaN", "station.lon: +Inf", "alerts.deadband: NaN", "alerts.offline_factor: +Inf",
			"validation.spike_sigma: NaN",
		}, lines: 5},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "invalid", tt.file)
			cfg, err := config.Load(path)
			require.Error(t, err)
			assert.Nil(t, cfg)

			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, path+": "), "the message should start with the file name: %s", msg)
			for _, w := range tt.want {
				assert.Contains(t, msg, w)
			}
			assert.Len(t, strings.Split(msg, "\n"), tt.lines, "problems reported:\n%s", msg)

			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(msg+"\n"), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "no golden file: run go test -run TestLoadInvalid -update")
			assert.Equal(t, string(want), msg+"\n")
		})
	}

	// Every broken example must be in the table, so none sits untested.
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	require.NoError(t, err)
	for _, f := range files {
		assert.True(t, covered[filepath.Base(f)], "%s has no case in TestLoadInvalid", f)
	}
}

// TestValidateJoinsAll checks that every problem is its own joined error naming its key
// path, not one message for the first problem.
func TestValidateJoinsAll(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "invalid", "six-mistakes.yaml"))
	require.NoError(t, err)
	_, err = config.Parse(data)
	require.Error(t, err)

	joined, ok := err.(interface{ Unwrap() []error })
	require.True(t, ok, "Parse should return the joined Validate error, got %T", err)
	var paths []string
	for _, e := range joined.Unwrap() {
		path, _, found := strings.Cut(e.Error(), ":")
		require.True(t, found, "problem without a key path: %s", e)
		paths = append(paths, path)
	}
	assert.Equal(t, []string{
		"station.timezone", "station.class", "uplink.interval", "probes[1].param",
		"alerts.deadband", "clock.sync_check",
	}, paths)
}

func TestStrictDecodeNamesLineAndKey(t *testing.T) {
	const base = "station: {id: S1, class: B}\ndata_dir: /d\nmqtt: {allow_anonymous: true}\n"
	tests := []struct {
		name string
		doc  string
		line string
		key  string
	}{
		{"top level", base + "colour: blue\n", "line 4", "colour"},
		{"nested mapping", base + "buffer:\n  max_bytes: 2097152\n  max_size: 3\n", "line 6", "max_size"},
		{"probe list item", base + "probes:\n  - name: a\n    kind: http\n    url: http://h/\n    param: ph\n    oberve: true\n", "line 9", "oberve"},
		{"hook list item", base + "alerts:\n  hooks:\n    - command: [x]\n      when: [opened]\n", "line 7", "when"},
		{"tls pointer", base + "uplink: {}\nmqtt_tls: {}\n", "line 5", "mqtt_tls"},
		{"user list item", "station: {id: S1, class: B}\ndata_dir: /d\nmqtt:\n  users:\n    - name: u\n      password: x\n", "line 6", "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.doc))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.line+": field "+tt.key+" not found")
		})
	}
}

func TestParseSecondDocument(t *testing.T) {
	const doc = "station: {id: S1, class: B}\ndata_dir: /d\nmqtt: {allow_anonymous: true}\n"
	tests := []struct {
		name    string
		doc     string
		wantErr string
	}{
		{"leading separator is one document", "---\n" + doc, ""},
		{"document end marker", doc + "...\n", ""},
		{"second document", doc + "---\nstation: {id: S2}\n", "line 4: a second YAML document is not allowed"},
		{"empty second document", doc + "---\n", "line 4: a second YAML document is not allowed"},
		{"broken second document", doc + "---\n{\n", "a second YAML document is not allowed: yaml: line 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.doc))
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestParseEmpty(t *testing.T) {
	for _, doc := range []string{"", "\n\n", "# just a comment\n"} {
		_, err := config.Parse([]byte(doc))
		require.Error(t, err, "document %q", doc)
		assert.Equal(t, "config is empty", err.Error())
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "absent.yaml"))
	require.Error(t, err)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, err.Error(), "read config")
}

// base returns a valid configuration that a test then breaks one field at a time.
func base(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(filepath.Join("testdata", "valid", "full.yaml"))
	require.NoError(t, err)
	return cfg
}

func TestValidateBcrypt(t *testing.T) {
	tests := []struct {
		name string
		hash string
		ok   bool
	}{
		{"2a", hashGW, true},
		{"2b", "$2b$" + hashGW[4:], true},
		{"2y", "$2y$" + hashGW[4:], true},
		{"cost 31", "$2a$31$" + hashGW[7:], true},
		{"cost 03 is below bcrypt's minimum", "$2a$03$" + hashGW[7:], false},
		{"cost 32 is above bcrypt's maximum", "$2a$32$" + hashGW[7:], false},
		{"2x is not produced by any tool we support", "$2x$" + hashGW[4:], false},
		{"one character short", hashGW[:59], false},
		{"one character long", hashGW + "a", false},
		{"character outside the bcrypt alphabet", hashGW[:59] + "!", false},
		{"plain text", "hunter2", false},
		{"empty", "", false},
		{"sha512-crypt", "$6$salt$" + strings.Repeat("a", 86), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base(t)
			cfg.MQTT.Users[0].PasswordHash = tt.hash
			err := cfg.Validate()
			if tt.ok {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "mqtt.users[0].password_hash: not a bcrypt hash")
		})
	}
}

func TestValidateProbeKinds(t *testing.T) {
	tests := []struct {
		name    string
		probe   config.Probe
		wantErr string // "" = valid
	}{
		{"serial", config.Probe{Kind: "serial", Device: "/dev/serial/by-id/usb-Atlas", Baud: 9600}, ""},
		{"serial without device", config.Probe{Kind: "serial", Baud: 9600}, "probes[0].device: required for a serial probe"},
		{"serial with zero baud", config.Probe{Kind: "serial", Device: "/dev/ttyUSB0"}, "probes[0].baud: 0 must be positive"},
		{"coap", config.Probe{Kind: "coap", URL: "coap://probe.local:5683/ph"}, ""},
		{"coaps is refused", config.Probe{Kind: "coap", URL: "coaps://probe.local/ph", Observe: true}, `probes[0].url: "coaps://probe.local/ph": coaps (CoAP over DTLS) is not supported; use coap://`},
		{"coap with an http url", config.Probe{Kind: "coap", URL: "http://probe.local/ph"}, `probes[0].url: "http://probe.local/ph" must be a coap:// URL`},
		{"coap without a url", config.Probe{Kind: "coap"}, `probes[0].url: "" must be a coap:// URL`},
		{"coap without a host", config.Probe{Kind: "coap", URL: "coap:/ph"}, `probes[0].url: "coap:/ph" must be a coap:// URL`},
		{"http", config.Probe{Kind: "http", URL: "http://probe.local/ph"}, ""},
		{"https", config.Probe{Kind: "http", URL: "https://probe.local/ph"}, ""},
		{"http with a coap url", config.Probe{Kind: "http", URL: "coap://probe.local/ph"}, `probes[0].url: "coap://probe.local/ph" must be an http:// URL`},
		{"http with a broken url", config.Probe{Kind: "http", URL: "http://[::1"}, `probes[0].url: "http://[::1" must be an http:// URL`},
		{"upper-case kind", config.Probe{Kind: "HTTP", URL: "http://probe.local/ph"}, `probes[0].kind: "HTTP" must be serial, coap or http`},
		{"no kind", config.Probe{}, `probes[0].kind: "" must be serial, coap or http`},
		{"negative timeout", config.Probe{Kind: "http", URL: "http://h/", Timeout: d(-time.Second)}, "probes[0].timeout: -1s must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base(t)
			p := tt.probe
			p.Name, p.Param, p.Interval = "p", "ph", d(time.Minute)
			cfg.Probes = []config.Probe{p}
			err := cfg.Validate()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tt.wantErr, err.Error())
		})
	}
}

func TestValidateStation(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*config.Station)
		wantErr string
	}{
		{"valid", func(*config.Station) {}, ""},
		{"every class", func(s *config.Station) { s.Class = "E" }, ""},
		{"class unknown", func(s *config.Station) { s.Class = "F" }, `station.class: "F" must be one of A, B, C, D, E`},
		{"class empty", func(s *config.Station) { s.Class = "" }, `station.class: "" must be one of A, B, C, D, E`},
		{"timezone UTC", func(s *config.Station) { s.Timezone = "UTC" }, ""},
		{"timezone unknown", func(s *config.Station) { s.Timezone = "India/Pune" }, `station.timezone: "India/Pune" is not a known time zone`},
		{"timezone path escape", func(s *config.Station) { s.Timezone = "../../etc/passwd" }, `station.timezone: "../../etc/passwd" is not a known time zone`},
		{"id longest", func(s *config.Station) { s.ID = strings.Repeat("a", 64) }, ""},
		{"id too long", func(s *config.Station) { s.ID = strings.Repeat("a", 65) }, "station.id: "},
		{"id empty", func(s *config.Station) { s.ID = "" }, `station.id: "" must be 1–64 letters, digits, '-' or '_'`},
		{"id with an MQTT wildcard", func(s *config.Station) { s.ID = "st+1" }, `station.id: "st+1" must be`},
		{"id with a topic separator", func(s *config.Station) { s.ID = "st/1" }, `station.id: "st/1" must be`},
		{"id with a space", func(s *config.Station) { s.ID = "st 1" }, `station.id: "st 1" must be`},
		{"elevation high", func(s *config.Station) { s.ElevationM = 6001 }, "station.elevation_m: 6001 m is outside -500..6000"},
		{"lat edge", func(s *config.Station) { s.Lat, s.Lon = -90, 180 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base(t)
			tt.edit(&cfg.Station)
			err := cfg.Validate()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), tt.wantErr), "want prefix %q, got %q", tt.wantErr, err)
		})
	}
}

// TestBufferLimitOn32Bit: the configuration takes on a 32-bit gateway exactly the bound
// the buffer itself keeps there (spool.MaxBytes32, 512 MiB), no less.
func TestBufferLimitOn32Bit(t *testing.T) {
	for _, bits := range []int{32, 64} {
		t.Run(strconv.Itoa(bits), func(t *testing.T) {
			config.SetIntSize(t, bits)
			cfg := base(t)
			cfg.Buffer.MaxBytes = spool.MaxBytes32
			assert.NoError(t, cfg.Validate(), "the buffer's own 32-bit bound is valid everywhere")

			cfg.Buffer.MaxBytes = spool.MaxBytes32 + 1
			err := cfg.Validate()
			if bits == 64 {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, "buffer.max_bytes: 536870913 is above 536870912, the most a 32-bit ARM gateway can map", err.Error())
		})
	}
	assert.Equal(t, int64(spool.MaxBytes32), int64(config.Default().Buffer.MaxBytes),
		"the default buffer fits a 32-bit gateway too")
}

func TestFreshness(t *testing.T) {
	cfg := base(t) // ph: 30m, bod: 72h
	tests := []struct {
		param telemetry.Param
		want  time.Duration
	}{
		{telemetry.PH, 30 * time.Minute}, // configured
		{telemetry.BOD, 72 * time.Hour},  // configured
		{telemetry.DO, 2 * time.Hour},    // default
		{telemetry.FC, 48 * time.Hour},   // default for a rarely sampled parameter
		{telemetry.Temp, 2 * time.Hour},  // default
		{telemetry.Turbidity, 0},         // not an input of the index
	}
	for _, tt := range tests {
		t.Run(string(tt.param), func(t *testing.T) {
			assert.Equal(t, tt.want, cfg.Freshness(tt.param))
		})
	}
}

func TestMinTime(t *testing.T) {
	tests := []struct {
		minTime string
		want    time.Time
	}{
		{"2025-06-01", time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)},
		{"", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},        // an unvalidated zero Config
		{"garbage", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}, // an unvalidated Config
	}
	for _, tt := range tests {
		t.Run(tt.minTime, func(t *testing.T) {
			cfg := config.Config{Clock: config.Clock{MinTime: tt.minTime}}
			assert.True(t, tt.want.Equal(cfg.MinTime()), "want %s, got %s", tt.want, cfg.MinTime())
		})
	}
}

func TestLocation(t *testing.T) {
	cfg := base(t)
	assert.Equal(t, "Asia/Kolkata", cfg.Location().String())
	cfg.Station.Timezone = "Nowhere/Special"
	assert.Equal(t, time.UTC, cfg.Location(), "an unknown zone on an unvalidated Config falls back to UTC")
}

func TestUplinkToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}
	tests := []struct {
		name      string
		uplink    config.Uplink
		want      string
		wantErr   string
		wantErrIs error
	}{
		{name: "inline", uplink: config.Uplink{Token: "abc"}, want: "abc"},
		{name: "none", uplink: config.Uplink{}, want: ""},
		{name: "file trimmed", uplink: config.Uplink{TokenFile: write("t1", "  s3cr3t-token\r\n\n")}, want: "s3cr3t-token"},
		{name: "file without newline", uplink: config.Uplink{TokenFile: write("t2", "tok")}, want: "tok"},
		{name: "file empty", uplink: config.Uplink{TokenFile: write("t3", " \n")}, wantErr: "is empty"},
		{name: "file missing", uplink: config.Uplink{TokenFile: filepath.Join(dir, "absent")}, wantErr: "uplink.token_file", wantErrIs: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Config{Uplink: tt.uplink}
			got, err := cfg.UplinkToken()
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.want, got)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			if tt.wantErrIs != nil {
				assert.ErrorIs(t, err, tt.wantErrIs)
			}
		})
	}

	t.Run("file read on each call", func(t *testing.T) {
		path := write("rotating", "first\n")
		cfg := config.Config{Uplink: config.Uplink{TokenFile: path}}
		got, err := cfg.UplinkToken()
		require.NoError(t, err)
		require.Equal(t, "first", got)
		write("rotating", "second\n")
		got, err = cfg.UplinkToken()
		require.NoError(t, err)
		assert.Equal(t, "second", got)
	})
}

func TestValidateIsDeterministic(t *testing.T) {
	// Problems in a map (wqi.freshness) must come out in the same order every time.
	data, err := os.ReadFile(filepath.Join("testdata", "invalid", "freshness.yaml"))
	require.NoError(t, err)
	_, first := config.Parse(data)
	require.Error(t, first)
	for range 20 {
		_, err := config.Parse(data)
		require.Error(t, err)
		require.Equal(t, first.Error(), err.Error())
	}
}

// TestBalenaTemplate renders the balena gateway template the way its entrypoint does and
// loads it, so the template cannot drift from the keys this package accepts.
func TestBalenaTemplate(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "deploy", "balena")
	tmpl, err := os.ReadFile(filepath.Join(dir, "agent.yaml.template"))
	require.NoError(t, err)
	entrypoint, err := os.ReadFile(filepath.Join(dir, "entrypoint.sh"))
	require.NoError(t, err)

	values := map[string]string{
		"PH_STATION_ID":         "MH-PUNE-001",
		"PH_STATION_NAME":       "Mula-Mutha at Sangam's ghat", // a quote, escaped as ''
		"PH_TIMEZONE":           "Asia/Kolkata",
		"PH_STATION_CLASS":      "B",
		"PH_ELEVATION_M":        "560",
		"PH_MQTT_USER":          "probes",
		"PH_MQTT_PASSWORD_HASH": hashGW,
		"PH_UPLINK_URL":         "https://cloud.example.org",
	}
	placeholders := regexp.MustCompile(`@([A-Z_]+)@`).FindAllStringSubmatch(string(tmpl), -1)
	require.NotEmpty(t, placeholders)
	for _, m := range placeholders {
		_, ok := values[m[1]]
		assert.True(t, ok, "placeholder %s has no value in this test", m[0])
		assert.True(t, strings.Contains(string(entrypoint), m[0]), "the entrypoint does not fill %s", m[0])
	}

	render := func(values map[string]string) []byte {
		out := string(tmpl)
		for name, v := range values {
			out = strings.ReplaceAll(out, "@"+name+"@", strings.ReplaceAll(v, "'", "''"))
		}
		return []byte(out)
	}
	cfg, err := config.Parse(render(values))
	require.NoError(t, err)
	assert.Equal(t, "Mula-Mutha at Sangam's ghat", cfg.Station.Name)
	assert.Equal(t, 560.0, cfg.Station.ElevationM)
	assert.Equal(t, "/data/agent/admin.sock", cfg.AdminSocket)
	assert.Equal(t, "0.0.0.0:1883", cfg.MQTT.Listen)
	assert.False(t, cfg.MQTT.AllowAnonymous)
	assert.Equal(t, "/data/uplink.token", cfg.Uplink.TokenFile)
	assert.LessOrEqual(t, int64(cfg.Buffer.MaxBytes), spool.MaxBytesOn(32), "the template must load on 32-bit gateways too")

	// An offline station: no uplink URL.
	values["PH_UPLINK_URL"] = ""
	cfg, err = config.Parse(render(values))
	require.NoError(t, err)
	assert.Empty(t, cfg.Uplink.URL)
}

// TestNullMapKeepsDefaults: a map key written with no value means what {} and leaving the
// key out mean, so a configuration written back out loads the same.
func TestNullMapKeepsDefaults(t *testing.T) {
	base := "station: {id: MH-PUNE-001, class: B}\ndata_dir: ./data/agent\nmqtt: {allow_anonymous: true}\n"
	want, err := config.Parse([]byte(base))
	require.NoError(t, err)
	for _, doc := range []string{
		"wqi: {freshness: ~, freshness_by_source: ~}",
		"wqi: {freshness: {}, freshness_by_source: {}}",
		"wqi:\n  freshness:\n  freshness_by_source:\n",
	} {
		t.Run(doc, func(t *testing.T) {
			got, err := config.Parse([]byte(base + doc + "\n"))
			require.NoError(t, err)
			assert.Equal(t, want.WQI, got.WQI)
		})
	}
}

// FuzzParse feeds arbitrary documents to Parse. It must never panic, and a document it
// accepts must validate again unchanged and survive a YAML round trip: what Load stores is
// a fixed point of the load path.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("station: &a {id: x, class: B}\nother: *a\n"))
	f.Add([]byte("<<: {data_dir: /d}\n"))
	f.Add([]byte("station: {id: x}\ndata_dir: /d\nwqi: {freshness_by_source: ~}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(data)
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse returned a config along with error %v", err)
			}
			if err.Error() == "" {
				t.Fatal("Parse returned an empty error message")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("a parsed config does not validate again: %v", err)
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("marshal a parsed config: %v", err)
		}
		again, err := config.Parse(out)
		if err != nil {
			t.Fatalf("a parsed config does not parse after a round trip: %v\n%s", err, out)
		}
		out2, err := yaml.Marshal(again)
		if err != nil {
			t.Fatalf("marshal the round-tripped config: %v", err)
		}
		if string(out) != string(out2) {
			t.Fatalf("Load is not a fixed point:\nfirst:\n%s\nsecond:\n%s", out, out2)
		}
	})
}

// TestShippedConfigsLoad keeps the example and demo configurations in configs/ loadable.
func TestShippedConfigsLoad(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "configs", "*agent*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := config.Load(f)
			assert.NoError(t, err)
		})
	}
}

func TestSerialProbeNeedsAnEZOCircuit(t *testing.T) {
	cfg := base(t)
	cfg.Probes = []config.Probe{{Name: "turb", Kind: "serial", Device: "/dev/ttyUSB0", Baud: 9600,
		Param: "turbidity", Interval: d(time.Minute)}}
	err := cfg.Validate()
	require.Error(t, err)
	assert.Equal(t, "probes[0].param: no EZO circuit measures turbidity (serial probes: [ph do conductivity tds temp])", err.Error())
}

// TestExplicitZero: a zero written in the file is taken as written. Where zero means
// something (no deadband, no byte budget) it is the setting; where it means nothing it is
// an error naming the key. It never turns silently into the default.
func TestExplicitZero(t *testing.T) {
	const head = "station: {id: MH-PUNE-001, class: B}\ndata_dir: /data\nmqtt: {allow_anonymous: true}\n"
	cfg, err := config.Parse([]byte(head + "alerts: {deadband: 0}\nuplink: {daily_bytes: 0}\n"))
	require.NoError(t, err)
	assert.Zero(t, cfg.Alerts.Deadband, "deadband: 0 is no margin, not the default margin")
	assert.Zero(t, cfg.Uplink.DailyBytes)

	for doc, want := range map[string]string{
		"alerts: {clear_count: 0}":     "alerts.clear_count: 0 must be at least 1",
		"alerts: {bad_count: 0}":       "alerts.bad_count: 0 must be at least 1",
		"alerts: {offline_factor: 0}":  "alerts.offline_factor: 0 must be at least 1",
		"uplink: {batch_max: 0}":       "uplink.batch_max: 0 must be 1..10000 (the most records the cloud takes in one batch)",
		"uplink: {interval: 0s}":       "uplink.interval: 0s is shorter than 100ms",
		"buffer: {max_bytes: 0}":       "buffer.max_bytes: 0 is below the 1 MiB minimum",
		"uplink: {live_readings: 0}":   "uplink.live_readings: 0 must be 1..10000",
		"wqi: {history_interval: 0s}":  "wqi.history_interval: 0s must be positive",
		"validation: {spike_sigma: 0}": "validation.spike_sigma: 0 must be a positive number",
		"probes: [{name: p, kind: serial, device: /dev/x, param: ph, baud: 0}]": "probes[0].baud: 0 must be positive",
		"alerts: {hooks: [{command: [x], timeout: 0s}]}":                        "alerts.hooks[0].timeout: must be positive",
	} {
		t.Run(doc, func(t *testing.T) {
			_, err := config.Parse([]byte(head + doc + "\n"))
			require.Error(t, err)
			assert.Equal(t, want, err.Error())
		})
	}
}

// TestSizesAndDays: byte sizes take units and durations take days, in every key.
func TestSizesAndDays(t *testing.T) {
	cfg, err := config.Parse([]byte(`station: {id: MH-PUNE-001, class: B}
data_dir: /data
mqtt: {allow_anonymous: true, max_packet_bytes: 128KiB}
uplink: {daily_bytes: 20MiB}
buffer: {max_bytes: 256MiB, retention: 14d}
alerts: {calibration_due: 1.5d}
`))
	require.NoError(t, err)
	assert.Equal(t, config.ByteSize(128<<10), cfg.MQTT.MaxPacketBytes)
	assert.Equal(t, config.ByteSize(20<<20), cfg.Uplink.DailyBytes)
	assert.Equal(t, config.ByteSize(256<<20), cfg.Buffer.MaxBytes)
	assert.Equal(t, 14*24*time.Hour, cfg.Buffer.Retention.Std())
	assert.Equal(t, 36*time.Hour, cfg.Alerts.CalibrationDue.Std())
}

// Risky settings allowed on purpose are said loudly by `config check` and at start-up.
func TestWarnings(t *testing.T) {
	base := "station: {id: MH-PUNE-001, class: B}\ndata_dir: /data\n"
	tests := []struct {
		doc  string
		want []string
	}{
		{"mqtt: {listen: \"0.0.0.0:1883\", allow_anonymous: true, insecure: true}\n",
			[]string{"mqtt: anonymous clients are allowed on a listener other than loopback"}},
		// Another host by definition; Load only parses it, nothing is dialled.
		{"mqtt: {allow_anonymous: true}\nuplink: {url: \"http://cloud.example.org:8080\", token: t, insecure: true}\n",
			[]string{"uplink: http://cloud.example.org:8080 is plain http to another host"}},
		{"mqtt: {allow_anonymous: true}\nuplink: {url: \"http://127.0.0.1:8080\", token: t}\n", nil},
		{"mqtt: {listen: \"[::1]:1883\", allow_anonymous: true}\nuplink: {url: \"http://localhost:8080\", token: t}\n", nil},
	}
	for _, tt := range tests {
		cfg, err := config.Parse([]byte(base + tt.doc))
		require.NoError(t, err, tt.doc)
		got := cfg.Warnings()
		require.Len(t, got, len(tt.want), "%s: %v", tt.doc, got)
		for i, w := range tt.want {
			assert.Contains(t, got[i], w)
		}
	}
}

package config_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/purehealth/purehealth/agent/internal/config"
	"github.com/purehealth/purehealth/internal/strictyaml"
)

var exampleFile = filepath.Join("..", "..", "..", "configs", "agent.example.yaml")

// notDefaults are the example's commented-out keys that show an optional setting rather
// than a default: they have none (or, for admin_socket, one derived from data_dir).
var notDefaults = map[string]bool{
	"admin_socket": true, "mqtt.tls": true,
	"uplink.ca_file": true, "uplink.cert_file": true, "uplink.key_file": true,
}

var (
	exampleLine  = regexp.MustCompile(`^(\s*)(#\s?)?(\s*)([a-z_0-9]+):(.*)$`)
	trailComment = regexp.MustCompile(`\s+#(.*)$`)
	saysDefault  = regexp.MustCompile(`\bdefault ([^\s,;()]+)`)
)

// documentedDefaults reads the defaults the example documents: every commented-out
// "key: value" line ("  # interval: 2s   # how often ...") and every "default VALUE" in a
// line's trailing comment. It returns them as one YAML document, and the keys it found.
func documentedDefaults(t *testing.T, path string) (string, []string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()

	type section struct {
		indent int
		key    string
	}
	var stack []section
	doc := map[string]any{}
	var keys []string
	set := func(path []string, raw string) {
		var v any
		require.NoError(t, yaml.Unmarshal([]byte(raw), &v), "%s: %s", strings.Join(path, "."), raw)
		m := doc
		for _, k := range path[:len(path)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		m[path[len(path)-1]] = v
		keys = append(keys, strings.Join(path, "."))
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := exampleLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		commented := m[2] != ""
		indent := len(m[1]) + len(m[3])
		key, rest := m[4], m[5]
		comment := ""
		if c := trailComment.FindStringSubmatch(rest); c != nil {
			comment = c[1]
			rest = rest[:len(rest)-len(c[0])]
		}
		value := strings.TrimSpace(rest)
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		path := []string{key}
		for i := len(stack) - 1; i >= 0; i-- {
			path = append([]string{stack[i].key}, path...)
		}
		if value == "" {
			stack = append(stack, section{indent, key})
		}
		if notDefaults[strings.Join(path, ".")] {
			continue
		}
		switch {
		case commented && value != "":
			set(path, value)
		case !commented:
			if d := saysDefault.FindStringSubmatch(comment); d != nil {
				set(path, d[1])
			}
		}
	}
	require.NoError(t, sc.Err())
	out, err := yaml.Marshal(doc)
	require.NoError(t, err)
	return string(out), keys
}

// TestExampleDocumentsTheDefaults decodes the defaults the example documents onto
// Default: if any of them differs from the default its component owns, the result
// differs from Default.
func TestExampleDocumentsTheDefaults(t *testing.T) {
	doc, keys := documentedDefaults(t, exampleFile)
	for _, want := range []string{
		"station.timezone", "station.do_method", "mqtt.listen", "mqtt.max_packet_bytes", "mqtt.max_clients",
		"uplink.interval", "uplink.batch_max", "uplink.live_readings", "uplink.backoff_max",
		"uplink.daily_bytes", "uplink.connect_timeout", "uplink.request_timeout", "buffer.retention",
		"alerts.deadband", "alerts.clear_count", "alerts.offline_factor", "alerts.bad_count",
		"alerts.calibration_due", "wqi.freshness", "wqi.history_interval", "validation.spike_sigma",
		"validation.flatline_count", "validation.max_future", "validation.max_past",
		"clock.sync_file", "clock.min_time",
	} {
		assert.Contains(t, keys, want, "the example should document the default of %s", want)
	}
	got := config.Default()
	require.NoError(t, strictyaml.Decode([]byte(doc), &got), "documented defaults:\n%s", doc)
	assert.Equal(t, config.Default(), got, "a default documented in %s is not the default:\n%s", exampleFile, doc)
}

// TestDefaultIsValid: a file that names only what has no default loads as Default.
func TestDefaultIsValid(t *testing.T) {
	cfg, err := config.Parse([]byte("station: {id: MH-PUNE-001, class: B}\ndata_dir: /data\nmqtt: {allow_anonymous: true}\n"))
	require.NoError(t, err)
	want := config.Default()
	want.Station.ID, want.Station.Class = "MH-PUNE-001", "B"
	want.DataDir, want.AdminSocket, want.MQTT.AllowAnonymous = "/data", "/data/admin.sock", true
	assert.Equal(t, want, *cfg)

	// Each Default is a fresh value: a file's map keys never leak into the next load.
	a := config.Default()
	a.WQI.Freshness["ph"] = 0
	assert.NotZero(t, config.Default().WQI.Freshness["ph"])
}

package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/firmware-sim/internal/brokertest"
)

func writeScenario(t *testing.T, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "station.yaml")
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
	return path
}

// `ph-sim station` serves every kind of probe, prints one line per endpoint (network and
// MQTT probes first, in scenario order, then serial probes as they attach), and stops
// cleanly with its context (goleak checks nothing is left running).
func TestStationCommandServes(t *testing.T) {
	link := filepath.Join(t.TempDir(), "tty-do")
	broker := brokertest.Start(t, brokertest.Options{})
	path := writeScenario(t, fmt.Sprintf(`station: MH-SANGLI-001
speed: 50
probes:
  - {name: sonde-1, kind: coap, listen: "127.0.0.1:0", params: [do, temp]}
  - {name: turb-1, kind: http, listen: "127.0.0.1:0", params: [turbidity]}
  - {name: do-1, kind: serial, param: do, link: %q}
  - {name: lab-1, kind: mqtt, broker: %q, params: [bod, fc], sensors: 2, rate: 10}
`, link, broker.Addr))
	lines := startServing(t, 5, "station", "--scenario", path, "--log-level", "error")
	assert.Regexp(t, `^sonde-1 coap do coap://127\.0\.0\.1:\d+/do$`, lines[0])
	assert.Regexp(t, `^sonde-1 coap temp coap://127\.0\.0\.1:\d+/temp$`, lines[1])
	assert.Regexp(t, `^turb-1 http turbidity http://127\.0\.0\.1:\d+/turbidity$`, lines[2])
	assert.Equal(t, "lab-1 mqtt bod,fc mqtt://"+broker.Addr, lines[3])
	assert.Regexp(t, "^do-1 serial do "+regexp.QuoteMeta(link)+` -> /dev/pts/\d+$`, lines[4])
	target, err := os.Readlink(link)
	require.NoError(t, err)
	assert.Equal(t, "do-1 serial do "+link+" -> "+target, lines[4], "the link points at the terminal printed")

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	require.NoError(t, broker.WaitFor(ctx, 2), "the MQTT probe publishes")
}

func TestStationCommandErrors(t *testing.T) {
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer busy.Close()
	tests := []struct {
		name string
		args func(t *testing.T) []string
		want []string
		code int
	}{
		{"no scenario", func(*testing.T) []string { return []string{"station"} },
			[]string{"--scenario is required", "(see 'ph-sim station --help')"}, ExitUsage},
		{"missing file", func(t *testing.T) []string {
			return []string{"station", "--scenario", filepath.Join(t.TempDir(), "nope.yaml")}
		}, []string{"read scenario: ", "no such file"}, ExitUsage},
		{"mistakes with their lines", func(t *testing.T) []string {
			return []string{"station", "--scenario", writeScenario(t, `station: MH-PUNE-001
probes:
  - {name: ph-1, kind: serial, param: turbidity}
  - {name: turb-1, kind: http, listen: "127.0.0.1", params: [turbidity]}
`)}
		}, []string{"line 3: probes[0] \"ph-1\": param: turbidity: no EZO circuit measures it",
			`line 4: probes[1] "turb-1": listen: "127.0.0.1" must be host:port`}, ExitUsage},
		{"a key of another kind", func(t *testing.T) []string {
			return []string{"station", "--scenario", writeScenario(t, `station: MH-PUNE-001
probes:
  - {name: turb-1, kind: http, listen: "127.0.0.1:0", params: [turbidity], interval: 5s}
`)}
		}, []string{`line 3: key "interval" does not apply to http probe "turb-1" (it is for coap probes)`}, ExitUsage},
		{"port in use", func(t *testing.T) []string {
			return []string{"station", "--log-level", "error", "--scenario", writeScenario(t, fmt.Sprintf(`station: MH-PUNE-001
probes:
  - {name: sonde-1, kind: coap, listen: %q, params: [do]}
`, busy.LocalAddr()))}
		}, []string{`probe "sonde-1" (coap, line 3): listen: `, "address already in use"}, ExitFailure},
		{"stray argument", func(*testing.T) []string { return []string{"station", "extra"} },
			[]string{`unknown command "extra" for "ph-sim station"`}, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runCLI(t.Context(), tt.args(t)...)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Equal(t, tt.code, ExitCode(err), "%v", err)
			assert.Empty(t, out, "nothing on stdout")
		})
	}
}

func TestStationHelp(t *testing.T) {
	out, _, err := runCLI(t.Context(), "--help")
	require.NoError(t, err)
	assert.Contains(t, out, "station ")
	out, _, err = runCLI(t.Context(), "station", "--help")
	require.NoError(t, err)
	assert.Contains(t, out, "--scenario")
	assert.Contains(t, out, "<probe> <kind> <params> <where>")
}

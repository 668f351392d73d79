package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/testproc"
)

func TestParseEndpoint(t *testing.T) {
	tests := []parseCase[Endpoint]{
		{in: "ezo-000 serial ph /tmp/w/tty-000 -> /dev/pts/7",
			want: Endpoint{Probe: "ezo-000", Kind: "serial", Params: []string{"ph"}, Where: "/tmp/w/tty-000", Device: "/dev/pts/7"}},
		{in: "ezo-001 serial do /dev/pts/8",
			want: Endpoint{Probe: "ezo-001", Kind: "serial", Params: []string{"do"}, Where: "/dev/pts/8"}},
		{in: "sonde-00 coap temp coap://127.0.0.1:40123/temp",
			want: Endpoint{Probe: "sonde-00", Kind: "coap", Params: []string{"temp"}, Where: "coap://127.0.0.1:40123/temp"}},
		{in: "lab-1 mqtt bod,fc mqtt://127.0.0.1:18834",
			want: Endpoint{Probe: "lab-1", Kind: "mqtt", Params: []string{"bod", "fc"}, Where: "mqtt://127.0.0.1:18834"}},
		{in: "", wantErr: true},
		{in: `time=2026-11-27T03:33:27.176Z level=INFO msg="station running"`, wantErr: true},
		{in: "ezo-000 serial ph /tmp/w/tty-000 => /dev/pts/7", wantErr: true},
		{in: "a b c", wantErr: true},
		{in: "a rs485 ph /dev/ttyUSB0", wantErr: true},
		{in: "a coap do http://127.0.0.1/do", wantErr: true},
		{in: "a coap do coap://127.0.0.1/do -> /dev/pts/1", wantErr: true},
		{in: "a serial ph, /dev/pts/1", wantErr: true},
	}
	checkParse(t, tests, ParseEndpoint)
}

func FuzzParseEndpoint(f *testing.F) {
	f.Add("ezo-000 serial ph /tmp/w/tty-000 -> /dev/pts/7")
	f.Add("lab-1 mqtt bod,fc mqtt://127.0.0.1:18834")
	f.Add("a b , d -> e")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEndpoint(s)
		if err != nil {
			return
		}
		for _, field := range []string{e.Probe, e.Kind, e.Where} {
			if field == "" || strings.ContainsAny(field, " \t\n") {
				t.Fatalf("field %q of %q", field, s)
			}
		}
		if len(e.Params) == 0 {
			t.Fatalf("no params from %q", s)
		}
	})
}

func TestProbesYAML(t *testing.T) {
	got := string(probesYAML([]AgentProbe{
		{Name: "ezo-000", Kind: "serial", Param: "ph", Device: "/tmp/w/tty-000", Interval: time.Second},
		{Name: "sonde-00-do", Kind: "coap", Param: "do", URL: "coap://127.0.0.1:1/do", Observe: true, Interval: 1500 * time.Millisecond},
	}))
	assert.Equal(t, `probes:
  - {name: "ezo-000", kind: "serial", param: "ph", interval: 1s, device: "/tmp/w/tty-000"}
  - {name: "sonde-00-do", kind: "coap", param: "do", interval: 1.5s, url: "coap://127.0.0.1:1/do", observe: true}
`, got)
}

func TestParseSensors(t *testing.T) {
	tests := []parseCase[[]Sensor]{
		{name: "rows", in: `{"sensors":[{"name":"ezo-000","kind":"serial","param":"ph","online":true,"readings":12,"errors":1,"reconnects":0,"quality":{"good":1}}]}`,
			want: []Sensor{{Name: "ezo-000", Kind: "serial", Param: "ph", Online: true, Readings: 12, Errors: 1}}},
		{name: "none", in: `{"sensors":[]}`, want: []Sensor{}},
		{name: "not the sensors output", in: `{"version":"dev"}`, wantErr: true},
		{name: "not JSON", in: "NAME KIND\n", wantErr: true},
		{name: "negative count", in: `{"sensors":[{"name":"x","readings":-1}]}`, wantErr: true},
	}
	checkParse(t, tests, func(s string) ([]Sensor, error) { return ParseSensors([]byte(s)) })
}

func FuzzParseSensors(f *testing.F) {
	f.Add(`{"sensors":[{"name":"ezo-000","online":true,"readings":12}]}`)
	f.Add(`{"sensors":null}`)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSensors([]byte(s))
		if err == nil && got == nil {
			t.Fatalf("no error and no list from %q", s)
		}
	})
}

// stationBin skips unless bin/ph-sim knows the station command.
func stationBin(t *testing.T) string {
	t.Helper()
	bin := binDir(t, "ph-agent", "ph-sim")
	if err := exec.Command(filepath.Join(bin, "ph-sim"), "station", "--help").Run(); err != nil {
		t.Skipf("bin/ph-sim has no station command (make build): %v", err)
	}
	return bin
}

// TestStationFeedsAgent runs a real `ph-sim station` and a real agent reading its probes.
func TestStationFeedsAgent(t *testing.T) {
	bin := stationBin(t)
	dir := t.TempDir()
	scenario := filepath.Join(dir, "station.yaml")
	require.NoError(t, os.WriteFile(scenario, fmt.Appendf(nil, `station: MH-PUNE-001
speed: 20
probes:
  - {name: ezo-0, kind: serial, param: ph, link: %q}
  - {name: sonde-0, kind: coap, listen: "127.0.0.1:0", params: [do, temp], interval: 200ms}
`, filepath.Join(dir, "tty-0")), 0o600))
	st, err := StartStation(t.Context(), filepath.Join(bin, "ph-sim"), scenario, filepath.Join(dir, "station.log"), 3)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, st.Stop(), "ph-sim station stops gracefully") })
	require.Len(t, st.Endpoints, 3)
	assert.Equal(t, filepath.Join(dir, "tty-0"), st.Endpoints[2].Where, "network endpoints first, then the serial one")

	var probes []AgentProbe
	for _, e := range st.Endpoints {
		p := AgentProbe{Name: e.Probe + "-" + e.Params[0], Kind: e.Kind, Param: e.Params[0], Interval: 200 * time.Millisecond}
		if e.Kind == "serial" {
			p.Device = e.Where
		} else {
			p.URL, p.Observe = e.Where, true
		}
		probes = append(probes, p)
	}
	addr, err := testproc.FreePort("tcp")
	require.NoError(t, err)
	agent, err := StartAgentWithProbes(t.Context(), filepath.Join(bin, "ph-agent"),
		AgentConfig{Dir: filepath.Join(dir, "agent"), Station: "MH-PUNE-001", Listen: addr}, probes)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, agent.Stop(), "the agent stops gracefully") })

	var sensors []Sensor
	require.Eventually(t, func() bool {
		sensors, err = agent.Sensors(t.Context())
		if err != nil || len(sensors) != 3 {
			return false
		}
		for _, s := range sensors {
			if !s.Online || s.Readings < 2 {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond, "every probe online with readings: %+v (%v)", sensors, err)
}

func TestStartStationFailure(t *testing.T) {
	bin := stationBin(t)
	dir := t.TempDir()
	scenario := filepath.Join(dir, "station.yaml")
	require.NoError(t, os.WriteFile(scenario, []byte("station: MH-PUNE-001\nprobes:\n  - {name: x, kind: modbus}\n"), 0o600))
	_, err := StartStation(t.Context(), filepath.Join(bin, "ph-sim"), scenario, filepath.Join(dir, "station.log"), 1)
	require.Error(t, err)
	assert.ErrorContains(t, err, `line 3: probes[0] "x": kind: "modbus" must be serial, coap, http or mqtt`,
		"the error shows ph-sim's own complaint")
}

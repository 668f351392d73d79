package scenario

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/purehealth/purehealth/firmware-sim/internal/coapsim"
	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/firmware-sim/internal/ezo"
	"github.com/purehealth/purehealth/firmware-sim/internal/httpsim"
	"github.com/purehealth/purehealth/firmware-sim/internal/mqttsim"
	"github.com/purehealth/purehealth/shared/telemetry"
)

var update = flag.Bool("update", false, "rewrite the golden error files in testdata/invalid")

// Every goroutine a station starts — probes, listeners, the libraries' own — must be gone
// when Run returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// demoScenario is the example scenario shipped in configs/.
var demoScenario = filepath.Join("..", "..", "..", "configs", "demo-station.scenario.yaml")

func mustPlans(t *testing.T, sc *Scenario) []plan {
	t.Helper()
	plans, err := sc.plans()
	require.NoError(t, err)
	require.Len(t, plans, len(sc.Probes))
	return plans
}

func TestLoadValid(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, sc *Scenario)
	}{
		{"testdata/valid/minimal.yaml", func(t *testing.T, sc *Scenario) {
			assert.Equal(t, "MH-PUNE-001", sc.Station)
			assert.Equal(t, 1.0, sc.speed(), "speed defaults to real time")
			require.Len(t, sc.Probes, 1)
			assert.Equal(t, 3, sc.Probes[0].Line)
			pl := mustPlans(t, sc)[0]
			assert.Equal(t, "127.0.0.1:0", pl.listen)
			assert.Equal(t, []telemetry.Param{telemetry.Turbidity}, pl.http.Params)
		}},
		{"testdata/valid/every-key.yaml", func(t *testing.T, sc *Scenario) {
			plans := mustPlans(t, sc)
			assert.Equal(t, ezo.Config{Param: telemetry.PH, Station: "MH-NASHIK-001", Seed: 42,
				ProbeFault: device.FaultGarbage, Faults: []ezo.Fault{ezo.FaultER, ezo.FaultUnplug}, FaultEvery: 5},
				plans[0].serial)
			assert.Equal(t, ezo.Options{Link: "/tmp/scenario-every-key/ph", Speed: 20, UnplugEvery: 20 * time.Second,
				UnplugFor: 3 * time.Second}, plans[0].serialOpts)
			assert.Equal(t, coapsim.Config{Station: "MH-NASHIK-001", Seed: 42,
				Params: []telemetry.Param{telemetry.DO, telemetry.Temp}, Interval: 2 * time.Second,
				Format: coapsim.FormatText, Fault: coapsim.FaultError, FaultRate: 0.1}, plans[1].coap)
			assert.Equal(t, httpsim.Config{Station: "MH-NASHIK-001", Seed: 42,
				Params: []telemetry.Param{telemetry.Turbidity}, Format: httpsim.FormatText,
				Fault: httpsim.FaultSlow, FaultRate: 0.5, SlowDelay: 20 * time.Second}, plans[2].http)
			assert.Equal(t, mqttsim.Config{Broker: "tcp://127.0.0.1:1883", Station: "MH-NASHIK-001", Sensors: 4,
				Rate: 0.2, QoS: 0, Protocol: mqttsim.MQTT5, Username: "lab", Password: "secret",
				Params: []telemetry.Param{telemetry.BOD, telemetry.FC}, Batch: true, Fault: device.FaultSpike, Seed: 42},
				plans[3].mqtt)
		}},
		{"testdata/valid/lists-as-strings.yaml", func(t *testing.T, sc *Scenario) {
			assert.Equal(t, List{"noise", "er"}, sc.Probes[0].Faults)
			assert.Empty(t, sc.Probes[2].Faults, "null is an empty list")
			assert.Equal(t, List{"do", "temp"}, sc.Probes[1].Params)
			plans := mustPlans(t, sc)
			assert.Equal(t, defaultInterval, plans[1].coap.Interval, "coap interval default")
		}},
		{demoScenario, func(t *testing.T, sc *Scenario) {
			assert.Equal(t, "MH-KOLHAPUR-001", sc.Station)
			// No probe measures BOD or FC: they are lab tests (lab samples and
			// government records bring them in the demo).
			for _, pl := range mustPlans(t, sc) {
				assert.NotContains(t, pl.params, telemetry.BOD, pl.probe.Name)
				assert.NotContains(t, pl.params, telemetry.FC, pl.probe.Name)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			sc, err := Load(tt.file)
			require.NoError(t, err)
			tt.check(t, sc)
		})
	}
}

// The defaults a minimal probe of each kind gets.
func TestDefaults(t *testing.T) {
	sc, err := Parse([]byte(`station: MH-PUNE-001
probes:
  - {name: a, kind: serial, param: do}
  - {name: b, kind: coap, listen: "127.0.0.1:0", params: [do]}
  - {name: c, kind: http, listen: "127.0.0.1:0", params: [do]}
  - {name: d, kind: mqtt, broker: "127.0.0.1:1883"}
`))
	require.NoError(t, err)
	plans := mustPlans(t, sc)
	assert.Equal(t, 1.0, plans[0].serialOpts.Speed)
	assert.Equal(t, device.FaultNone, plans[0].serial.ProbeFault)
	assert.Empty(t, plans[0].serial.Faults)
	assert.Equal(t, 5*time.Second, plans[1].coap.Interval)
	assert.Equal(t, mqttsim.Config{Broker: "127.0.0.1:1883", Station: "MH-PUNE-001", Sensors: 1, Rate: 1, QoS: 1,
		Protocol: mqttsim.MQTT311, Params: mqttsim.DefaultParams(), Fault: device.FaultNone}, plans[3].mqtt)
}

// TestLoadInvalid checks each broken file against explicit expectations and a golden copy
// of the whole message (go test -run TestLoadInvalid -update rewrites the golden files).
func TestLoadInvalid(t *testing.T) {
	want := map[string][]string{
		"unknown-top-key": {`line 2: unknown key "sped" (a scenario takes station, seed, speed, plumes, probes)`},
		"keys-of-other-kinds": {
			`line 6: key "listen" does not apply to serial probe "ph-1" (it is for coap and http probes)`,
			`line 7: unknown key "baudrate" in serial probe "ph-1" (a serial probe takes name, kind, faults, fault_at, param, link, fault_every, unplug_every, unplug_for)`,
			`line 12: key "param" does not apply to coap probe "sonde-1" (it is for serial probes)`,
			`line 13: key "slow" does not apply to coap probe "sonde-1" (it is for http probes)`,
			`line 17: key "link" does not apply to mqtt probe "lab-1"`,
			`line 20: unknown key "register" in probe "odd-1"`,
		},
		"wrong-types": {"line 2: cannot unmarshal !!str `many` into int64", "line 7: want a list such as [do, temp]",
			"line 8: cannot unmarshal !!int `5` into time.Duration", "line 12: cannot unmarshal !!str `two` into int",
			"line 13: cannot unmarshal !!str `sometimes` into bool"},
		"many-mistakes": {
			`line 2: station: "MH PUNE" must be 1–64 letters, digits, '-' or '_'`,
			`line 3: speed: -1 must be above 0`,
			`line 5: probes[0] "ph-1": param: turbidity: no EZO circuit measures it (want ph, do, conductivity, tds, temp)`,
			`line 6: probes[1] "ph-1": name: also the name of probes[0]`,
			`line 6: probes[1] "ph-1": faults: faults noise and drift: a probe has one probe fault at a time`,
			`line 6: probes[1] "ph-1": faults: unknown fault "fire"`,
			`line 6: probes[1] "ph-1": faults: unplug needs a link`,
			`line 6: probes[1] "ph-1": fault_every: 0 must be at least 1`,
			`line 7: probes[2] "do-1": unplug_every: -1s must be positive`,
			`line 8: probes[3] "do-2": link: /tmp/scenario-do is also the link of probe "do-1"`,
			`line 12: probes[4] "sonde-1": params: "salinity" is not a known parameter`,
			`line 12: probes[4] "sonde-1": params: do is listed twice`,
			`line 15: probes[4] "sonde-1": faults: a coap probe has one fault at a time (got error, garbage)`,
			`line 13: probes[4] "sonde-1": interval: 5ms is shorter than 10ms`,
			`line 14: probes[4] "sonde-1": format: "xml" must be json or text`,
			`line 16: probes[4] "sonde-1": fault_rate: 2 must be within (0, 1]`,
			`line 17: probes[5] "sonde-2": listen: 127.0.0.1:5683 is also where probe "sonde-1" listens`,
			`line 17: probes[5] "sonde-2": faults: unknown fault "slow"`,
			`line 18: probes[6] "turb-1": listen: "localhost" must be host:port`,
			`line 18: probes[6] "turb-1": params: at least one is required`,
			`line 18: probes[6] "turb-1": slow: -1s must be positive`,
			`line 20: probes[8] "lab 1": name: "lab 1" must be 1 to 64 letters`,
			`line 20: probes[8] "lab 1": broker: required`,
			`line 20: probes[8] "lab 1": rate: 0 must be above 0`,
			`line 20: probes[8] "lab 1": qos: 3 must be 0, 1 or 2`,
			`line 20: probes[8] "lab 1": protocol: 3 must be 4 (MQTT 3.1.1) or 5`,
			`line 20: probes[8] "lab 1": password: given without a username`,
			`line 20: probes[8] "lab 1": faults: unknown fault "unplug"`,
			`line 21: probes[9] "lab-2": broker: `,
			`line 21: probes[9] "lab-2": sensors: 0 must be at least 1`,
			`line 22: probes[10]: name: required`,
			`line 23: probes[11] "x-1": kind: required: serial, coap, http or mqtt`,
		},
		"not-a-mapping":       {"line 1: cannot unmarshal !!seq into scenario.Scenario"},
		"probe-not-a-mapping": {"line 3: a probe is a mapping (name: ..., kind: ...)", "line 4: a probe is a mapping"},
		"no-probes":           {"probes: at least one is required"},
		"empty-probes":        {"station: required", "line 1: probes: at least one is required", "line 2: speed: 0 must be above 0"},
		"empty":               {"scenario is empty"},
		"comments-only":       {"scenario is empty"},
		"two-documents":       {"line 4: a second YAML document is not allowed"},
		"duplicate-key":       {`line 7: mapping key "listen" already defined at line 5`},
		"syntax":              {"yaml: line 2: did not find expected '-' indicator"},
		"mqtt-too-slow":       {`line 3: probes[0] "lab-1": rate: 1e-05 must be at least 0.0001`},
		"plumes": {
			`line 3: plumes[0]: source_km: 3 is below the station (km 0.5 on the Mula-Mutha)`,
			`line 3: plumes[0]: duration: 0s must be above 0 and at most 10h0m0s`,
			`line 3: plumes[0]: severity: 2 must be within (0, 1]`,
			`line 3: plumes[0]: speed: -1 must be within [0, 5] m/s`,
			`line 4: plumes[1]: start: required`,
			`line 4: plumes[1]: duration: 11h0m0s must be above 0 and at most 10h0m0s`,
			`line 6: probes[0] "ph-1": fault_at: only a drift or a stuck value sets in at a time`,
		},
		"plume-keys": {
			`line 3: "yesterday" is neither a time (RFC 3339) nor a duration after the start such as 2h`,
			`line 4: unknown key "colour" in a plume (a plume takes source_km, start, duration, severity, speed)`,
		},
		"plume-no-river": {`line 2: plumes: MH-TEST-999 has no river model; plumes need a modelled station`},
	}
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	require.NoError(t, err)
	require.Len(t, files, len(want), "one expectation per file in testdata/invalid")
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			_, err := Load(path)
			require.Error(t, err)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, path+": "), "the file is named first: %q", msg)
			for _, w := range want[name] {
				assert.Contains(t, msg, w)
			}
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(msg+"\n"), 0o644))
			}
			b, err := os.ReadFile(golden)
			require.NoError(t, err, "no golden file: run go test -run TestLoadInvalid -update")
			assert.Equal(t, string(b), msg+"\n")
		})
	}
}

// Every problem of many-mistakes.yaml is reported, one per line, each with its line.
func TestEveryProblemHasItsLine(t *testing.T) {
	_, err := Load("testdata/invalid/many-mistakes.yaml")
	require.Error(t, err)
	lines := strings.Split(strings.TrimPrefix(err.Error(), "testdata/invalid/many-mistakes.yaml: "), "\n")
	assert.GreaterOrEqual(t, len(lines), 30)
	for _, l := range lines {
		assert.Regexp(t, `^line \d+: `, l)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "read scenario: ")
}

// The key lists the decoder checks against are exactly the struct's keys.
func TestKeyTablesMatchProbe(t *testing.T) {
	var tags []string
	rt := reflect.TypeFor[Probe]()
	for i := range rt.NumField() {
		if tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			tags = append(tags, tag)
		}
	}
	keys := slices.Clone(commonKeys)
	for _, k := range Kinds() {
		require.Contains(t, kindKeys, k)
		for _, key := range kindKeys[k] {
			if !slices.Contains(keys, key) {
				keys = append(keys, key)
			}
		}
	}
	assert.ElementsMatch(t, tags, keys)
	assert.Len(t, kindKeys, len(Kinds()))
}

func TestEndpointString(t *testing.T) {
	tests := []struct {
		e    Endpoint
		want string
	}{
		{Endpoint{Probe: "ph-1", Kind: KindSerial, Params: []telemetry.Param{telemetry.PH}, Address: "/dev/pts/5",
			Link: "./tmp/demo/tty-ph"}, "ph-1 serial ph ./tmp/demo/tty-ph -> /dev/pts/5"},
		{Endpoint{Probe: "ph-2", Kind: KindSerial, Params: []telemetry.Param{telemetry.PH}, Address: "/dev/pts/6"},
			"ph-2 serial ph /dev/pts/6"},
		{Endpoint{Probe: "lab-1", Kind: KindMQTT, Params: []telemetry.Param{telemetry.BOD, telemetry.FC},
			Address: "mqtt://127.0.0.1:18834"}, "lab-1 mqtt bod,fc mqtt://127.0.0.1:18834"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) { assert.Equal(t, tt.want, tt.e.String()) })
	}
}

// agentProbe is the part of an agent's probe configuration the demo scenario must serve.
type agentProbe struct {
	Name   string `yaml:"name"`
	Kind   string `yaml:"kind"`
	Param  string `yaml:"param"`
	Device string `yaml:"device"`
	URL    string `yaml:"url"`
}

// The demo scenario serves exactly what the demo agent's configuration reads: every serial
// device, CoAP and HTTP URL it names, with the parameter it expects there, and nothing
// else (MQTT probes publish to the agent's broker, which the agent does not configure).
func TestDemoScenarioServesTheDemoAgent(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "configs", "demo-agent-kolhapur.yaml"))
	require.NoError(t, err)
	var agent struct {
		Station struct {
			ID string `yaml:"id"`
		} `yaml:"station"`
		MQTT struct {
			Listen string `yaml:"listen"`
		} `yaml:"mqtt"`
		Probes []agentProbe `yaml:"probes"`
	}
	require.NoError(t, yaml.Unmarshal(data, &agent))
	sc, err := Load(demoScenario)
	require.NoError(t, err)
	assert.Equal(t, agent.Station.ID, sc.Station)

	type served struct{ where, param string }
	var wants, serves []served
	for _, p := range agent.Probes {
		param, err := telemetry.ParseParam(p.Param)
		require.NoError(t, err)
		where := p.URL
		if p.Kind == "serial" {
			where = filepath.Clean(p.Device)
		}
		wants = append(wants, served{where, string(param)})
	}
	for _, pl := range mustPlans(t, sc) {
		switch pl.probe.Kind {
		case KindSerial:
			serves = append(serves, served{filepath.Clean(pl.probe.Link), string(pl.params[0])})
		case KindCoAP, KindHTTP:
			for _, p := range pl.params {
				serves = append(serves, served{string(pl.probe.Kind) + "://" + pl.listen + "/" + string(p), string(p)})
			}
		case KindMQTT:
			assert.Equal(t, agent.MQTT.Listen, pl.mqtt.Broker, "the MQTT probe publishes to the agent's broker")
		}
	}
	assert.ElementsMatch(t, wants, serves)
}

// FuzzParse: no document makes Parse panic, and whatever it accepts can be planned: a
// station can be built from it.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("station: X\nprobes: [{name: a, kind: mqtt, broker: h, params: 'ph,ph'}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error message")
			}
			return
		}
		if _, err := NewStation(sc, Options{}); err != nil {
			t.Fatalf("accepted a scenario no station can be built from: %v\n%s", err, data)
		}
	})
}

package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Kind is how a simulated probe is reached.
type Kind string

// The kinds of probe a station can have.
const (
	// KindSerial is an Atlas Scientific EZO circuit (pH, DO, EC or RTD) on a pseudo-terminal.
	KindSerial Kind = "serial"
	// KindCoAP is a sonde serving one CoAP resource per parameter (GET and Observe).
	KindCoAP Kind = "coap"
	// KindHTTP is a sensor serving one HTTP resource per parameter.
	KindHTTP Kind = "http"
	// KindMQTT is a set of sensors publishing to a broker on the contract topics.
	KindMQTT Kind = "mqtt"
)

// Kinds lists the kinds, in the order the documentation gives them.
func Kinds() []Kind { return []Kind{KindSerial, KindCoAP, KindHTTP, KindMQTT} }

// Scenario is a station's simulated probes. Load or Parse it from a file; its zero value
// is not valid (a station and at least one probe are required).
type Scenario struct {
	// Station is the station id (letters, digits, - and _): it selects the river model
	// of every probe (stations without a model get a generic river) and the MQTT topics.
	// Required.
	Station string `yaml:"station"`
	// Seed selects the simulated river and its probes: the same seed gives the same values
	// for the same instants.
	Seed int64 `yaml:"seed"`
	// Speed divides every delay of the serial circuits (a pH reading takes 900 ms / Speed)
	// so tests run fast; within (0, 1e6], 0 or absent means 1 (real time). Network probes
	// answer at once whatever the speed.
	Speed float64 `yaml:"speed"`
	// Plumes are discharges into the station's river upstream of it (or at it) that the
	// current carries past the station: ground truth for the cloud's detectors (see
	// Truth). The station must be one we have a river model of.
	Plumes []PlumeSpec `yaml:"plumes"`
	// Probes are the station's instruments; names are unique.
	Probes []Probe `yaml:"probes"`

	// lines holds the line of each top-level key, for error messages; nil when the
	// scenario did not come from a file.
	lines map[string]int
}

// Probe is one simulated instrument. Name and Kind are required; the other keys depend on
// the kind (an error names any that does not apply):
//
//   - serial: param (ph, do, conductivity, tds or temp; required), link, faults (at most
//     one probe fault — noise, drift, stuck, dropout, garbage, spike — and any circuit
//     faults: er, reset, sleep, flood, ov, uv, mute, unplug), fault_every, unplug_every,
//     unplug_for. See `ph-sim serial --help`.
//   - coap: listen (required), params (required), interval, format, faults (one: a probe
//     fault or error), fault_rate. See `ph-sim coap --help`.
//   - http: listen (required), params (required), format, faults (one: a probe fault,
//     error, slow or oversized), fault_rate, slow. See `ph-sim http --help`.
//   - mqtt: broker (required), params, sensors, rate, qos, batch, protocol, username,
//     password, faults (one probe fault). See `ph-sim mqtt --help`.
//
// A zero number or duration means its default; but a key written in the file with a zero
// value where zero is not allowed (sensors: 0, rate: 0, interval: 0s, ...) is an error,
// not a silent default.
type Probe struct {
	Name string `yaml:"name"` // letters, digits, '.', '-' and '_'
	Kind Kind   `yaml:"kind"`
	// Faults make the probe misbehave; none when empty.
	Faults List `yaml:"faults"`
	// FaultAt is when a drift or a stuck value sets in: an RFC 3339 time, or a duration
	// after the station starts. Before it the probe is healthy. Default: at the start.
	// (The other probe faults are on from the start.)
	FaultAt When `yaml:"fault_at"`

	// Param is what a serial circuit measures.
	Param string `yaml:"param"`
	// Link is a symlink a serial probe keeps pointing at its current pseudo-terminal, so
	// it can be configured by a stable path (and replugged behind it); its directory is
	// created if needed. Required by the unplug fault.
	Link string `yaml:"link"`
	// FaultEvery: a serial circuit's faults hit every FaultEvery-th reading (default 3).
	FaultEvery int `yaml:"fault_every"`
	// UnplugEvery and UnplugFor time the serial unplug fault (default 30s and 2s).
	UnplugEvery time.Duration `yaml:"unplug_every"`
	UnplugFor   time.Duration `yaml:"unplug_for"`

	// Listen is a CoAP (UDP) or HTTP (TCP) probe's address, host:port; port 0 picks a
	// free port, announced when the station runs.
	Listen string `yaml:"listen"`
	// Params are the parameters of a CoAP or HTTP probe (one resource each, at
	// /<param>) or of an MQTT probe (default: the eight a river station measures).
	Params List `yaml:"params"`
	// Interval is how often a CoAP probe notifies its observers (default 5s, at least
	// 10ms); make it the agent's probe interval.
	Interval time.Duration `yaml:"interval"`
	// Format is the payload of a CoAP or HTTP probe: json (default) or text.
	Format string `yaml:"format"`
	// FaultRate is the share of responses a CoAP or HTTP transport fault hits, in
	// (0, 1]; default 1/3.
	FaultRate float64 `yaml:"fault_rate"`
	// Slow is how long an HTTP probe with the slow fault holds an answer (default 30s).
	Slow time.Duration `yaml:"slow"`

	// Broker is an MQTT probe's broker, host:port or tcp://host:port.
	Broker string `yaml:"broker"`
	// Sensors is how many sensors an MQTT probe simulates, one connection each; sensor i
	// publishes Params[i % len(Params)] (default 1).
	Sensors int `yaml:"sensors"`
	// Rate is the messages per second of each MQTT sensor (default 1; fractions are fine:
	// 0.1 is one every 10 s).
	Rate float64 `yaml:"rate"`
	// QoS of every MQTT publish: 0, 1 or 2; nil means 1.
	QoS *int `yaml:"qos"`
	// Batch publishes one array of every parameter per tick on purehealth/<station>/readings.
	Batch bool `yaml:"batch"`
	// Protocol is the MQTT version: 4 (3.1.1, default) or 5.
	Protocol int `yaml:"protocol"`
	// Username and Password authenticate every MQTT connection when Username is set.
	Username string `yaml:"username"`
	Password string `yaml:"password"`

	// Line is the line of the scenario file the probe starts on (0: not from a file).
	Line int `yaml:"-"`
	// lines holds the line of each of the probe's keys.
	lines map[string]int
}

// The keys every probe takes, and those of each kind. A test keeps them in step with the
// struct tags of Probe.
var (
	commonKeys = []string{"name", "kind", "faults", "fault_at"}
	kindKeys   = map[Kind][]string{
		KindSerial: {"param", "link", "fault_every", "unplug_every", "unplug_for"},
		KindCoAP:   {"listen", "params", "interval", "format", "fault_rate"},
		KindHTTP:   {"listen", "params", "format", "fault_rate", "slow"},
		KindMQTT:   {"broker", "params", "sensors", "rate", "qos", "batch", "protocol", "username", "password"},
	}
)

// List is a list of names, written as a YAML sequence ([do, temp]) or as one
// comma-separated string ("do,temp").
type List []string

// UnmarshalYAML accepts a sequence of strings or a comma-separated scalar.
func (l *List) UnmarshalYAML(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		*l = nil
		return nil
	case n.Kind == yaml.ScalarNode:
		var out List
		for item := range strings.SplitSeq(n.Value, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		*l = out
		return nil
	case n.Kind == yaml.SequenceNode:
		var s []string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*l = s
		return nil
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a list such as [do, temp]", n.Line)}}
}

// UnmarshalYAML decodes a probe and checks its keys against its kind: a key of another
// kind or an unknown one is an error naming its line. (yaml's KnownFields cannot do this:
// it knows the struct, not which of its fields a kind uses.)
func (p *Probe) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a probe is a mapping (name: ..., kind: ...)", n.Line)}}
	}
	type plain Probe // without this method
	var errs []string
	if err := n.Decode((*plain)(p)); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return err
		}
		errs = append(errs, te.Errors...)
	}
	p.Line = n.Line
	p.lines = make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		p.lines[n.Content[i].Value] = n.Content[i].Line
	}
	errs = append(errs, p.checkKeys(n)...)
	if len(errs) > 0 {
		sortByLine(errs)
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

func (p *Probe) checkKeys(n *yaml.Node) []string {
	who := "probe"
	if p.Name != "" {
		who = fmt.Sprintf("probe %q", p.Name)
	}
	own, kindKnown := kindKeys[p.Kind]
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, line := n.Content[i].Value, n.Content[i].Line
		if slices.Contains(commonKeys, key) || slices.Contains(own, key) {
			continue
		}
		var takers []string
		for _, k := range Kinds() {
			if slices.Contains(kindKeys[k], key) {
				takers = append(takers, string(k))
			}
		}
		switch {
		case len(takers) == 0 && kindKnown:
			errs = append(errs, fmt.Sprintf("line %d: unknown key %q in %s %s (a %s probe takes %s)",
				line, key, p.Kind, who, p.Kind, strings.Join(append(slices.Clone(commonKeys), own...), ", ")))
		case len(takers) == 0:
			errs = append(errs, fmt.Sprintf("line %d: unknown key %q in %s", line, key, who))
		case kindKnown:
			errs = append(errs, fmt.Sprintf("line %d: key %q does not apply to %s %s (it is for %s probes)",
				line, key, p.Kind, who, strings.Join(takers, " and ")))
		}
		// With an unknown kind, Validate reports the kind; its keys cannot be judged.
	}
	return errs
}

// lineOf is the line of key in the probe, or of the probe itself when the key is absent.
func (p *Probe) lineOf(key string) int {
	if l, ok := p.lines[key]; ok {
		return l
	}
	return p.Line
}

// has reports whether the file set key for this probe.
func (p *Probe) has(key string) bool {
	_, ok := p.lines[key]
	return ok
}

// Load reads, strictly decodes and validates the scenario file at path. Errors name the
// file and each problem's line.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	sc, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

// topLevelField matches yaml's message for an unknown top-level key, rewritten in our
// words.
var topLevelField = regexp.MustCompile(`^(line \d+): field (.+) not found in type scenario\.Scenario$`)

// Parse strictly decodes one YAML document and validates it. Every problem is reported,
// one per line of the error's message, each starting with its line in the document.
func Parse(data []byte) (*Scenario, error) {
	var sc Scenario
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("scenario is empty")
		}
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, err // a syntax error; its line is in it
		}
		msgs := slices.Clone(te.Errors)
		for i, m := range msgs {
			msgs[i] = topLevelField.ReplaceAllString(m,
				`$1: unknown key "$2" (a scenario takes station, seed, speed, plumes, probes)`)
		}
		sortByLine(msgs)
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, fmt.Errorf("a second YAML document is not allowed: %w", err)
	default:
		return nil, fmt.Errorf("line %d: a second YAML document is not allowed", extra.Line)
	}
	// The lines of the top-level keys, for Validate's messages: the strict decode above
	// has already accepted the document, so this one succeeds.
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil && len(root.Content) == 1 {
		m := root.Content[0]
		sc.lines = map[string]int{}
		for i := 0; i+1 < len(m.Content); i += 2 {
			sc.lines[m.Content[i].Value] = m.Content[i].Line
		}
	}
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	return &sc, nil
}

// sortByLine orders messages that start with "line N:" by N, keeping the order of equal
// lines.
func sortByLine(msgs []string) {
	lineOf := func(m string) int {
		rest, ok := strings.CutPrefix(m, "line ")
		if !ok {
			return 0
		}
		num, _, _ := strings.Cut(rest, ":")
		n, _ := strconv.Atoi(num)
		return n
	}
	slices.SortStableFunc(msgs, func(a, b string) int { return lineOf(a) - lineOf(b) })
}

// problems collects validation failures, each with its line and what it concerns.
type problems struct{ msgs []string }

func (ps *problems) add(line int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if line > 0 {
		msg = fmt.Sprintf("line %d: %s", line, msg)
	}
	ps.msgs = append(ps.msgs, msg)
}

// err is every problem, in the order of the file, one per line; nil if none.
func (ps *problems) err() error {
	if len(ps.msgs) == 0 {
		return nil
	}
	sortByLine(ps.msgs)
	errs := make([]error, len(ps.msgs))
	for i, m := range ps.msgs {
		errs[i] = errors.New(m)
	}
	return errors.Join(errs...)
}

// Validate reports every problem of the scenario at once, one per line of the message,
// each with its line in the file (when it came from one) and the probe it concerns. It
// does not change the scenario.
func (sc *Scenario) Validate() error {
	_, err := sc.plans()
	return err
}

var probeName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// maxSpeed bounds Speed: beyond it the circuits' delays round to nothing.
const maxSpeed = 1e6

// speed is the effective speed-up.
func (sc *Scenario) speed() float64 {
	if sc.Speed == 0 {
		return 1
	}
	return sc.Speed
}

func (sc *Scenario) checkTop(ps *problems) {
	line := func(key string) int { return sc.lines[key] }
	switch {
	case sc.Station == "":
		ps.add(line("station"), "station: required (e.g. MH-PUNE-001)")
	case !telemetry.ValidStationID(sc.Station):
		ps.add(line("station"), "station: %q must be %s", sc.Station, telemetry.StationIDRule)
	}
	_, speedSet := sc.lines["speed"]
	if math.IsNaN(sc.Speed) || sc.Speed < 0 || sc.Speed > maxSpeed || (speedSet && sc.Speed == 0) {
		ps.add(line("speed"), "speed: %v must be above 0 and at most 1e6", sc.Speed)
	}
	if len(sc.Probes) == 0 {
		ps.add(line("probes"), "probes: at least one is required")
	}
}

// parseParams resolves names or aliases to canonical parameters, reporting unknown and
// repeated ones.
func parseParams(names []string) ([]telemetry.Param, []string) {
	var (
		out  []telemetry.Param
		errs []string
	)
	for _, n := range names {
		p, err := telemetry.ParseParam(n)
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("%q is not a known parameter", n))
		case slices.Contains(out, p):
			errs = append(errs, fmt.Sprintf("%s is listed twice", p))
		default:
			out = append(out, p)
		}
	}
	return out, errs
}

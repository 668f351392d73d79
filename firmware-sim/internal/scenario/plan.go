package scenario

import (
	"fmt"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/purehealth/purehealth/firmware-sim/internal/coapsim"
	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/firmware-sim/internal/ezo"
	"github.com/purehealth/purehealth/firmware-sim/internal/httpsim"
	"github.com/purehealth/purehealth/firmware-sim/internal/mqttsim"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// plan is a probe resolved into the settings of its simulator, defaults filled in.
type plan struct {
	probe  *Probe
	params []telemetry.Param
	fault  device.Fault // the probe fault, device.FaultNone if none

	serial     ezo.Config
	serialOpts ezo.Options
	coap       coapsim.Config
	http       httpsim.Config
	listen     string // coap and http
	mqtt       mqttsim.Config
}

// Defaults the scenario states itself; the simulators default everything else.
const (
	defaultInterval = 5 * time.Second // coap notifications, as `ph-sim coap`
	minInterval     = 10 * time.Millisecond
	defaultRate     = 1.0 // mqtt messages per second per sensor, as `ph-sim mqtt`
	defaultQoS      = 1
	minRate         = 1e-4 // as `ph-sim mqtt`
)

// probeCheck reports the problems of one probe.
type probeCheck struct {
	ps  *problems
	p   *Probe
	who string
	n   int // problems reported for this probe
}

func (c *probeCheck) bad(key, format string, args ...any) {
	c.n++
	c.ps.add(c.p.lineOf(key), "%s: %s: %s", c.who, key, fmt.Sprintf(format, args...))
}

// plans resolves every probe, or reports every problem of the scenario.
func (sc *Scenario) plans() ([]plan, error) {
	var ps problems
	sc.checkTop(&ps)
	sc.checkPlumes(&ps)
	var (
		out     []plan
		names   = map[string]int{}    // probe name → index
		links   = map[string]string{} // cleaned link path → probe name
		listens = map[string]string{} // "udp host:port" or "tcp host:port" → probe name
	)
	for i := range sc.Probes {
		p := &sc.Probes[i]
		who := fmt.Sprintf("probes[%d]", i)
		if p.Name != "" {
			who += " " + strconv.Quote(p.Name)
		}
		c := &probeCheck{ps: &ps, p: p, who: who}
		switch j, dup := names[p.Name]; {
		case p.Name == "":
			c.bad("name", "required")
		case !probeName.MatchString(p.Name):
			c.bad("name", "%q must be 1 to 64 letters, digits, '.', '-' and '_'", p.Name)
		case dup:
			c.bad("name", "also the name of probes[%d]", j)
		default:
			names[p.Name] = i
		}
		pl := plan{probe: p}
		switch p.Kind {
		case KindSerial:
			sc.planSerial(c, &pl)
			if p.Link != "" {
				clean := filepath.Clean(p.Link)
				if other, dup := links[clean]; dup {
					c.bad("link", "%s is also the link of probe %q", p.Link, other)
				}
				links[clean] = p.Name
			}
		case KindCoAP:
			sc.planCoAP(c, &pl)
		case KindHTTP:
			sc.planHTTP(c, &pl)
		case KindMQTT:
			sc.planMQTT(c, &pl)
		case "":
			c.bad("kind", "required: serial, coap, http or mqtt")
		default:
			c.bad("kind", "%q must be serial, coap, http or mqtt", p.Kind)
		}
		if pl.fault == "" {
			pl.fault = device.FaultNone
		}
		if p.has("fault_at") && !pl.fault.HasOnset() {
			c.bad("fault_at", "only a drift or a stuck value sets in at a time (the other probe faults are on from the start)")
		}
		if pl.listen != "" {
			proto := "udp"
			if p.Kind == KindHTTP {
				proto = "tcp"
			}
			// Port 0 asks for any free port: never a clash.
			if _, port, _ := net.SplitHostPort(pl.listen); port != "0" {
				key := proto + " " + pl.listen
				if other, dup := listens[key]; dup {
					c.bad("listen", "%s is also where probe %q listens", pl.listen, other)
				}
				listens[key] = p.Name
			}
		}
		out = append(out, pl)
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return out, nil
}

func (sc *Scenario) planSerial(c *probeCheck, pl *plan) {
	p := c.p
	var param telemetry.Param
	names := make([]string, 0, len(ezo.Params()))
	for _, q := range ezo.Params() {
		names = append(names, string(q))
	}
	switch prm, err := telemetry.ParseParam(p.Param); {
	case p.Param == "":
		c.bad("param", "required: one of %s", strings.Join(names, ", "))
	case err != nil:
		c.bad("param", "%q is not a known parameter", p.Param)
	case !slices.Contains(ezo.Params(), prm):
		c.bad("param", "%s: no EZO circuit measures it (want %s)", prm, strings.Join(names, ", "))
	default:
		param = prm
	}
	probeFault, circuit, err := ezo.ParseFaults(strings.Join(p.Faults, ","))
	for _, e := range unjoin(err) {
		c.bad("faults", "%v", e)
	}
	if slices.Contains(circuit, ezo.FaultUnplug) && p.Link == "" {
		c.bad("faults", "unplug needs a link: a replugged probe comes back on a new device path, and only the link stays put")
	}
	if p.FaultEvery < 0 || (p.has("fault_every") && p.FaultEvery == 0) {
		c.bad("fault_every", "%d must be at least 1", p.FaultEvery)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"unplug_every", p.UnplugEvery}, {"unplug_for", p.UnplugFor}} {
		if d.v < 0 || (p.has(d.key) && d.v == 0) {
			c.bad(d.key, "%s must be positive", d.v)
		}
	}
	pl.params = []telemetry.Param{param}
	pl.fault = probeFault
	pl.serial = ezo.Config{Param: param, Station: sc.Station, Seed: sc.Seed, ProbeFault: probeFault,
		Faults: circuit, FaultEvery: p.FaultEvery}
	pl.serialOpts = ezo.Options{Link: p.Link, Speed: sc.speed(), UnplugEvery: p.UnplugEvery,
		UnplugFor: p.UnplugFor}
}

// planNetwork checks what CoAP and HTTP probes share: listen, params, format, fault rate,
// and that there is at most one fault.
func (sc *Scenario) planNetwork(c *probeCheck, pl *plan) (format, fault string) {
	p := c.p
	switch host, port, err := net.SplitHostPort(p.Listen); {
	case p.Listen == "":
		c.bad("listen", "required: host:port (port 0: any free port)")
	case err != nil:
		c.bad("listen", "%q must be host:port", p.Listen)
	default:
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			c.bad("listen", "%q: port %q must be a number up to 65535", p.Listen, port)
		} else {
			pl.listen = net.JoinHostPort(host, port)
		}
	}
	pl.params = sc.planParams(c, p.Params, false)
	if p.Format != "" && p.Format != "json" && p.Format != "text" {
		c.bad("format", "%q must be json or text", p.Format)
	}
	if r := p.FaultRate; math.IsNaN(r) || r < 0 || r > 1 || (p.has("fault_rate") && r == 0) {
		c.bad("fault_rate", "%v must be within (0, 1]", r)
	}
	switch len(p.Faults) {
	case 0:
	case 1:
		fault = p.Faults[0]
	default:
		c.bad("faults", "a %s probe has one fault at a time (got %s)", p.Kind, strings.Join(p.Faults, ", "))
	}
	return p.Format, fault
}

// planParams resolves a probe's parameters; an empty list is an error unless optional.
func (sc *Scenario) planParams(c *probeCheck, names List, optional bool) []telemetry.Param {
	if len(names) == 0 {
		if !optional || c.p.has("params") {
			c.bad("params", "at least one is required, e.g. [do, temp]")
		}
		return nil
	}
	params, errs := parseParams(names)
	for _, e := range errs {
		c.bad("params", "%s", e)
	}
	for _, prm := range params {
		if !device.Supported(prm) {
			c.bad("params", "%s: no simulated probe measures it", prm)
		}
	}
	return params
}

func (sc *Scenario) planCoAP(c *probeCheck, pl *plan) {
	p := c.p
	format, faultName := sc.planNetwork(c, pl)
	fault, err := coapsim.ParseFault(faultName)
	if err != nil {
		c.bad("faults", "%v", err)
	}
	if f, err := device.ParseFault(faultName); err == nil {
		pl.fault = f // the others are the transport's, not the probe's
	}
	interval := p.Interval
	switch {
	case interval == 0 && !p.has("interval"):
		interval = defaultInterval
	case interval < minInterval:
		c.bad("interval", "%s is shorter than %s", interval, minInterval)
	}
	pl.coap = coapsim.Config{Station: sc.Station, Seed: sc.Seed, Params: pl.params, Interval: interval,
		Format: coapsim.Format(format), Fault: fault, FaultRate: p.FaultRate}
}

func (sc *Scenario) planHTTP(c *probeCheck, pl *plan) {
	p := c.p
	format, faultName := sc.planNetwork(c, pl)
	fault, err := httpsim.ParseFault(faultName)
	if err != nil {
		c.bad("faults", "%v", err)
	}
	if f, err := device.ParseFault(faultName); err == nil {
		pl.fault = f // the others are the transport's, not the probe's
	}
	if p.Slow < 0 || (p.has("slow") && p.Slow == 0) {
		c.bad("slow", "%s must be positive", p.Slow)
	}
	pl.http = httpsim.Config{Station: sc.Station, Seed: sc.Seed, Params: pl.params,
		Format: httpsim.Format(format), Fault: fault, FaultRate: p.FaultRate, SlowDelay: p.Slow}
}

func (sc *Scenario) planMQTT(c *probeCheck, pl *plan) {
	p := c.p
	before := c.n
	if p.Broker == "" {
		c.bad("broker", "required: host:port of the broker, e.g. 127.0.0.1:1883")
	} else if _, err := mqttsim.ParseBroker(p.Broker); err != nil {
		c.bad("broker", "%v", err)
	}
	pl.params = sc.planParams(c, p.Params, true)
	if len(p.Params) == 0 {
		pl.params = mqttsim.DefaultParams()
	}
	sensors := p.Sensors
	switch {
	case sensors == 0 && !p.has("sensors"):
		sensors = 1
	case sensors < 1:
		c.bad("sensors", "%d must be at least 1", sensors)
	}
	rate := p.Rate
	switch {
	case rate == 0 && !p.has("rate"):
		rate = defaultRate
	case math.IsNaN(rate) || math.IsInf(rate, 0) || rate <= 0:
		// Rate 0 is `ph-sim mqtt`'s load generator (as fast as acknowledgements allow),
		// not a station's sensor.
		c.bad("rate", "%v must be above 0 (messages per second per sensor; 0.1 is one every 10 s)", rate)
	case rate < minRate:
		c.bad("rate", "%v must be at least %v (one message in under three hours)", rate, minRate)
	}
	qos := defaultQoS
	if p.QoS != nil {
		qos = *p.QoS
	}
	if qos < 0 || qos > 2 {
		c.bad("qos", "%d must be 0, 1 or 2", qos)
	}
	protocol := p.Protocol
	switch {
	case protocol == 0 && !p.has("protocol"):
		protocol = mqttsim.MQTT311
	case protocol != mqttsim.MQTT311 && protocol != mqttsim.MQTT5:
		c.bad("protocol", "%d must be 4 (MQTT 3.1.1) or 5", protocol)
	}
	if p.Password != "" && p.Username == "" {
		c.bad("password", "given without a username")
	}
	fault := device.FaultNone
	switch len(p.Faults) {
	case 0:
	case 1:
		f, err := device.ParseFault(p.Faults[0])
		if err != nil {
			c.bad("faults", "%v", err)
		}
		fault = f
	default:
		c.bad("faults", "an mqtt probe has one fault at a time (got %s)", strings.Join(p.Faults, ", "))
	}
	pl.fault = fault
	pl.mqtt = mqttsim.Config{Broker: p.Broker, Station: sc.Station, Sensors: sensors, Rate: rate,
		QoS: byte(min(max(qos, 0), 2)), Protocol: protocol, Username: p.Username, Password: p.Password,
		Params: pl.params, Batch: p.Batch, Fault: fault, Seed: sc.Seed}
	// What the publisher checks beyond the above (a rate too slow to ever publish, say),
	// once the probe's own keys are right.
	if c.n == before && sc.Station != "" {
		for _, e := range unjoin(pl.mqtt.Validate()) {
			c.n++
			c.ps.add(p.Line, "%s: %v", c.who, e)
		}
	}
}

// unjoin lists the errors joined by errors.Join (or err alone; none for nil).
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

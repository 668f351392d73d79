package scenario

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// When is a moment in a scenario: a fixed time (RFC 3339) or a duration after the station
// starts ("90m"), so one file serves a test at a fixed date and a demo that starts now.
// The zero value is "not set".
type When struct {
	At    time.Time     // a fixed time, or zero
	After time.Duration // after the start, when At is zero
	set   bool
}

// UnmarshalYAML reads "2026-01-12T02:00:00Z" or "2h30m".
func (w *When) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a time (RFC 3339) or a duration after the start, e.g. 2h", n.Line)}}
	}
	if t, err := time.Parse(time.RFC3339, n.Value); err == nil {
		*w = When{At: t, set: true}
		return nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil || d < 0 {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is neither a time (RFC 3339) nor a duration after the start such as 2h", n.Line, n.Value)}}
	}
	*w = When{After: d, set: true}
	return nil
}

// IsZero reports whether w was not set.
func (w When) IsZero() bool { return !w.set }

// Resolve is the moment w names for a station that starts at start (zero when not set).
func (w When) Resolve(start time.Time) time.Time {
	switch {
	case !w.set:
		return time.Time{}
	case !w.At.IsZero():
		return w.At
	}
	return start.Add(w.After)
}

// PlumeSpec is a discharge into the station's river, as a scenario gives it: it enters at
// SourceKm (the river's km, at or above the station's) and the current carries it down
// (device.Plume).
type PlumeSpec struct {
	SourceKm float64       `yaml:"source_km"`
	Start    When          `yaml:"start"`    // when the discharge starts at the source (required)
	Duration time.Duration `yaml:"duration"` // how long it discharges (required, at most 10h)
	Severity float64       `yaml:"severity"` // 0–1 at the source (required)
	Speed    float64       `yaml:"speed"`    // flow speed, m/s (default device.DefaultPlumeSpeed)

	line int
}

// UnmarshalYAML decodes a plume strictly, remembering its line.
func (p *PlumeSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain PlumeSpec
	var v plain
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a plume is a mapping (source_km: ..., start: ...)", n.Line)}}
	}
	known := []string{"source_km", "start", "duration", "severity", "speed"}
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !slices.Contains(known, k.Value) {
			errs = append(errs, fmt.Sprintf("line %d: unknown key %q in a plume (a plume takes source_km, start, duration, severity, speed)", k.Line, k.Value))
		}
	}
	if err := n.Decode(&v); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return err
		}
		errs = append(errs, te.Errors...)
	}
	if len(errs) > 0 {
		sortByLine(errs)
		return &yaml.TypeError{Errors: errs}
	}
	*p = PlumeSpec(v)
	p.line = n.Line
	return nil
}

// The bounds of a plume.
const (
	maxPlumeDuration = 10 * time.Hour // as a station's own events
	maxPlumeSpeed    = 5.0            // m/s: faster than any flood on these rivers
)

// checkPlumes reports the problems of the scenario's plumes.
func (sc *Scenario) checkPlumes(ps *problems) {
	if len(sc.Plumes) == 0 {
		return
	}
	st, modelled := device.Lookup(sc.Station)
	if !modelled {
		ps.add(sc.lines["plumes"], "plumes: %s has no river model; plumes need a modelled station (%s)",
			sc.Station, modelledStations())
	}
	for i, p := range sc.Plumes {
		who := fmt.Sprintf("plumes[%d]", i)
		bad := func(key, format string, args ...any) {
			ps.add(p.line, "%s: %s: %s", who, key, fmt.Sprintf(format, args...))
		}
		if modelled && p.SourceKm > st.RiverKm {
			bad("source_km", "%g is below the station (km %g on the %s): the current would never bring it here",
				p.SourceKm, st.RiverKm, st.River)
		}
		if p.Start.IsZero() {
			bad("start", "required: a time (RFC 3339) or a duration after the start, e.g. 2h")
		}
		if p.Duration <= 0 || p.Duration > maxPlumeDuration {
			bad("duration", "%s must be above 0 and at most %s", p.Duration, maxPlumeDuration)
		}
		if !(p.Severity > 0 && p.Severity <= 1) {
			bad("severity", "%v must be within (0, 1]", p.Severity)
		}
		if !(p.Speed >= 0 && p.Speed <= maxPlumeSpeed) {
			bad("speed", "%v must be within [0, %v] m/s (0: %v)", p.Speed, maxPlumeSpeed, device.DefaultPlumeSpeed)
		}
	}
}

func modelledStations() string {
	var ids []string
	for _, s := range device.Stations() {
		ids = append(ids, s.ID)
	}
	return fmt.Sprint(ids)
}

// plumes are the scenario's plumes for a station that starts at start.
func (sc *Scenario) plumes(start time.Time) []device.Plume {
	st := device.ForStation(sc.Station)
	out := make([]device.Plume, 0, len(sc.Plumes))
	for _, p := range sc.Plumes {
		out = append(out, device.Plume{River: st.River, SourceKm: p.SourceKm, Start: p.Start.Resolve(start),
			Duration: p.Duration, Severity: p.Severity, Speed: p.Speed})
	}
	return out
}

// model is the station's river with the scenario's plumes.
func (sc *Scenario) model(start time.Time) *device.Model {
	return device.New(device.ForStation(sc.Station), sc.Seed).WithPlumes(sc.plumes(start)...)
}

// Truth is what really happens at a scenario's station over a period: ground truth for
// scoring the cloud's detectors. It serialises to the truth.json of `ph-sim history`.
type Truth struct {
	Station string  `json:"station"`
	River   string  `json:"river"`
	RiverKm float64 `json:"river_km"`
	// Incidents are the pollution events whose discharge reaches the station in the
	// period, in time order.
	Incidents []Incident `json:"incidents"`
	// Faults are the probes that misbehave, with when they start to.
	Faults []FaultTruth `json:"faults"`
}

// Incident is a pollution event at the station.
type Incident struct {
	// Origin is "own" (a discharge at the station), the id of the station upstream whose
	// discharge travelled here, or "plume" (one of the scenario's).
	Origin   string    `json:"origin"`
	SourceKm float64   `json:"source_km"`
	Start    time.Time `json:"start"` // the discharge's effect here begins
	End      time.Time `json:"end"`   // the discharge ends; the wash-out follows
	// EffectEnd is when the wash-out is below 5 % of its peak.
	EffectEnd time.Time `json:"effect_end"`
	Severity  float64   `json:"severity"` // 0–1, at this station
	// Params are what it changes: DO and pH fall, the others rise.
	Params []telemetry.Param `json:"params"`
}

// FaultTruth is one probe's fault.
type FaultTruth struct {
	Probe  string            `json:"probe"`
	Params []telemetry.Param `json:"params"`
	Fault  device.Fault      `json:"fault"`
	From   time.Time         `json:"from"`
}

// Truth returns the ground truth over [from, to) for a station that starts at start.
func (sc *Scenario) Truth(start, from, to time.Time) (Truth, error) {
	plans, err := sc.plans()
	if err != nil {
		return Truth{}, err
	}
	st := device.ForStation(sc.Station)
	t := Truth{Station: sc.Station, River: st.River, RiverKm: st.RiverKm, Incidents: []Incident{}, Faults: []FaultTruth{}}
	for _, in := range sc.model(start).Incidents(from, to) {
		origin := in.Origin
		if origin == "" {
			origin = "own"
		}
		_, effectEnd := in.Effect()
		t.Incidents = append(t.Incidents, Incident{Origin: origin, SourceKm: in.SourceKm, Start: in.Start,
			End: in.End, EffectEnd: effectEnd, Severity: in.Severity, Params: device.EventParams()})
	}
	for _, pl := range plans {
		if pl.fault == device.FaultNone {
			continue
		}
		origin := pl.probe.FaultAt.Resolve(start)
		if origin.IsZero() {
			origin = start
		}
		var params []telemetry.Param
		for _, ch := range channels(pl) {
			if !slices.Contains(params, ch.param) {
				params = append(params, ch.param)
			}
		}
		t.Faults = append(t.Faults, FaultTruth{Probe: pl.probe.Name, Params: params, Fault: pl.fault, From: origin})
	}
	return t, nil
}

// Reading is one value a probe reports.
type Reading struct {
	Probe string
	// Sensor tells apart the sensors of an MQTT probe that measure the same parameter
	// ("do-2" is sensor 2); empty when the probe has one per parameter.
	Sensor string
	Param  telemetry.Param
	Time   time.Time
	Value  float64
	index  int // of the probe's sensor that reported it (channel.index)
}

// channel is one series a probe reports: its parameter, the probe index its simulator
// gives the device.Probe (which fixes its calibration bias and noise) and its sensor name.
type channel struct {
	param  telemetry.Param
	index  int
	sensor string
}

// channels lists the series of a probe the way its simulator makes them: an EZO circuit is
// probe 0 of each of its parameters; a CoAP or HTTP probe has probe i for its i-th
// parameter; MQTT sensor j measures parameter j mod len(params) as probe j, or every
// parameter as probe j in batch mode.
func channels(pl plan) []channel {
	var out []channel
	switch pl.probe.Kind {
	case KindSerial:
		for _, p := range pl.params {
			out = append(out, channel{param: p})
		}
	case KindMQTT:
		many := pl.mqtt.Sensors > len(pl.params) || (pl.mqtt.Batch && pl.mqtt.Sensors > 1)
		for j := range pl.mqtt.Sensors {
			params := []telemetry.Param{pl.params[j%len(pl.params)]}
			if pl.mqtt.Batch {
				params = pl.params
			}
			for _, p := range params {
				ch := channel{param: p, index: j}
				if many {
					ch.sensor = fmt.Sprintf("%s-%d", p, j)
				}
				out = append(out, ch)
			}
		}
	default:
		for i, p := range pl.params {
			out = append(out, channel{param: p, index: i})
		}
	}
	return out
}

// Record calls fn with every reading the scenario's probes report every step over
// [from, to), for a station that starts at start, probe by probe and parameter by
// parameter, each in time order. It reads the same river and probes the running
// simulators do — the same seed gives the same values — but not through their
// transports: a dropped or garbled reading is simply missing, as the agent would have
// stored nothing, and transport faults (errors, slowness) do not apply. It stops at fn's
// first error.
func (sc *Scenario) Record(start, from, to time.Time, step time.Duration, fn func(Reading) error) error {
	if step <= 0 {
		return fmt.Errorf("step %s must be positive", step)
	}
	plans, err := sc.plans()
	if err != nil {
		return err
	}
	m := sc.model(start)
	for _, pl := range plans {
		if err := record(pl, m, start, from, to, step, fn); err != nil {
			return err
		}
	}
	return nil
}

// record calls fn with every reading of one probe's plan, channel by channel, each in
// time order (see Record).
func record(pl plan, m *device.Model, start, from, to time.Time, step time.Duration, fn func(Reading) error) error {
	origin := pl.probe.FaultAt.Resolve(start)
	if origin.IsZero() {
		origin = start
	}
	for _, ch := range channels(pl) {
		pr := device.NewProbe(m, ch.param, ch.index, pl.fault, origin)
		for t := from; t.Before(to); t = t.Add(step) {
			s := pr.Read(t)
			if !s.OK || s.Garbage {
				continue
			}
			r := Reading{Probe: pl.probe.Name, Sensor: ch.sensor, Param: ch.param, Time: t, Value: s.Value, index: ch.index}
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

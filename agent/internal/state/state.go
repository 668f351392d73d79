// Package state keeps the station's live picture in memory: the latest usable value of
// each parameter, the current WQI computed from fresh inputs only, and the health of every
// sensor (configured probes and sensors that simply publish over MQTT).
//
// A Station is safe for concurrent use. It does no I/O; the pipeline feeds it durable
// readings and the admin API and alerting read it.
package state

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wqi"
)

// SensorSpec is a sensor the station expects to hear from.
type SensorSpec struct {
	Name     string
	Kind     string // serial, coap, http; "mqtt" for sensors discovered on the broker
	Param    telemetry.Param
	Interval time.Duration // expected reporting interval; 0 = learn it from arrivals
}

// DefaultOfflineFactor is how many expected intervals a sensor may stay silent before it
// counts as offline.
const DefaultOfflineFactor = 3

// DefaultFreshness returns how old the latest value of each WQI input may be and still
// feed the index: 2 h for what probes measure continuously, 48 h for BOD and FC, which are
// sampled rarely.
func DefaultFreshness() map[telemetry.Param]time.Duration {
	return map[telemetry.Param]time.Duration{
		telemetry.PH:   2 * time.Hour,
		telemetry.DO:   2 * time.Hour,
		telemetry.Temp: 2 * time.Hour,
		telemetry.BOD:  48 * time.Hour,
		telemetry.FC:   48 * time.Hour,
	}
}

// Options configures a Station.
type Options struct {
	Station     string
	Method      wqi.DOMethod
	PressureAtm float64
	// Freshness bounds the age of a parameter's latest value that may feed the WQI (nil:
	// DefaultFreshness).
	Freshness func(telemetry.Param) time.Duration
	// SourceFreshness overrides Freshness for values of a source, per parameter: a lab's
	// BOD describes the river for weeks, a probe's for hours. nil means
	// DefaultSourceFreshness; an empty map overrides nothing.
	SourceFreshness map[telemetry.Source]map[telemetry.Param]time.Duration
	// OfflineFactor times the expected interval without a reading makes a sensor offline
	// (0: DefaultOfflineFactor).
	OfflineFactor float64
	Expected      []SensorSpec
	// MaxSensors bounds the sensors the station keeps state for, configured ones
	// included: a device inventing names cannot grow the agent's memory. Readings of a
	// new sensor beyond it are refused (telemetry.ErrSensorLimit).
	MaxSensors int
	// ForgetAfter is how long a sensor that is not configured may stay silent before
	// its state is dropped (Forget), making room for others.
	ForgetAfter time.Duration
}

// Defaults of Options: how many sensors the station keeps state for, and how long an
// unconfigured sensor may be silent before it is forgotten.
const (
	DefaultMaxSensors  = 256
	DefaultForgetAfter = 7 * 24 * time.Hour
	// DefaultManualFreshness is how long a lab's BOD or fecal coliform feeds the WQI: the
	// monthly sampling of CPCB's monitoring programme, plus a day.
	DefaultManualFreshness = 31 * 24 * time.Hour
)

// DefaultSourceFreshness is SourceFreshness when none is given: manual BOD and FC stay
// fresh for DefaultManualFreshness, since no field probe measures them (BOD is a 5-day
// test, FC a culture) and a station's index would otherwise be partial between samples.
var DefaultSourceFreshness = map[telemetry.Source]map[telemetry.Param]time.Duration{
	telemetry.SourceManual: {telemetry.BOD: DefaultManualFreshness, telemetry.FC: DefaultManualFreshness},
}

type valueAt struct {
	value  float64
	at     time.Time
	seq    uint64
	sensor string
}

// latestKey names a latest value: one per parameter and source.
type latestKey struct {
	param  telemetry.Param
	source telemetry.Source
}

// keyOf is r's latest key; a reading without a source is a probe's.
func keyOf(r telemetry.Reading) latestKey {
	src := r.Source
	if src == "" {
		src = telemetry.SourceSensor
	}
	return latestKey{r.Param, src}
}

// Sensor is the health of one sensor.
type Sensor struct {
	Name     string
	Kind     string
	Param    telemetry.Param
	Expected bool          // configured, so silence is a fault rather than absence
	Interval time.Duration // expected (configured or learned) reporting interval
	Learned  bool          // Interval was learned from arrivals

	LastReadingAt      time.Time // receive time of the latest reading
	LastValue          float64
	Readings           uint64
	Good, Suspect, Bad uint64
	Errors             uint64            // rejected inputs plus bad readings
	ErrorsByKind       map[string]uint64 // e.g. unit_mismatch, bad, probe_error
	Reconnects         uint64
	RatePerMin         float64 // readings per minute, smoothed
	gaps               []time.Duration
	admitted           time.Time // when the station first heard of it
}

// Online reports whether the sensor reported within OfflineFactor × its interval.
func (s Sensor) Online(now time.Time, factor float64) bool {
	if s.LastReadingAt.IsZero() {
		return false
	}
	if s.Interval <= 0 {
		return true // not enough history to judge yet
	}
	return now.Sub(s.LastReadingAt) <= time.Duration(factor*float64(s.Interval))
}

// Station is the live state. Create it with New.
type Station struct {
	opts Options

	mu      sync.Mutex
	latest  map[latestKey]valueAt
	sensors map[string]*Sensor
	values  map[telemetry.Param]float64 // WQI's scratch space, reused under mu
}

// New returns a Station expecting opts.Expected.
func New(opts Options) *Station {
	if opts.OfflineFactor <= 0 {
		opts.OfflineFactor = DefaultOfflineFactor
	}
	if opts.MaxSensors <= 0 {
		opts.MaxSensors = DefaultMaxSensors
	}
	if opts.ForgetAfter <= 0 {
		opts.ForgetAfter = DefaultForgetAfter
	}
	if opts.Freshness == nil {
		def := DefaultFreshness()
		opts.Freshness = func(p telemetry.Param) time.Duration { return def[p] }
	}
	if opts.SourceFreshness == nil {
		opts.SourceFreshness = DefaultSourceFreshness
	}
	s := &Station{opts: opts, latest: map[latestKey]valueAt{}, sensors: map[string]*Sensor{},
		values: make(map[telemetry.Param]float64, len(wqiParams))}
	for _, e := range opts.Expected {
		s.sensors[e.Name] = &Sensor{Name: e.Name, Kind: e.Kind, Param: e.Param, Expected: true,
			Interval: e.Interval, ErrorsByKind: map[string]uint64{}}
	}
	return s
}

// maxGaps is how many inter-arrival gaps are kept to learn an interval.
const maxGaps = 9

// minLearnedInterval floors a learned interval: a sensor that sent a burst (a device
// uploading its own log) must not be called offline a second after the burst ends.
const minLearnedInterval = 10 * time.Second

// Observe records durable readings, received at now.
func (s *Station) Observe(rs []telemetry.Reading, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		sen := s.sensorLocked(r.Sensor, r.Param)
		if !sen.LastReadingAt.IsZero() {
			gap := now.Sub(sen.LastReadingAt)
			if gap > 0 {
				if sen.gaps == nil {
					sen.gaps = make([]time.Duration, 0, maxGaps)
				}
				if len(sen.gaps) == maxGaps { // shift in place: no reallocation per reading
					sen.gaps = append(sen.gaps[:0], sen.gaps[1:]...)
				}
				sen.gaps = append(sen.gaps, gap)
				// Smooth the rate over about ten arrivals.
				inst := float64(time.Minute) / float64(gap)
				if sen.RatePerMin == 0 {
					sen.RatePerMin = inst
				} else {
					sen.RatePerMin += (inst - sen.RatePerMin) / 10
				}
			}
			if sen.Learned || sen.Interval == 0 {
				if len(sen.gaps) >= 3 {
					sen.Interval = max(median(sen.gaps), minLearnedInterval)
					sen.Learned = true
				}
			}
		}
		sen.LastReadingAt = now
		sen.LastValue = r.Value
		sen.Readings++
		switch r.Quality {
		case telemetry.Good:
			sen.Good++
		case telemetry.Suspect:
			sen.Suspect++
		case telemetry.Bad:
			sen.Bad++
			sen.Errors++
			kind := "bad"
			if r.Flags.Has(telemetry.FlagProbeError) {
				kind = "probe_error"
			}
			sen.ErrorsByKind[kind]++
		}
		if !r.Usable() || r.Flags.Has(telemetry.FlagDownsampled) {
			continue
		}
		// The latest value is the one measured last; a backfilled old reading arriving late
		// does not replace a fresher one. Under an untrusted clock, arrival order (seq) rules.
		k := keyOf(r)
		if cur, ok := s.latest[k]; !ok || r.Seq > cur.seq && (!r.Time.Before(cur.at) ||
			r.Flags.Has(telemetry.FlagTimeUnsynced)) {
			s.latest[k] = valueAt{value: r.Value, at: r.Time, seq: r.Seq, sensor: r.Sensor}
		}
	}
}

// Admit makes room for sensor, received at now: nil if it is known or there is room
// (it is then known), telemetry.ErrSensorLimit if the station keeps MaxSensors already.
func (s *Station) Admit(sensor string, p telemetry.Param, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sensors[sensor]; ok {
		return nil
	}
	if len(s.sensors) >= s.opts.MaxSensors {
		return fmt.Errorf("%w: %d sensors known already", telemetry.ErrSensorLimit, len(s.sensors))
	}
	s.sensorLocked(sensor, p).admitted = now
	return nil
}

// Room says how many more sensors may be admitted.
func (s *Station) Room() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.MaxSensors - len(s.sensors)
}

// Forget drops the state of every sensor that is not configured and has not been heard
// of for ForgetAfter, and returns their names and parameters.
func (s *Station) Forget(now time.Time) []Sensor {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone []Sensor
	for name, sen := range s.sensors {
		last := sen.LastReadingAt
		if last.IsZero() {
			last = sen.admitted
		}
		if sen.Expected || now.Sub(last) < s.opts.ForgetAfter {
			continue
		}
		gone = append(gone, Sensor{Name: sen.Name, Kind: sen.Kind, Param: sen.Param, LastReadingAt: sen.LastReadingAt})
		delete(s.sensors, name)
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].Name < gone[j].Name })
	return gone
}

// RecordError counts an input from sensor that was rejected before it became a reading.
// Only known sensors are counted: a rejected input does not make a sensor known.
func (s *Station) RecordError(sensor string, p telemetry.Param, kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sen, ok := s.sensors[sensor]
	if !ok {
		return
	}
	if sen.Param == "" {
		sen.Param = p
	}
	sen.Errors++
	sen.ErrorsByKind[kind]++
}

// RecordReconnect counts a probe reconnection.
func (s *Station) RecordReconnect(sensor string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sen, ok := s.sensors[sensor]; ok {
		sen.Reconnects++
	}
}

func (s *Station) sensorLocked(name string, p telemetry.Param) *Sensor {
	sen := s.sensors[name]
	if sen == nil {
		sen = &Sensor{Name: name, Kind: "mqtt", Param: p, ErrorsByKind: map[string]uint64{}}
		s.sensors[name] = sen
	}
	if sen.Param == "" {
		sen.Param = p
	}
	return sen
}

// Sensors returns a copy of every sensor's health, sorted by name.
func (s *Station) Sensors() []Sensor {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Sensor, 0, len(s.sensors))
	for _, sen := range s.sensors {
		c := *sen
		c.ErrorsByKind = maps.Clone(sen.ErrorsByKind)
		c.gaps = nil
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// OfflineFactor is the configured factor, for callers judging Sensor.Online.
func (s *Station) OfflineFactor() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.OfflineFactor
}

// SetOfflineFactor changes the factor (0: DefaultOfflineFactor).
func (s *Station) SetOfflineFactor(f float64) {
	if f <= 0 {
		f = DefaultOfflineFactor
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.OfflineFactor = f
}

// Expect makes specs the configured inventory, keeping what the station knows of each
// sensor: a new spec is expected from now on (a sensor already heard of on the broker
// keeps its history and becomes configured), a changed one takes its new kind, parameter
// and interval, and a configured sensor that specs no longer names is dropped, its
// history with it, and returned, so that its alerts can be resolved. Should it keep
// publishing, it is known again as any device is.
func (s *Station) Expect(specs []SensorSpec) (dropped []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := make(map[string]SensorSpec, len(specs))
	for _, e := range specs {
		want[e.Name] = e
	}
	for name, sen := range s.sensors {
		if _, ok := want[name]; sen.Expected && !ok {
			delete(s.sensors, name)
			dropped = append(dropped, name)
		}
	}
	for _, e := range specs {
		sen := s.sensors[e.Name]
		if sen == nil {
			sen = &Sensor{Name: e.Name, ErrorsByKind: map[string]uint64{}, admitted: time.Now()}
			s.sensors[e.Name] = sen
		}
		sen.Kind, sen.Param, sen.Expected = e.Kind, e.Param, true
		if e.Interval > 0 {
			sen.Interval, sen.Learned = e.Interval, false
		}
	}
	sort.Strings(dropped)
	return dropped
}

// Input is one parameter value that fed (or could not feed) the index.
type Input struct {
	Param  telemetry.Param  `json:"param"`
	Value  float64          `json:"value"`
	Time   time.Time        `json:"time"`
	Sensor string           `json:"sensor"`
	Source telemetry.Source `json:"source"`
	Stale  bool             `json:"stale,omitempty"`
}

// FreshnessOf is how old a value of p from src may be and still feed the index.
func (s *Station) FreshnessOf(p telemetry.Param, src telemetry.Source) time.Duration {
	if d, ok := s.opts.SourceFreshness[src][p]; ok {
		return d
	}
	return s.opts.Freshness(p)
}

// RestoreWindow is how far back a restart must look for values of p that may still feed
// the index: the longest freshness of any source.
func (s *Station) RestoreWindow(p telemetry.Param) time.Duration {
	d := s.opts.Freshness(p)
	for _, byParam := range s.opts.SourceFreshness {
		d = max(d, byParam[p])
	}
	return d
}

// WQI computes the index at now from, per parameter, the latest usable value of the most
// trusted source (telemetry.SourcesByTrust) that is within its freshness (FreshnessOf).
// When no source is fresh, the newest value is reported as stale but never used. The
// error is wqi.ErrNoInputs when none of the four index parameters is fresh.
func (s *Station) WQI(now time.Time) (wqi.Result, []Input, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index(s.latest, now, s.values) // wqi.Compute reads values and keeps nothing of it
}

// index is the WQI at now of the values in latest: per parameter, the most trusted
// source whose value is fresh at now. values is scratch space, cleared first. It reads
// nothing of s but its options, which do not change.
func (s *Station) index(latest map[latestKey]valueAt, now time.Time, values map[telemetry.Param]float64) (wqi.Result, []Input, error) {
	clear(values)
	inputs := make([]Input, 0, len(wqiParams))
	for _, p := range wqiParams {
		var in Input
		found := false
		for _, src := range telemetry.SourcesByTrust {
			v, ok := latest[latestKey{p, src}]
			if !ok {
				continue
			}
			cand := Input{Param: p, Value: v.value, Time: v.at, Sensor: v.sensor, Source: src}
			if now.Sub(v.at) <= s.FreshnessOf(p, src) {
				in, found = cand, true
				values[p] = v.value
				break
			}
			if !found && (in.Param == "" || v.at.After(in.Time)) {
				cand.Stale = true
				in = cand
			}
		}
		if in.Param == "" {
			continue
		}
		inputs = append(inputs, in)
	}
	if len(inputs) == 0 {
		inputs = nil // none is nil, not an empty slice
	}
	res, err := wqi.Compute(wqi.Input{Values: values, Method: s.opts.Method, PressureAtm: s.opts.PressureAtm})
	return res, inputs, err
}

// Past is the station's index as it was at the times of readings that arrive too old to
// feed the current one: a sonde's own logger emptied after the link to it was down, a
// device uploading what it measured while the gateway was off. It holds, per parameter
// and source, the newest of those readings by their own time, and computes the index at
// a past instant by the same rule as WQI. A Past is not safe for concurrent use.
type Past struct {
	s      *Station
	latest map[latestKey]valueAt
	values map[telemetry.Param]float64
}

// Past returns an empty Past of s's options.
func (s *Station) Past() *Past {
	return &Past{s: s, latest: map[latestKey]valueAt{}, values: make(map[telemetry.Param]float64, len(wqiParams))}
}

// Observe keeps r if it is its parameter's newest value from its source. Readings that
// are not usable, are hourly means of the buffer's eviction, or carry a time the clock
// did not vouch for are ignored: their time says nothing of when the water was so.
func (p *Past) Observe(r telemetry.Reading) {
	if !r.Usable() || r.Flags.Has(telemetry.FlagDownsampled) || r.Flags.Has(telemetry.FlagTimeUnsynced) {
		return
	}
	k := keyOf(r)
	if cur, ok := p.latest[k]; !ok || r.Time.After(cur.at) {
		p.latest[k] = valueAt{value: r.Value, at: r.Time, seq: r.Seq, sensor: r.Sensor}
	}
}

// WQI is the index at the instant at, from the values observed that are fresh then. at
// is meant to be no earlier than the newest value observed: a later one counts as fresh.
func (p *Past) WQI(at time.Time) (wqi.Result, []Input, error) {
	return p.s.index(p.latest, at, p.values)
}

// wqiParams are the parameters the index is computed from, in the order of its inputs.
var wqiParams = [...]telemetry.Param{telemetry.DO, telemetry.FC, telemetry.PH, telemetry.BOD, telemetry.Temp}

// Latest returns the latest usable value of p, of whatever source measured it last.
func (s *Station) Latest(p telemetry.Param) (float64, time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best valueAt
	found := false
	for _, src := range telemetry.SourcesByTrust {
		if v, ok := s.latest[latestKey{p, src}]; ok && (!found || v.at.After(best.at)) {
			best, found = v, true
		}
	}
	return best.value, best.at, found
}

// Params lists the parameters with a latest value.
func (s *Station) Params() []telemetry.Param {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ps []telemetry.Param
	for k := range s.latest {
		if !slices.Contains(ps, k.param) {
			ps = append(ps, k.param)
		}
	}
	slices.Sort(ps)
	return ps
}

func median(ds []time.Duration) time.Duration {
	var buf [maxGaps]time.Duration
	c := append(buf[:0], ds...)
	slices.Sort(c)
	n := len(c)
	if n%2 == 1 {
		return c[n/2]
	}
	return time.Duration(math.Round(float64(c[n/2-1]+c[n/2]) / 2))
}

// Restore seeds the latest values from stored readings after a restart, without touching
// sensor health. Readings may come in any order.
func (s *Station) Restore(rs []telemetry.Reading) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		if !r.Usable() || r.Flags.Has(telemetry.FlagDownsampled) {
			continue
		}
		k := keyOf(r)
		if cur, ok := s.latest[k]; !ok || r.Seq > cur.seq {
			s.latest[k] = valueAt{value: r.Value, at: r.Time, seq: r.Seq, sensor: r.Sensor}
		}
	}
}

// RestoreLatest seeds the latest value of each WQI input and source from the stored
// readings, so the index survives a restart within its freshness windows (a lab's BOD of
// three weeks ago as much as a probe's pH of a minute ago). newest returns the newest
// stored reading of a parameter from a source measured after since (none, or one).
func (s *Station) RestoreLatest(now time.Time, newest func(p telemetry.Param, src telemetry.Source, since time.Time) ([]telemetry.Reading, error)) error {
	for _, p := range wqiParams {
		for _, src := range telemetry.SourcesByTrust {
			rs, err := newest(p, src, now.Add(-s.FreshnessOf(p, src)))
			if err != nil {
				return fmt.Errorf("restore latest %s from %s: %w", p, src, err)
			}
			s.Restore(rs)
		}
	}
	return nil
}

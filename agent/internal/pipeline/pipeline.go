// Package pipeline is the one path every reading takes, whatever brought it (MQTT, serial,
// CoAP, HTTP): normalize → validate → durable append (which assigns seq) → live state, WQI
// and alerts → local outputs. Forwarding reads the durable log afterwards.
//
// Ingest returns only once the accepted readings are durable, so the broker can acknowledge
// after it. A Pipeline is safe for concurrent use; it owns no goroutine (the agent calls
// Tick periodically).
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/validate"
	"github.com/purehealth/purehealth/shared/wqi"
)

// Store makes readings and WQI history durable.
type Store interface {
	// AppendReadings assigns seqs, in rs, and returns rs once the readings are durable.
	AppendReadings(ctx context.Context, rs []telemetry.Reading) ([]telemetry.Reading, error)
	// AppendWQI stores WQI history points, in the order given, as one unit.
	AppendWQI(ctx context.Context, data ...[]byte) error
}

// Alerts is the part of the alert manager the pipeline drives.
type Alerts interface {
	OnReadings(ctx context.Context, rs []telemetry.Reading)
	OnWQI(ctx context.Context, value float64, class string, partial bool, missing []string)
	Set(ctx context.Context, c alerting.Condition, active bool)
	// ForgetSensor resolves and forgets the alerts of a sensor whose state is dropped.
	ForgetSensor(ctx context.Context, sensor string)
}

// Publisher sends on the local broker.
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// Clock says whether the wall clock is trusted.
type Clock interface {
	Synced() bool
}

// ErrWrongStation rejects an observation addressed to another station.
var ErrWrongStation = errors.New("observation is for another station")

// DefaultHistoryInterval is the least time between stored WQI history points of the same
// class.
const DefaultHistoryInterval = time.Minute

// Options configures a Pipeline.
type Options struct {
	Station string
	// HistoryInterval is the least time between stored WQI history points unless the
	// class changes (0: DefaultHistoryInterval).
	HistoryInterval time.Duration
	Now             func() time.Time
	Logger          *slog.Logger
}

// Deps are the parts the pipeline drives.
type Deps struct {
	Store   Store
	Checker *validate.Checker
	State   *state.Station
	Alerts  Alerts
	Clock   Clock
	Outputs Publisher // may be nil (no local broker)
}

// Pipeline ingests observations. Create it with New.
type Pipeline struct {
	opts Options
	deps Deps
	log  *slog.Logger

	accepted, rejected, storeFailures, bad, suspect atomic.Uint64
	sensorLimited                                   atomic.Uint64 // readings refused by the sensor limit
	storeFailing, sensorLimit                       atomic.Bool
	rate                                            rateMeter

	wqiMu       sync.Mutex
	current     Current // valid when haveCurrent; a value, not a pointer: replaced per reading
	haveCurrent bool
	unpublished bool // current changed but is not yet published (publishEvery)
	lastPublish time.Time
	lastHistory time.Time
	lastClass   string

	late lateIndex // WQI history at the times of readings that arrive too old (past.go)
}

// Current is the station's latest WQI.
type Current struct {
	Result   wqi.Result
	Inputs   []state.Input
	Computed time.Time
}

// New returns a Pipeline.
func New(opts Options, deps Deps) *Pipeline {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HistoryInterval <= 0 {
		opts.HistoryInterval = DefaultHistoryInterval
	}
	return &Pipeline{opts: opts, deps: deps, log: opts.Logger}
}

// storeFailure is the condition raised while readings cannot be made durable.
var storeFailure = alerting.Condition{
	Key: "store:failure", Rule: alerting.RuleStoreFailure, Severity: alerting.Critical,
	Message: "Readings cannot be stored: the buffer database rejects writes (disk full or failing SD card?); devices are not acknowledged and will resend",
}

// sensorLimit is the condition raised when readings of new sensors are refused because
// the station keeps as many sensors as it may (state.Options.MaxSensors).
var sensorLimit = alerting.Condition{
	Key: "sensors:limit", Rule: alerting.RuleSensorLimit, Severity: alerting.Warning,
	Message: "Readings of new sensors are refused: the station keeps as many sensors as it may (a device inventing sensor names?); silent sensors are forgotten after a while",
}

// Ingest normalizes, grades and durably stores obs. It returns one entry per observation
// in rejected (nil where it was stored), or a nil rejected when every observation was
// stored, and a non-nil error only when nothing could be stored. The per-reading alert rules still run on what was received when storing fails,
// so the station keeps alerting on a dying disk.
func (p *Pipeline) Ingest(ctx context.Context, obs []telemetry.Observation) ([]error, error) {
	buf := readingsPool.Get().(*[]telemetry.Reading)
	rejected, stored, err := p.ingest(ctx, obs, (*buf)[:0])
	clear(stored) // the readings' strings belong to the caller's observations
	if cap(stored) <= maxPooledReadings {
		*buf = stored[:0]
		readingsPool.Put(buf)
	}
	return rejected, err
}

// readingsPool holds the arrays Ingest builds readings in: a station's brokers and
// probes call it for every message.
var readingsPool = sync.Pool{New: func() any { return new([]telemetry.Reading) }}

// maxPooledReadings is the largest array readingsPool keeps.
const maxPooledReadings = 1024

// ErrSample rejects a lab or field sample that lacks what a sample needs.
var ErrSample = errors.New("invalid sample")

// AddSample takes a lab or field-kit result entered at the station (source manual)
// through the same path as every reading: normalized, graded by its ranges (a sample is
// days old by nature and belongs to no probe's series), stored durably with its
// provenance and forwarded like any reading. o.Time, when the sample was taken, is
// required; o.Sensor defaults to the lab's name, else "manual". It returns the stored
// reading with its seq.
func (p *Pipeline) AddSample(ctx context.Context, o telemetry.Observation) (telemetry.Reading, error) {
	if o.Time.IsZero() {
		return telemetry.Reading{}, fmt.Errorf("%w: the time it was taken is required", ErrSample)
	}
	o.Source = telemetry.SourceManual
	if o.Sensor == "" {
		o.Sensor = "manual"
		if o.Sample != nil && o.Sample.Lab != "" {
			o.Sensor = o.Sample.Lab
		}
	}
	if o.Sample.IsZero() {
		o.Sample = nil
	}
	rejected, stored, err := p.ingest(ctx, []telemetry.Observation{o}, nil)
	if err != nil {
		return telemetry.Reading{}, err
	}
	if rejected != nil {
		return telemetry.Reading{}, fmt.Errorf("%w: %w", ErrSample, rejected[0])
	}
	return stored[0], nil
}

// ingest takes obs through validation into the store, building the readings in rs (an
// empty array to reuse, or nil), and returns them stored.
func (p *Pipeline) ingest(ctx context.Context, obs []telemetry.Observation, rs []telemetry.Reading) ([]error, []telemetry.Reading, error) {
	now := p.opts.Now()
	synced := p.deps.Clock.Synced()
	var rejected []error // made at the first refusal: nearly every call has none
	reject := func(i int, err error) {
		if rejected == nil {
			rejected = make([]error, len(obs))
		}
		rejected[i] = err
		p.rejected.Add(1)
	}
	rs = slices.Grow(rs[:0], len(obs))
	limited := false
	for i, o := range obs {
		if err := p.deps.State.Admit(o.Sensor, "", now); err != nil {
			reject(i, err)
			p.sensorLimited.Add(1)
			limited = true
			continue
		}
		r, err := p.reading(o, now)
		if err != nil {
			reject(i, err)
			p.deps.State.RecordError(o.Sensor, r.Param, rejectKind(err))
			continue
		}
		p.deps.Checker.Check(&r, validate.Input{Received: now, ClockSynced: synced, ProbeError: o.ProbeError,
			Sample: r.Source == telemetry.SourceManual})
		rs = append(rs, r)
	}
	if limited && !p.sensorLimit.Swap(true) {
		p.log.Warn("readings of new sensors refused: the station keeps as many sensors as it may",
			"sensors", p.deps.State.Room())
		p.deps.Alerts.Set(ctx, sensorLimit, true)
	}
	if len(rs) == 0 {
		return rejected, nil, nil
	}

	stored, err := p.deps.Store.AppendReadings(ctx, rs)
	if err != nil {
		p.storeFailures.Add(1)
		if !p.storeFailing.Swap(true) {
			p.log.Error("store readings failed; not acknowledging", "err", err)
		}
		p.deps.Alerts.Set(ctx, storeFailure, true)
		p.deps.Alerts.OnReadings(ctx, rs)
		return rejected, nil, fmt.Errorf("store readings: %w", err)
	}
	if p.storeFailing.Swap(false) {
		p.log.Info("store accepts readings again")
		p.deps.Alerts.Set(ctx, storeFailure, false)
	}

	for _, r := range stored {
		switch r.Quality {
		case telemetry.Bad:
			p.bad.Add(1)
		case telemetry.Suspect:
			p.suspect.Add(1)
		}
	}
	p.accepted.Add(uint64(len(stored)))
	p.deps.State.Observe(stored, now)
	p.deps.Alerts.OnReadings(ctx, stored)
	if slices.ContainsFunc(stored, func(r telemetry.Reading) bool { return feedsWQI(r.Param) }) {
		p.updateWQI(ctx, now)
		p.observeLate(ctx, stored, now)
	}
	return rejected, stored, nil
}

func (p *Pipeline) reading(o telemetry.Observation, now time.Time) (telemetry.Reading, error) {
	if o.Station != "" && o.Station != p.opts.Station {
		return telemetry.Reading{}, fmt.Errorf("%w: %q (this is %s)", ErrWrongStation, o.Station, p.opts.Station)
	}
	param, v, unit, err := telemetry.Normalize(o.Param, o.Value, o.Unit)
	if err != nil {
		return telemetry.Reading{}, err
	}
	src := o.Source
	if src == "" {
		src = telemetry.SourceSensor
	}
	if !src.Valid() {
		return telemetry.Reading{Param: param}, fmt.Errorf("source %q is not one of sensor, api, satellite, model, manual", src)
	}
	if o.Sample != nil {
		if src != telemetry.SourceManual {
			return telemetry.Reading{Param: param}, fmt.Errorf("%w: sample provenance on a reading of source %s", ErrSample, src)
		}
		if field, err := o.Sample.Check(); err != nil {
			return telemetry.Reading{Param: param}, fmt.Errorf("%w: %s: %w", ErrSample, field, err)
		}
	}
	sensor := o.Sensor
	if sensor == "" {
		sensor = string(param)
	}
	t := o.Time
	if t.IsZero() {
		t = now
	}
	return telemetry.Reading{
		Station: p.opts.Station, Sensor: sensor, Param: param, Value: v, Unit: unit,
		Time: t.UTC(), Source: src, Sample: o.Sample,
	}, nil
}

func rejectKind(err error) string {
	switch {
	case errors.Is(err, telemetry.ErrUnknownParam):
		return "unknown_param"
	case errors.Is(err, telemetry.ErrUnitMismatch):
		return "unit_mismatch"
	case errors.Is(err, telemetry.ErrNotFinite):
		return "not_finite"
	case errors.Is(err, ErrWrongStation):
		return "wrong_station"
	}
	return "invalid"
}

func feedsWQI(p telemetry.Param) bool {
	switch p {
	case telemetry.DO, telemetry.FC, telemetry.PH, telemetry.BOD, telemetry.Temp:
		return true
	}
	return false
}

// Tick recomputes the WQI so that inputs that went stale drop out even when no reading
// arrives, publishes a change that was held back by the publish interval, and stores the
// index at the newest late reading once late readings stop arriving (past.go). The agent
// calls it every few seconds.
func (p *Pipeline) Tick(ctx context.Context) {
	now := p.opts.Now()
	for _, s := range p.deps.State.Forget(now) {
		p.deps.Checker.ForgetSensor(p.opts.Station, s.Name)
		p.deps.Alerts.ForgetSensor(ctx, s.Name)
		p.log.Info("silent sensor forgotten", "sensor", s.Name, "param", s.Param, "last_reading", s.LastReadingAt)
	}
	if p.sensorLimit.Load() && p.deps.State.Room() > 0 {
		p.sensorLimit.Store(false)
		p.deps.Alerts.Set(ctx, sensorLimit, false)
	}
	p.updateWQI(ctx, now)
	p.flushLate(ctx, now)
	p.wqiMu.Lock()
	defer p.wqiMu.Unlock()
	if p.unpublished && p.haveCurrent {
		p.emitWQI(ctx, &p.current, now)
	}
}

// publishEvery bounds how often a changing WQI is published and serialized: noisy probes
// change it with nearly every reading, and a retained message per reading would cost more
// than storing the reading. A class change or a parameter going missing goes out at once.
const publishEvery = time.Second

// updateWQI recomputes the index from fresh inputs. A change is fed to the alert rule at
// once and published (retained) and stored as history subject to publishEvery and the
// history interval.
func (p *Pipeline) updateWQI(ctx context.Context, now time.Time) {
	p.wqiMu.Lock()
	defer p.wqiMu.Unlock()
	res, inputs, err := p.deps.State.WQI(now)
	if err != nil && !errors.Is(err, wqi.ErrNoInputs) {
		// An input outside the index's domain (a temperature the DO equation does not
		// cover): compute without temperature rather than show nothing.
		res, inputs, err = p.wqiWithoutTemp(now)
	}
	if err != nil {
		if p.haveCurrent {
			p.current, p.haveCurrent, p.unpublished = Current{}, false, false
			p.publishWQI(nil, now)
			p.log.Info("WQI unavailable: no fresh index inputs")
		}
		return
	}
	prev, hadPrev := p.current, p.haveCurrent
	p.current, p.haveCurrent = Current{Result: res, Inputs: inputs, Computed: now}, true
	if hadPrev && math.Abs(prev.Result.WQI-res.WQI) < 0.005 && prev.Result.Class == res.Class &&
		slices.Equal(prev.Result.Missing, res.Missing) {
		return
	}
	missing := make([]string, len(res.Missing))
	for i, m := range res.Missing {
		missing[i] = string(m)
	}
	p.deps.Alerts.OnWQI(ctx, res.WQI, res.Class, res.Partial, missing)
	shapeChanged := !hadPrev || prev.Result.Class != res.Class || !slices.Equal(prev.Result.Missing, res.Missing)
	if !shapeChanged && now.Sub(p.lastPublish) < publishEvery {
		p.unpublished = true
		return
	}
	p.emitWQI(ctx, &p.current, now)
}

// emitWQI publishes cur and stores it as history when the class changed or the history
// interval has passed. Callers hold wqiMu.
func (p *Pipeline) emitWQI(ctx context.Context, cur *Current, now time.Time) {
	p.lastPublish, p.unpublished = now, false
	payload := p.publishWQI(cur, now)
	if payload == nil || (cur.Result.Class == p.lastClass && now.Sub(p.lastHistory) < p.opts.HistoryInterval) {
		return
	}
	if err := p.deps.Store.AppendWQI(ctx, payload); err != nil {
		p.log.Warn("store WQI history", "err", err)
		return
	}
	p.lastHistory, p.lastClass = now, cur.Result.Class
}

func (p *Pipeline) wqiWithoutTemp(now time.Time) (wqi.Result, []state.Input, error) {
	_, inputs, _ := p.deps.State.WQI(now)
	values := map[telemetry.Param]float64{}
	for _, in := range inputs {
		if !in.Stale && in.Param != telemetry.Temp {
			values[in.Param] = in.Value
		}
	}
	res, err := wqi.Compute(wqi.Input{Values: values})
	return res, inputs, err
}

// WQIMessage is what the agent publishes on purehealth/<station>/wqi and stores as history.
type WQIMessage struct {
	Station string        `json:"station"`
	Time    time.Time     `json:"time"`
	Inputs  []state.Input `json:"inputs,omitempty"`
	Reason  string        `json:"reason,omitempty"`
	Result  *wqi.Result   `json:"-"`
}

// MarshalJSON flattens the index result into the message.
func (m WQIMessage) MarshalJSON() ([]byte, error) {
	type head WQIMessage
	h, err := json.Marshal(head(m))
	if err != nil {
		return nil, err
	}
	if m.Result == nil {
		return h, nil
	}
	r, err := json.Marshal(m.Result)
	if err != nil {
		return nil, err
	}
	// {"station":..} + {"wqi":..} → {"station":..,"wqi":..}
	return append(append(h[:len(h)-1:len(h)-1], ','), r[1:]...), nil
}

// UnmarshalJSON reads what MarshalJSON writes. Result is set when the message carries an
// index value, and nil for a message that gives only a Reason.
func (m *WQIMessage) UnmarshalJSON(data []byte) error {
	type head WQIMessage
	var h head
	if err := json.Unmarshal(data, &h); err != nil {
		return err
	}
	var index struct {
		WQI *float64 `json:"wqi"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		return err
	}
	*m = WQIMessage(h)
	if index.WQI != nil {
		var r wqi.Result
		if err := json.Unmarshal(data, &r); err != nil {
			return err
		}
		m.Result = &r
	}
	return nil
}

func (p *Pipeline) publishWQI(cur *Current, now time.Time) []byte {
	msg := WQIMessage{Station: p.opts.Station, Time: now.UTC()}
	if cur == nil {
		msg.Reason = "no fresh values of do, fc, ph or bod"
	} else {
		msg.Result, msg.Inputs = &cur.Result, cur.Inputs
	}
	payload, err := json.Marshal(msg)
	if err != nil {
		p.log.Error("encode WQI", "err", err)
		return nil
	}
	if p.deps.Outputs != nil {
		if err := p.deps.Outputs.Publish("purehealth/"+p.opts.Station+"/wqi", payload, true, 1); err != nil {
			p.log.Warn("publish WQI", "err", err)
		}
	}
	return payload
}

// CurrentWQI returns the latest computed index, or nil when there is none.
func (p *Pipeline) CurrentWQI() *Current {
	p.wqiMu.Lock()
	defer p.wqiMu.Unlock()
	if !p.haveCurrent {
		return nil
	}
	c := p.current
	return &c
}

// Stats are the pipeline's counters since start.
type Stats struct {
	Accepted, Rejected, StoreFailures, Bad, Suspect uint64
	SensorLimited                                   uint64 // of Rejected: new sensors beyond the limit
	StoreFailing                                    bool
}

// Stats returns the counters.
func (p *Pipeline) Stats() Stats {
	return Stats{
		Accepted: p.accepted.Load(), Rejected: p.rejected.Load(),
		StoreFailures: p.storeFailures.Load(), Bad: p.bad.Load(), Suspect: p.suspect.Load(),
		SensorLimited: p.sensorLimited.Load(), StoreFailing: p.storeFailing.Load(),
	}
}

package alerting

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/shared/alertrule"
	"github.com/purehealth/purehealth/shared/criteria"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Journal keeps the alert transitions in order (the buffer's alerts stream, which the
// uplink forwards): the Manager appends to it, and Recent reads it back.
type Journal interface {
	// AppendEvent stores a transition together with the writes to the Records it makes
	// (nil deletes a key), in one transaction: all of it or none.
	AppendEvent(ctx context.Context, event []byte, records map[string][]byte) error
	RecentEvents(limit int) ([][]byte, error) // newest first
}

// Records keeps the open alerts and the next alert id between runs, by key: New loads
// them, the Manager keeps them current. Put with a nil value deletes the key.
type Records interface {
	Put(ctx context.Context, key string, value []byte) error
	Get(key string) ([]byte, error)
	Scan(prefix string, fn func(key string, value []byte) error) error
}

// Store is what New needs: *spool.Spool, through the daemon's adapter, is both.
type Store interface {
	Journal
	Records
}

// Publisher sends a message on the local broker.
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// Notifier receives every event; it must not block (see Hooks).
type Notifier interface {
	Notify(Event)
}

// Errors returned by Ack.
var (
	ErrNotFound = errors.New("no such alert")
	ErrResolved = errors.New("alert is already resolved")
)

// Defaults of Options.
const (
	// DefaultDeadband is the hysteresis margin: DO ≥ 5 resolves at 5.1, pH ≤ 8.5 at 8.33.
	DefaultDeadband   = 0.02
	DefaultClearCount = 3
	DefaultBadCount   = 3
)

// Options configures a Manager. New fills in a zero ClearCount, BadCount or OfflineFactor
// with its default; a zero Deadband is a setting (no margin), so callers that want the
// default margin start from DefaultOptions.
type Options struct {
	Station       string
	Class         criteria.Class
	RuleSets      []string // "bathing", "drinking-reference"
	Deadband      float64  // hysteresis margin as a fraction of a limit
	ClearCount    int      // consecutive clean evaluations that resolve an alert
	BadCount      int      // consecutive bad readings that open a sensor fault
	OfflineFactor float64  // see state.Options.OfflineFactor
	Logger        *slog.Logger
	Now           func() time.Time
}

// DefaultOptions returns the defaults of every tunable field.
func DefaultOptions() Options {
	return Options{Deadband: DefaultDeadband, ClearCount: DefaultClearCount, BadCount: DefaultBadCount,
		OfflineFactor: state.DefaultOfflineFactor}
}

func (o *Options) ensureDefaults() {
	def := DefaultOptions()
	if o.ClearCount <= 0 {
		o.ClearCount = def.ClearCount
	}
	if o.BadCount <= 0 {
		o.BadCount = def.BadCount
	}
	if !(o.OfflineFactor >= 1) {
		o.OfflineFactor = def.OfflineFactor
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Manager evaluates the rules and runs the alert lifecycle.
type Manager struct {
	opts    Options
	limits  map[telemetry.Param][]limitRule
	journal Journal
	records Records
	pub     Publisher
	notify  Notifier
	log     *slog.Logger
	topic   string
	start   time.Time

	mu      sync.Mutex
	tracker *alertrule.Tracker
	active  map[string]*Alert // by key
	// keys holds the per-reading conditions' keys of each sensor seen, so that a reading
	// builds none (ForgetSensor drops a sensor's).
	keys    map[string]*readingKeys
	nextID  uint64
	pending []pendingWrite
	failed  uint64 // persist failures
}

type pendingWrite struct {
	event []byte
	id    uint64
	alert []byte // nil: the alert is resolved, delete its record
}

const (
	keyActivePrefix = "alert/active/"
	keyNextID       = "alert/next-id"
)

// New loads the open alerts from store so that they resolve, rather than open again, after
// a restart.
func New(opts Options, store Store, pub Publisher, notify Notifier) (*Manager, error) {
	opts.ensureDefaults()
	m := &Manager{
		opts:    opts,
		limits:  map[telemetry.Param][]limitRule{},
		journal: store,
		records: store,
		pub:     pub,
		notify:  notify,
		log:     opts.Logger,
		topic:   "purehealth/" + opts.Station + "/alerts",
		start:   opts.Now(),
		tracker: alertrule.NewTracker(),
		active:  map[string]*Alert{},
		keys:    map[string]*readingKeys{},
		nextID:  1,
	}
	limits, err := limitsOf(opts.Class, opts.RuleSets)
	if err != nil {
		return nil, err
	}
	m.limits = limits

	if b, err := store.Get(keyNextID); err != nil {
		return nil, fmt.Errorf("load alert ids: %w", err)
	} else if b != nil {
		if m.nextID, err = strconv.ParseUint(string(b), 10, 64); err != nil {
			return nil, fmt.Errorf("load alert ids: %q: %w", b, err)
		}
	}
	err = store.Scan(keyActivePrefix, func(_ string, v []byte) error {
		var a Alert
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("decode stored alert: %w", err)
		}
		m.active[a.Key] = &a
		m.tracker.Restore(a.Key)
		m.nextID = max(m.nextID, a.ID+1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load active alerts: %w", err)
	}
	return m, nil
}

// limitsOf is the threshold limits of a station class and the optional rule sets, by
// parameter.
func limitsOf(class criteria.Class, ruleSets []string) (map[telemetry.Param][]limitRule, error) {
	limits := criteria.DesignatedBestUse(class)
	for _, set := range ruleSets {
		switch set {
		case "bathing":
			limits = append(limits, criteria.Bathing()...)
		case "drinking-reference":
			limits = append(limits, criteria.DrinkingReference()...)
		default:
			return nil, fmt.Errorf("unknown rule set %q", set)
		}
	}
	out := map[telemetry.Param][]limitRule{}
	for _, l := range limits {
		out[l.Param] = append(out[l.Param], limitRule{Limit: l, key: limitKey(l)})
	}
	return out, nil
}

// limitRule is a threshold limit with its condition key.
type limitRule struct {
	criteria.Limit
	key string
}

// limitKey is the condition key of a threshold limit.
func limitKey(l criteria.Limit) string {
	return "threshold:" + l.Set + ":" + string(l.Param) + ":" + l.Bound.String()
}

// Reconfigure applies new thresholds while the Manager runs: the class, the rule sets,
// the deadband and the counts of opts (its other fields are ignored; zero counts mean
// their defaults, as in New). A threshold alert whose limit the new settings no longer
// have is resolved, saying so; the others carry on, judged by the new settings from the
// next reading.
func (m *Manager) Reconfigure(ctx context.Context, opts Options) error {
	limits, err := limitsOf(opts.Class, opts.RuleSets)
	if err != nil {
		return err
	}
	opts.ensureDefaults()
	kept := map[string]bool{}
	for _, ls := range limits {
		for _, l := range ls {
			kept[l.key] = true
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opts.Class, m.opts.RuleSets, m.opts.Deadband = opts.Class, opts.RuleSets, opts.Deadband
	m.opts.ClearCount, m.opts.BadCount, m.opts.OfflineFactor = opts.ClearCount, opts.BadCount, opts.OfflineFactor
	m.limits = limits
	for _, a := range m.activeLocked() {
		if a.Rule == RuleThreshold && !kept[a.Key] {
			m.tracker.Forget(a.Key)
			m.resolveLocked(ctx, a, "its limit is no longer configured")
		}
	}
	return nil
}

// activeLocked is the active alerts in id order, so that what is resolved together is
// resolved in a stable order. Callers hold m.mu.
func (m *Manager) activeLocked() []*Alert {
	out := make([]*Alert, 0, len(m.active))
	for _, a := range m.active {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *Alert) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// OnReadings evaluates the per-reading rules for durable (or, when the store failed,
// received) readings.
//
// Most readings leave every rule where it was: a clear verdict for a condition that never
// fired. Those are told apart first (quiet), without building a Condition, its message
// closure or its key; the broker runs this for every publish.
func (m *Manager) OnReadings(ctx context.Context, rs []telemetry.Reading) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range rs {
		r := &rs[i]
		keys := m.keys[r.Sensor]
		if keys == nil {
			keys = newReadingKeys(r.Sensor)
			m.keys[r.Sensor] = keys
		}
		m.evalSensorFault(ctx, r, keys)
		if !r.Usable() {
			continue
		}
		m.evalAnomaly(ctx, r, keys)
		for _, l := range m.limits[r.Param] {
			m.evalLimit(ctx, r, l)
		}
	}
}

// readingKeys are the keys of a sensor's per-reading conditions (sensorKeys).
type readingKeys struct{ bad, flatline, anomaly string }

func newReadingKeys(sensor string) *readingKeys {
	return &readingKeys{bad: sensorKeys.bad(sensor), flatline: sensorKeys.flatline(sensor), anomaly: sensorKeys.anomaly(sensor)}
}

// quiet reports whether verdict v for the condition key changes nothing: clear, and the
// condition never fired. Callers hold m.mu.
func (m *Manager) quiet(key string, v alertrule.Verdict) bool {
	return v == alertrule.Clear && !m.tracker.Tracks(key)
}

func (m *Manager) evalSensorFault(ctx context.Context, r *telemetry.Reading, keys *readingKeys) {
	verdict := alertrule.Clear
	if r.Quality == telemetry.Bad {
		verdict = alertrule.Violating
	}
	if !m.quiet(keys.bad, verdict) {
		r := *r // the message is written later, if at all
		v := r.Value
		bad := Condition{
			Key: keys.bad, Rule: RuleSensorFault,
			Param: string(r.Param), Sensor: r.Sensor, Severity: Warning, Value: &v,
			Describe: func() string {
				return fmt.Sprintf("Sensor %s sent %d bad readings in a row (latest %g, %s)",
					r.Sensor, m.opts.BadCount, r.Value, strings.Join(r.Flags.Names(), ", "))
			},
		}
		m.observe(ctx, bad, verdict, alertrule.Policy{OpenAfter: m.opts.BadCount, ClearAfter: m.opts.ClearCount})
	}

	verdict = alertrule.Clear
	if r.Flags.Has(telemetry.FlagFlatline) {
		verdict = alertrule.Violating
	}
	if !m.quiet(keys.flatline, verdict) {
		r := *r
		v := r.Value
		flat := Condition{
			Key: keys.flatline, Rule: RuleSensorFault,
			Param: string(r.Param), Sensor: r.Sensor, Severity: Warning, Value: &v,
			Describe: func() string {
				return fmt.Sprintf("Sensor %s is stuck at %g %s (flatline)", r.Sensor, r.Value, r.Unit)
			},
		}
		m.observe(ctx, flat, verdict, alertrule.Policy{ClearAfter: 1})
	}
}

func (m *Manager) evalAnomaly(ctx context.Context, r *telemetry.Reading, keys *readingKeys) {
	verdict := alertrule.Clear
	if r.Flags.Has(telemetry.FlagSpike) {
		verdict = alertrule.Violating
	}
	if m.quiet(keys.anomaly, verdict) {
		return
	}
	rc := *r
	v := rc.Value
	c := Condition{
		Key: keys.anomaly, Rule: RuleAnomaly, Param: string(rc.Param), Sensor: rc.Sensor,
		Severity: Warning, Value: &v,
		Describe: func() string {
			return fmt.Sprintf("%s changed abruptly to %g %s against its recent history (sensor %s)",
				rc.Param, rc.Value, rc.Unit, rc.Sensor)
		},
	}
	m.observe(ctx, c, verdict, alertrule.Policy{ClearAfter: m.opts.ClearCount})
}

func (m *Manager) evalLimit(ctx context.Context, r *telemetry.Reading, l limitRule) {
	verdict := alertrule.Holding
	var severity Severity
	switch {
	case l.Violated(r.Value):
		verdict = alertrule.Violating
		severity = Severity(l.SeverityFor(r.Value))
	case l.Cleared(r.Value, m.opts.Deadband):
		verdict = alertrule.Clear
	}
	if m.quiet(l.key, verdict) {
		return
	}
	v, lim, limit := r.Value, l.Value, l.Limit
	c := Condition{
		Key:  l.key,
		Rule: RuleThreshold, Param: string(r.Param), Sensor: r.Sensor, Severity: severity,
		Value: &v, Limit: &lim, Describe: func() string { return limit.Message(v, "") },
	}
	m.observe(ctx, c, verdict, alertrule.Policy{ClearAfter: m.opts.ClearCount})
}

// WQI class boundaries (science §1): below 50 is class C "Bad" or worse.
const (
	wqiBadBelow      = 50.0
	wqiCriticalBelow = 38.0
	wqiClearMargin   = 2.0 // points above 50 before a bad-class alert resolves
)

// OnWQI evaluates the bad-class rule for a freshly computed index.
func (m *Manager) OnWQI(ctx context.Context, value float64, class string, partial bool, missing []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, lim := value, wqiBadBelow
	describe := func() string {
		msg := fmt.Sprintf("WQI %.1f is class %s", value, class)
		if partial {
			msg += fmt.Sprintf(" (partial: %s missing)", strings.Join(missing, ", "))
		}
		return msg
	}
	c := Condition{Key: "wqi:class", Rule: RuleWQI, Param: "wqi", Severity: Warning,
		Value: &v, Limit: &lim, Describe: describe}
	if value < wqiCriticalBelow {
		c.Severity = Critical
	}
	m.observe(ctx, c, alertrule.Band(value, wqiBadBelow, wqiClearMargin, false),
		alertrule.Policy{ClearAfter: m.opts.ClearCount})
}

// Set raises (active) or clears an externally detected condition such as a full buffer.
func (m *Manager) Set(ctx context.Context, c Condition, active bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	verdict := alertrule.Clear
	if active {
		verdict = alertrule.Violating
	}
	m.observe(ctx, c, verdict, alertrule.Policy{})
}

// Tick evaluates the time-driven rules and retries writes that failed. The caller calls it
// periodically (every few seconds) with the sensors' health.
func (m *Manager) Tick(ctx context.Context, sensors []state.Sensor) {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.retryPending(ctx)

	factor := m.opts.OfflineFactor
	type judged struct {
		s       state.Sensor
		offline bool
		silent  time.Duration
	}
	var js []judged
	for _, s := range sensors {
		if s.Interval <= 0 {
			continue // no expectation yet: nothing to judge
		}
		limit := time.Duration(factor * float64(s.Interval))
		since := s.LastReadingAt
		if since.IsZero() {
			since = m.start // a configured probe that never reported since start-up
		}
		silent := now.Sub(since)
		js = append(js, judged{s: s, offline: silent > limit, silent: silent})
	}
	allSilent := len(js) >= 2
	for _, j := range js {
		allSilent = allSilent && j.offline
	}

	stationCond := Condition{Key: "station:silent", Rule: RuleStationSilent, Param: "",
		Severity: Critical, Message: fmt.Sprintf("All %d sensors are silent", len(js))}
	if allSilent {
		m.observe(ctx, stationCond, alertrule.Violating, alertrule.Policy{})
	} else {
		m.observe(ctx, stationCond, alertrule.Clear, alertrule.Policy{})
	}
	for _, j := range js {
		key := sensorKeys.offline(j.s.Name)
		if allSilent {
			// One station alert replaces the per-sensor ones.
			if a := m.active[key]; a != nil {
				m.tracker.Forget(key)
				m.resolveLocked(ctx, a, "superseded by the station-silent alert")
			}
			continue
		}
		what := fmt.Sprintf("has sent nothing for %s", j.silent.Round(time.Second))
		if j.s.LastReadingAt.IsZero() {
			what = fmt.Sprintf("has not reported since start-up %s ago", j.silent.Round(time.Second))
		}
		c := Condition{Key: key, Rule: RuleOffline, Param: string(j.s.Param), Sensor: j.s.Name,
			Severity: Warning,
			Message:  fmt.Sprintf("Sensor %s %s (expected every %s)", j.s.Name, what, j.s.Interval)}
		verdict := alertrule.Clear
		if j.offline {
			verdict = alertrule.Violating
		}
		m.observe(ctx, c, verdict, alertrule.Policy{})
	}
}

// sensorKeys names the conditions kept per sensor; ForgetSensor drops all of them.
var sensorKeys = struct {
	bad, flatline, anomaly, offline func(sensor string) string
}{
	bad:      func(s string) string { return "sensor_fault:" + s + ":bad" },
	flatline: func(s string) string { return "sensor_fault:" + s + ":flatline" },
	anomaly:  func(s string) string { return "anomaly:" + s },
	offline:  func(s string) string { return "offline:" + s },
}

// ForgetSensor resolves the active alerts of a sensor whose state the station dropped
// (silent and not configured for long) and forgets their conditions, so that per-sensor
// state does not outlive the sensor.
func (m *Manager) ForgetSensor(ctx context.Context, sensor string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, sensor)
	for _, key := range []string{sensorKeys.bad(sensor), sensorKeys.flatline(sensor),
		sensorKeys.anomaly(sensor), sensorKeys.offline(sensor)} {
		m.tracker.Forget(key)
		if a := m.active[key]; a != nil {
			m.resolveLocked(ctx, a, "sensor forgotten after a long silence")
		}
	}
}

// observe applies one verdict. Callers hold m.mu.
func (m *Manager) observe(ctx context.Context, c Condition, v alertrule.Verdict, p alertrule.Policy) {
	switch m.tracker.Observe(c.Key, v, p) {
	case alertrule.Open:
		m.openLocked(ctx, c)
	case alertrule.Resolve:
		if a := m.active[c.Key]; a != nil {
			m.resolveLocked(ctx, a, "")
		}
	default:
		a := m.active[c.Key]
		if a != nil && v == alertrule.Violating && c.Severity.Rank() > a.Severity.Rank() {
			a.Severity = c.Severity
			a.Message = c.message()
			a.Value = c.Value
			m.emitLocked(ctx, Escalated, a, m.opts.Now().UTC())
		}
	}
}

func (m *Manager) openLocked(ctx context.Context, c Condition) {
	if c.Severity == "" {
		c.Severity = Warning
	}
	now := m.opts.Now().UTC()
	a := &Alert{
		ID: m.nextID, Station: m.opts.Station, Rule: c.Rule, Key: c.Key, Param: c.Param,
		Sensor: c.Sensor, Severity: c.Severity, State: Active, OpenedAt: now,
		Message: c.message(), Value: c.Value, Limit: c.Limit,
	}
	m.nextID++
	m.active[c.Key] = a
	m.emitLocked(ctx, Opened, a, now)
}

func (m *Manager) resolveLocked(ctx context.Context, a *Alert, why string) {
	now := m.opts.Now().UTC()
	a.State = Resolved
	a.ResolvedAt = &now
	if why != "" {
		a.Message += " (" + why + ")"
	}
	delete(m.active, a.Key)
	m.emitLocked(ctx, ResolvedTr, a, now)
}

// emitLocked persists, publishes, hooks and logs one transition that happened at at. The
// caller passes the time it wrote into the alert (OpenedAt, ResolvedAt, AcknowledgedAt), so
// that an event's time and the alert's own record of that transition are the same instant.
func (m *Manager) emitLocked(ctx context.Context, tr Transition, a *Alert, at time.Time) {
	ev := Event{Transition: tr, Time: at, Alert: *a}
	evJSON, err := json.Marshal(ev)
	if err != nil {
		m.log.Error("encode alert event", "err", err)
		return
	}
	w := pendingWrite{event: evJSON, id: a.ID}
	if a.State != Resolved {
		if w.alert, err = json.Marshal(a); err != nil {
			m.log.Error("encode alert", "err", err)
			return
		}
	}
	m.pending = append(m.pending, w)
	m.retryPending(ctx)

	if m.pub != nil {
		if err := m.pub.Publish(m.topic, evJSON, false, 1); err != nil {
			m.log.Warn("publish alert", "id", a.ID, "err", err)
		}
	}
	if m.notify != nil {
		m.notify.Notify(ev)
	}
	level := slog.LevelWarn
	if a.Severity == Critical && tr != ResolvedTr {
		level = slog.LevelError
	} else if tr == ResolvedTr || tr == AcknowledgedTr {
		level = slog.LevelInfo
	}
	m.log.Log(ctx, level, "alert "+string(tr), "id", a.ID, "rule", a.Rule, "key", a.Key,
		"severity", a.Severity, "message", a.Message)
}

// retryPending writes queued events in order and stops at the first failure, keeping the
// rest for the next attempt.
func (m *Manager) retryPending(ctx context.Context) {
	for len(m.pending) > 0 {
		w := m.pending[0]
		if err := m.persist(ctx, w); err != nil {
			m.failed++
			m.log.Error("persist alert event; will retry", "id", w.id, "queued", len(m.pending), "err", err)
			return
		}
		m.pending = m.pending[1:]
	}
	m.pending = nil
}

// persist stores a transition with the alert's current record and the next id, in one
// transaction, so that a retry after a failure cannot append the transition twice. (A
// write whose outcome was never learned, its context ended, may still have been stored
// and be retried: the cloud stores a transition once by its alert, transition and time.)
func (m *Manager) persist(ctx context.Context, w pendingWrite) error {
	return m.journal.AppendEvent(ctx, w.event, map[string][]byte{
		keyActivePrefix + strconv.FormatUint(w.id, 10): w.alert,
		keyNextID: []byte(strconv.FormatUint(m.nextID, 10)),
	})
}

// Ack acknowledges an active alert. Acknowledging twice is not an error.
func (m *Manager) Ack(ctx context.Context, id uint64) (Alert, error) {
	return m.AckFrom(ctx, id, LocalAck, time.Time{})
}

// LocalAck is who acknowledged an alert at the station (ph-agent alerts ack).
const LocalAck = "station"

// AckFrom acknowledges an alert on behalf of by, at at (zero: now): an acknowledgement
// made elsewhere keeps its time and author, so that the station and the cloud end in
// one state. Like Ack it is idempotent; a resolved or unknown alert is an error.
func (m *Manager) AckFrom(ctx context.Context, id uint64, by string, at time.Time) (Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.active {
		if a.ID != id {
			continue
		}
		if a.State == Acknowledged {
			return *a, nil
		}
		now := m.opts.Now().UTC()
		if at.IsZero() || at.After(now) {
			at = now
		}
		at = at.UTC()
		a.State = Acknowledged
		a.AcknowledgedAt = &at
		a.AcknowledgedBy = by
		m.emitLocked(ctx, AcknowledgedTr, a, now)
		return *a, nil
	}
	if id > 0 && id < m.nextID {
		return Alert{}, fmt.Errorf("alert %d: %w", id, ErrResolved)
	}
	return Alert{}, fmt.Errorf("alert %d: %w", id, ErrNotFound)
}

// Active returns the open alerts, newest first.
func (m *Manager) Active() []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Alert, 0, len(m.active))
	for _, a := range m.active {
		out = append(out, *a)
	}
	sortNewestFirst(out)
	return out
}

// Recent returns up to limit alerts, open and resolved, newest first, folded from the
// stored events.
func (m *Manager) Recent(limit int) ([]Alert, error) {
	raw, err := m.journal.RecentEvents(limit * 4)
	if err != nil {
		return nil, fmt.Errorf("read alert events: %w", err)
	}
	byID := map[uint64]Alert{}
	for _, b := range raw { // newest first: the first seen per id is its latest state
		var ev Event
		if err := json.Unmarshal(b, &ev); err != nil {
			return nil, fmt.Errorf("decode alert event: %w", err)
		}
		if _, seen := byID[ev.ID]; !seen {
			byID[ev.ID] = ev.Alert
		}
	}
	for _, a := range m.Active() {
		byID[a.ID] = a
	}
	out := make([]Alert, 0, len(byID))
	for _, a := range byID {
		out = append(out, a)
	}
	sortNewestFirst(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// PersistFailures counts event writes that failed (and were queued for retry).
func (m *Manager) PersistFailures() (failed uint64, queued int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failed, len(m.pending)
}

func sortNewestFirst(as []Alert) {
	slices.SortFunc(as, func(a, b Alert) int {
		if c := b.OpenedAt.Compare(a.OpenedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
}

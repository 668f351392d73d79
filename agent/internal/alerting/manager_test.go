package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/shared/criteria"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// memStore is a tiny in-memory Store; fail makes every write return an error.
type memStore struct {
	mu     sync.Mutex
	events [][]byte
	kv     map[string][]byte
	fail   bool
}

func newMemStore() *memStore { return &memStore{kv: map[string][]byte{}} }

var errDisk = errors.New("disk on fire")

func (s *memStore) AppendEvent(_ context.Context, data []byte, puts map[string][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errDisk
	}
	s.events = append(s.events, append([]byte(nil), data...))
	for k, v := range puts {
		if v == nil {
			delete(s.kv, k)
		} else {
			s.kv[k] = append([]byte(nil), v...)
		}
	}
	return nil
}

func (s *memStore) RecentEvents(limit int) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for i := len(s.events) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, s.events[i])
	}
	return out, nil
}

func (s *memStore) Put(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errDisk
	}
	if value == nil {
		delete(s.kv, key)
	} else {
		s.kv[key] = append([]byte(nil), value...)
	}
	return nil
}

func (s *memStore) Get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kv[key], nil
}

func (s *memStore) Scan(prefix string, fn func(string, []byte) error) error {
	s.mu.Lock()
	keys := []string{}
	for k := range s.kv {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := map[string][]byte{}
	for _, k := range keys {
		vals[k] = s.kv[k]
	}
	s.mu.Unlock()
	for _, k := range keys {
		if err := fn(k, vals[k]); err != nil {
			return err
		}
	}
	return nil
}

func (s *memStore) transitions(t *testing.T) []string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.events {
		var ev Event
		require.NoError(t, json.Unmarshal(b, &ev))
		out = append(out, string(ev.Transition)+" "+ev.Key)
	}
	return out
}

// pubRecorder records what would go out on the local broker.
type pubRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (p *pubRecorder) Publish(topic string, payload []byte, retain bool, qos byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, topic)
	return nil
}

type fixture struct {
	m     *Manager
	store *memStore
	pub   *pubRecorder
	now   *time.Time
}

func newFixture(t *testing.T, store *memStore, opts Options) fixture {
	t.Helper()
	now := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	f := fixture{store: store, pub: &pubRecorder{}, now: &now}
	if opts.Station == "" {
		opts.Station = "MH-PUNE-001"
	}
	if opts.Class == "" {
		opts.Class = criteria.ClassB
	}
	opts.Now = func() time.Time { return *f.now }
	m, err := New(opts, store, f.pub, nil)
	require.NoError(t, err)
	f.m = m
	return f
}

func rd(sensor string, p telemetry.Param, v float64) telemetry.Reading {
	return telemetry.Reading{Station: "MH-PUNE-001", Sensor: sensor, Param: p, Value: v, Quality: telemetry.Good}
}

func TestThresholdLifecycleWithHysteresis(t *testing.T) {
	f := newFixture(t, newMemStore(), Options{ClearCount: 2, Deadband: DefaultDeadband})
	ctx := t.Context()
	// DO ≥ 5 for class B; deadband 2 % → clears at ≥ 5.1.
	for _, v := range []float64{6, 4.8, 4.5, 5.05, 4.9, 5.05, 5.2, 5.3, 5.4} {
		f.m.OnReadings(ctx, []telemetry.Reading{rd("do-1", telemetry.DO, v)})
	}
	assert.Equal(t, []string{
		"opened threshold:cpcb-class-B:do:min",
		"resolved threshold:cpcb-class-B:do:min",
	}, f.store.transitions(t), "one alert for the whole episode, resolved after two clear readings")
	assert.Empty(t, f.m.Active())
	assert.Len(t, f.pub.msgs, 2)
	assert.Equal(t, "purehealth/MH-PUNE-001/alerts", f.pub.msgs[0])
}

// TestZeroOptionsMeanTheDefaults builds a Manager without counts, as a caller without a
// configuration would: it must behave as the configuration's defaults say, opening a
// sensor fault after three bad readings and resolving after three clean ones.
func TestZeroOptionsMeanTheDefaults(t *testing.T) {
	f := newFixture(t, newMemStore(), Options{})
	ctx := t.Context()
	bad := rd("ph-1", telemetry.PH, 15)
	bad.Quality, bad.Flags = telemetry.Bad, telemetry.FlagOutOfRange
	good := rd("ph-1", telemetry.PH, 7.2)
	for range DefaultBadCount - 1 {
		f.m.OnReadings(ctx, []telemetry.Reading{bad})
	}
	assert.Empty(t, f.store.transitions(t), "fewer bad readings than the default count open nothing")
	f.m.OnReadings(ctx, []telemetry.Reading{bad})
	assert.Equal(t, []string{"opened sensor_fault:ph-1:bad"}, f.store.transitions(t))
	for range DefaultClearCount - 1 {
		f.m.OnReadings(ctx, []telemetry.Reading{good})
	}
	assert.Len(t, f.m.Active(), 1, "fewer clean readings than the default count resolve nothing")
	f.m.OnReadings(ctx, []telemetry.Reading{good})
	assert.Empty(t, f.m.Active())
	assert.Equal(t, 3, DefaultBadCount, "the documented default")
	assert.Equal(t, 3, DefaultClearCount, "the documented default")
}

// TestZeroDeadband: a zero deadband is a setting, not "the default": a value back at the
// limit itself resolves the alert.
func TestZeroDeadband(t *testing.T) {
	f := newFixture(t, newMemStore(), Options{ClearCount: 1, Deadband: 0})
	ctx := t.Context()
	f.m.OnReadings(ctx, []telemetry.Reading{rd("do-1", telemetry.DO, 4.8)})
	f.m.OnReadings(ctx, []telemetry.Reading{rd("do-1", telemetry.DO, 5.0)}) // DO ≥ 5 for class B
	assert.Equal(t, []string{
		"opened threshold:cpcb-class-B:do:min",
		"resolved threshold:cpcb-class-B:do:min",
	}, f.store.transitions(t))

	f = newFixture(t, newMemStore(), Options{ClearCount: 1, Deadband: DefaultDeadband})
	f.m.OnReadings(ctx, []telemetry.Reading{rd("do-1", telemetry.DO, 4.8)})
	f.m.OnReadings(ctx, []telemetry.Reading{rd("do-1", telemetry.DO, 5.0)})
	assert.Equal(t, []string{"opened threshold:cpcb-class-B:do:min"}, f.store.transitions(t),
		"with the default margin 5.0 only holds the alert")
}

func TestEscalation(t *testing.T) {
	f := newFixture(t, newMemStore(), Options{})
	ctx := t.Context()
	f.m.OnReadings(ctx, []telemetry.Reading{rd("do-1", telemetry.DO, 4.5)})
	f.m.OnReadings(ctx, []telemetry.Reading{rd("do-1", telemetry.DO, 2.0)}) // below half the minimum
	f.m.OnReadings(ctx, []telemetry.Reading{rd("do-1", telemetry.DO, 1.5)})
	assert.Equal(t, []string{
		"opened threshold:cpcb-class-B:do:min",
		"escalated threshold:cpcb-class-B:do:min",
	}, f.store.transitions(t))
	active := f.m.Active()
	require.Len(t, active, 1)
	assert.Equal(t, Critical, active[0].Severity)
}

func TestBadReadingsDoNotFeedThresholdsButFault(t *testing.T) {
	f := newFixture(t, newMemStore(), Options{BadCount: 3})
	ctx := t.Context()
	bad := rd("ph-1", telemetry.PH, 15)
	bad.Quality = telemetry.Bad
	bad.Flags = telemetry.FlagOutOfRange
	f.m.OnReadings(ctx, []telemetry.Reading{bad, bad})
	assert.Empty(t, f.store.transitions(t), "two bad readings are not yet a fault, and never a threshold")
	f.m.OnReadings(ctx, []telemetry.Reading{bad})
	assert.Equal(t, []string{"opened sensor_fault:ph-1:bad"}, f.store.transitions(t))
}

func TestFlatlineAndAnomaly(t *testing.T) {
	f := newFixture(t, newMemStore(), Options{ClearCount: 1})
	ctx := t.Context()
	flat := rd("ph-1", telemetry.PH, 7.2)
	flat.Flags = telemetry.FlagFlatline
	spike := rd("do-1", telemetry.DO, 9)
	spike.Flags = telemetry.FlagSpike
	f.m.OnReadings(ctx, []telemetry.Reading{flat, spike, rd("ph-1", telemetry.PH, 7.3), rd("do-1", telemetry.DO, 7)})
	assert.Equal(t, []string{
		"opened sensor_fault:ph-1:flatline",
		"opened anomaly:do-1",
		"resolved sensor_fault:ph-1:flatline",
		"resolved anomaly:do-1",
	}, f.store.transitions(t))
}

func TestWQIRule(t *testing.T) {
	f := newFixture(t, newMemStore(), Options{ClearCount: 1})
	ctx := t.Context()
	f.m.OnWQI(ctx, 55, "B", false, nil)
	f.m.OnWQI(ctx, 45, "C", false, nil)
	f.m.OnWQI(ctx, 44, "C", false, nil)
	f.m.OnWQI(ctx, 30, "D/E", true, []string{"bod"})
	f.m.OnWQI(ctx, 51, "B", false, nil) // inside the 2-point band: holds
	f.m.OnWQI(ctx, 52.5, "B", false, nil)
	assert.Equal(t, []string{"opened wqi:class", "escalated wqi:class", "resolved wqi:class"}, f.store.transitions(t))
}

func sensorAt(name string, interval time.Duration, last time.Time) state.Sensor {
	return state.Sensor{Name: name, Param: telemetry.PH, Interval: interval, LastReadingAt: last}
}

func TestOfflineAndStationSilent(t *testing.T) {
	f := newFixture(t, newMemStore(), Options{OfflineFactor: 3})
	ctx := t.Context()
	t0 := *f.now
	sensors := []state.Sensor{
		sensorAt("ph-1", time.Minute, t0),
		sensorAt("do-1", time.Minute, t0),
		sensorAt("new", 0, time.Time{}), // no expectation yet: never judged
	}
	*f.now = t0.Add(2 * time.Minute)
	f.m.Tick(ctx, sensors)
	assert.Empty(t, f.store.transitions(t))

	sensors[1].LastReadingAt = t0.Add(3 * time.Minute)
	*f.now = t0.Add(4 * time.Minute)
	f.m.Tick(ctx, sensors)
	assert.Equal(t, []string{"opened offline:ph-1"}, f.store.transitions(t))

	*f.now = t0.Add(10 * time.Minute) // now both are silent: one station alert replaces them
	f.m.Tick(ctx, sensors)
	f.m.Tick(ctx, sensors)
	assert.Equal(t, []string{
		"opened offline:ph-1",
		"opened station:silent",
		"resolved offline:ph-1",
	}, f.store.transitions(t))
	require.Len(t, f.m.Active(), 1)
	assert.Equal(t, RuleStationSilent, f.m.Active()[0].Rule)

	sensors[0].LastReadingAt = *f.now
	sensors[1].LastReadingAt = *f.now
	f.m.Tick(ctx, sensors)
	assert.Equal(t, "resolved station:silent", f.store.transitions(t)[3])
	assert.Empty(t, f.m.Active())
}

func TestExpectedProbeThatNeverReports(t *testing.T) {
	f := newFixture(t, newMemStore(), Options{OfflineFactor: 3})
	sensors := []state.Sensor{{Name: "ph-1", Expected: true, Interval: time.Minute}}
	*f.now = f.now.Add(4 * time.Minute)
	f.m.Tick(t.Context(), sensors)
	active := f.m.Active()
	require.Len(t, active, 1)
	assert.Contains(t, active[0].Message, "has not reported since start-up")
}

func TestAckAndRestart(t *testing.T) {
	store := newMemStore()
	f := newFixture(t, store, Options{})
	ctx := t.Context()
	f.m.OnReadings(ctx, []telemetry.Reading{rd("ph-1", telemetry.PH, 9.2)})
	active := f.m.Active()
	require.Len(t, active, 1)
	id := active[0].ID

	a, err := f.m.Ack(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, Acknowledged, a.State)
	_, err = f.m.Ack(ctx, id)
	assert.NoError(t, err, "acknowledging twice is fine")
	_, err = f.m.Ack(ctx, 999)
	assert.ErrorIs(t, err, ErrNotFound)

	// A restarted manager knows the open alert: a further violation does not open a second.
	g := newFixture(t, store, Options{})
	g.m.OnReadings(ctx, []telemetry.Reading{rd("ph-1", telemetry.PH, 9.3)})
	require.Len(t, g.m.Active(), 1)
	assert.Equal(t, Acknowledged, g.m.Active()[0].State)
	for range 3 {
		g.m.OnReadings(ctx, []telemetry.Reading{rd("ph-1", telemetry.PH, 7.5)})
	}
	assert.Empty(t, g.m.Active())
	_, err = g.m.Ack(ctx, id)
	assert.ErrorIs(t, err, ErrResolved)

	g.m.OnReadings(ctx, []telemetry.Reading{rd("ph-1", telemetry.PH, 9.5)})
	assert.Greater(t, g.m.Active()[0].ID, id, "ids are never reused after a restart")

	recent, err := g.m.Recent(10)
	require.NoError(t, err)
	require.Len(t, recent, 2)
	assert.Equal(t, Active, recent[0].State)
	assert.Equal(t, Resolved, recent[1].State)
}

func TestFailingStoreStillAlertsAndRetries(t *testing.T) {
	store := newMemStore()
	store.fail = true
	f := newFixture(t, store, Options{})
	ctx := t.Context()
	f.m.OnReadings(ctx, []telemetry.Reading{rd("do-1", telemetry.DO, 2)})
	assert.Len(t, f.m.Active(), 1, "the alert is open although it could not be stored")
	assert.Len(t, f.pub.msgs, 1, "and it went out on the local broker")
	failed, queued := f.m.PersistFailures()
	assert.Equal(t, uint64(1), failed)
	assert.Equal(t, 1, queued)

	store.mu.Lock()
	store.fail = false
	store.mu.Unlock()
	f.m.Tick(ctx, nil)
	_, queued = f.m.PersistFailures()
	assert.Equal(t, 0, queued)
	assert.Equal(t, []string{"opened threshold:cpcb-class-B:do:min"}, store.transitions(t))
}

func TestHooksRunWithEventAndTimeout(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	script := filepath.Join(dir, "hook.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\necho \"$PH_ALERT_TRANSITION $PH_ALERT_RULE $PH_ALERT_SEVERITY\" >> "+out+"\ncat >> "+out+"\n"), 0o755))
	slow := filepath.Join(dir, "slow.sh")
	require.NoError(t, os.WriteFile(slow, []byte("#!/bin/sh\nsleep 30\n"), 0o755))

	hooks := NewHooks([]Hook{
		{Command: []string{slow}, Timeout: 100 * time.Millisecond},
		{Command: []string{script}, On: []Transition{Opened}, Timeout: 5 * time.Second},
	}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- hooks.Run(ctx) }()

	now := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	m, err := New(Options{Station: "S", Class: criteria.ClassB, Now: func() time.Time { return now }},
		newMemStore(), nil, hooks)
	require.NoError(t, err)
	m.OnReadings(ctx, []telemetry.Reading{rd("do-1", telemetry.DO, 2)})
	for range 3 {
		m.OnReadings(ctx, []telemetry.Reading{rd("do-1", telemetry.DO, 7)})
	}
	require.Eventually(t, func() bool { return hooks.Stats().Ran >= 3 }, 10*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	b, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b), "opened threshold critical\n{"), "got %q", b)
	assert.NotContains(t, string(b), "resolved threshold", "the hook subscribed to opened only")
	assert.Equal(t, uint64(2), hooks.Stats().Failed, "the slow hook timed out for both events")
}

func TestHookQueueNeverBlocks(t *testing.T) {
	hooks := NewHooks([]Hook{{Command: []string{"true"}, Timeout: time.Second}}, nil)
	for range hookQueue + 10 {
		hooks.Notify(Event{}) // nobody runs the queue: must not block
	}
	assert.Equal(t, uint64(10), hooks.Stats().Dropped)
}

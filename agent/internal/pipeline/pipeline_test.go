package pipeline

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/internal/testclock"
	"github.com/purehealth/purehealth/shared/criteria"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/validate"
	"github.com/purehealth/purehealth/shared/wqi"
)

// store puts the real spool behind the pipeline's Store.
type store struct{ s *spool.Spool }

func (st store) AppendReadings(ctx context.Context, rs []telemetry.Reading) ([]telemetry.Reading, error) {
	return st.s.AppendReadings(ctx, rs)
}

func (st store) AppendWQI(ctx context.Context, data ...[]byte) error {
	_, err := st.s.AppendRecords(ctx, spool.WQI, data)
	return err
}

type outbox struct {
	mu       sync.Mutex
	byTopic  map[string][][]byte
	retained map[string]bool
}

func (o *outbox) Publish(topic string, payload []byte, retain bool, qos byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.byTopic[topic] = append(o.byTopic[topic], payload)
	o.retained[topic] = retain
	return nil
}

func (o *outbox) last(topic string) []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	msgs := o.byTopic[topic]
	if len(msgs) == 0 {
		return nil
	}
	return msgs[len(msgs)-1]
}

type syncedClock bool

func (c syncedClock) Synced() bool { return bool(c) }

type harness struct {
	p      *Pipeline
	spool  *spool.Spool
	faults *spool.Faults
	alerts *alerting.Manager
	out    *outbox
	clock  *testclock.Clock // the spool's own goroutine reads it while a test moves it
}

func newHarness(t *testing.T, synced bool, configure ...func(*state.Options)) harness {
	t.Helper()
	h := harness{faults: &spool.Faults{}, out: &outbox{byTopic: map[string][][]byte{}, retained: map[string]bool{}},
		clock: testclock.New(time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC))}
	clock := h.clock.Now
	sp, err := spool.Open(spool.Options{Path: filepath.Join(t.TempDir(), "agent.db"), Faults: h.faults, Now: clock})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, sp.Close()) })
	h.spool = sp
	so := state.Options{
		Station: "MH-PUNE-001", Method: wqi.BensonKrause, PressureAtm: 1,
		Freshness: func(telemetry.Param) time.Duration { return time.Hour },
	}
	for _, c := range configure {
		c(&so)
	}
	st := state.New(so)
	h.alerts, err = alerting.New(alerting.Options{Station: "MH-PUNE-001", Class: criteria.ClassB, Now: clock},
		sp, h.out, nil)
	require.NoError(t, err)
	h.p = New(Options{Station: "MH-PUNE-001", Now: clock}, Deps{
		Store: store{sp}, Checker: validate.New(validate.Config{}), State: st,
		Alerts: h.alerts, Clock: syncedClock(synced), Outputs: h.out,
	})
	return h
}

func obs(param string, v float64, unit string) telemetry.Observation {
	return telemetry.Observation{Param: param, Value: v, Unit: unit}
}

func TestIngestNormalizesGradesAndStores(t *testing.T) {
	h := newHarness(t, true)
	ctx := t.Context()
	rejected, err := h.p.Ingest(ctx, []telemetry.Observation{
		obs("pH", 7.4, ""),
		obs("Temperature", 77, "°F"),
		obs("salinity", 3, "psu"),
		obs("ph", 15, ""),
		{Station: "MH-NASHIK-001", Param: "do", Value: 6},
		obs("EC", 1.2, "mS/cm"),
	})
	require.NoError(t, err)
	require.Len(t, rejected, 6)
	assert.NoError(t, rejected[0])
	assert.NoError(t, rejected[1])
	assert.ErrorIs(t, rejected[2], telemetry.ErrUnknownParam)
	assert.NoError(t, rejected[3], "out of range is stored as bad, not rejected")
	assert.ErrorIs(t, rejected[4], ErrWrongStation)
	assert.NoError(t, rejected[5])

	rs, err := h.spool.Readings(spool.Query{})
	require.NoError(t, err)
	require.Len(t, rs, 4)
	// Newest first.
	assert.Equal(t, telemetry.Conductivity, rs[0].Param)
	assert.Equal(t, 1200.0, rs[0].Value)
	assert.Equal(t, telemetry.Bad, rs[1].Quality)
	assert.Equal(t, telemetry.Temp, rs[2].Param)
	assert.Equal(t, 25.0, rs[2].Value)
	assert.Equal(t, "degC", rs[2].Unit)
	assert.Equal(t, "ph", rs[3].Sensor, "sensor defaults to the parameter")
	assert.Equal(t, h.clock.Now(), rs[3].Time, "no timestamp: the receive time")
	assert.Equal(t, telemetry.SourceSensor, rs[3].Source)
	for i := 1; i < len(rs); i++ {
		assert.Greater(t, rs[i-1].Seq, rs[i].Seq)
	}
	s := h.p.Stats()
	assert.Equal(t, uint64(4), s.Accepted)
	assert.Equal(t, uint64(2), s.Rejected)
	assert.Equal(t, uint64(1), s.Bad)
}

func TestUnsyncedClockFlagsReadings(t *testing.T) {
	h := newHarness(t, false)
	_, err := h.p.Ingest(t.Context(), []telemetry.Observation{obs("ph", 7, "")})
	require.NoError(t, err)
	rs, err := h.spool.Readings(spool.Query{})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.True(t, rs[0].Flags.Has(telemetry.FlagTimeUnsynced))
}

func TestWQIPublishedRetainedAndStored(t *testing.T) {
	h := newHarness(t, true)
	ctx := t.Context()
	_, err := h.p.Ingest(ctx, []telemetry.Observation{obs("ph", 7.5, ""), obs("do", 7, "mg/L")})
	require.NoError(t, err)
	cur := h.p.CurrentWQI()
	require.NotNil(t, cur)
	assert.True(t, cur.Result.Partial)

	var msg map[string]any
	require.NoError(t, json.Unmarshal(h.out.last("purehealth/MH-PUNE-001/wqi"), &msg))
	assert.Equal(t, "MH-PUNE-001", msg["station"])
	assert.Equal(t, true, msg["partial"])
	assert.Equal(t, []any{"fc", "bod"}, msg["missing"])
	assert.True(t, h.out.retained["purehealth/MH-PUNE-001/wqi"])

	_, err = h.p.Ingest(ctx, []telemetry.Observation{obs("bod", 2, ""), obs("fc", 100, "")})
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(h.out.last("purehealth/MH-PUNE-001/wqi"), &msg))
	assert.Equal(t, false, msg["partial"])
	assert.Equal(t, "A", msg["class"])

	history := func() int {
		recs, err := h.spool.LastRecords(spool.WQI, 10)
		require.NoError(t, err)
		return len(recs)
	}
	assert.Equal(t, 1, history(), "the second index (same class, same minute) is not stored")
	_, err = h.p.Ingest(ctx, []telemetry.Observation{obs("fc", 200000, ""), obs("bod", 40, "")})
	require.NoError(t, err)
	assert.Equal(t, 2, history(), "a class change is stored at once")
	h.clock.Advance(time.Minute)
	_, err = h.p.Ingest(ctx, []telemetry.Observation{obs("ph", 7.6, "")})
	require.NoError(t, err)
	assert.Equal(t, 3, history(), "and a point every history interval")
}

func TestStaleInputsDropOut(t *testing.T) {
	h := newHarness(t, true)
	ctx := t.Context()
	_, err := h.p.Ingest(ctx, []telemetry.Observation{obs("ph", 7.5, ""), obs("do", 7, "")})
	require.NoError(t, err)
	h.clock.Advance(2 * time.Hour) // past the one-hour freshness window
	h.p.Tick(ctx)
	assert.Nil(t, h.p.CurrentWQI(), "no index from stale inputs")
	var msg map[string]any
	require.NoError(t, json.Unmarshal(h.out.last("purehealth/MH-PUNE-001/wqi"), &msg))
	assert.Contains(t, msg["reason"], "no fresh values")
}

func TestStoreFailureRejectsButAlerts(t *testing.T) {
	h := newHarness(t, true)
	ctx := t.Context()
	h.faults.FailCommits(true)
	_, err := h.p.Ingest(ctx, []telemetry.Observation{obs("do", 2, "mg/L")})
	require.Error(t, err, "nothing durable, so the caller must not acknowledge")
	assert.True(t, h.p.Stats().StoreFailing)

	rules := map[string]bool{}
	for _, a := range h.alerts.Active() {
		rules[a.Rule] = true
	}
	assert.True(t, rules[alerting.RuleStoreFailure], "store failure raised")
	assert.True(t, rules[alerting.RuleThreshold], "the received DO still alerts locally")

	h.faults.FailCommits(false)
	_, err = h.p.Ingest(ctx, []telemetry.Observation{obs("do", 2.1, "mg/L")})
	require.NoError(t, err)
	assert.False(t, h.p.Stats().StoreFailing)
	for _, a := range h.alerts.Active() {
		assert.NotEqual(t, alerting.RuleStoreFailure, a.Rule, "store failure resolved on recovery")
	}
}

func TestWQIPublishIsThrottledNotLost(t *testing.T) {
	h := newHarness(t, true)
	ctx := t.Context()
	count := func() int {
		h.out.mu.Lock()
		defer h.out.mu.Unlock()
		return len(h.out.byTopic["purehealth/MH-PUNE-001/wqi"])
	}
	_, err := h.p.Ingest(ctx, []telemetry.Observation{obs("ph", 7.5, ""), obs("do", 7, "")})
	require.NoError(t, err)
	require.Equal(t, 1, count())
	_, err = h.p.Ingest(ctx, []telemetry.Observation{obs("do", 7.2, "")})
	require.NoError(t, err)
	assert.Equal(t, 1, count(), "a value change within a second waits")
	assert.InDelta(t, 7.2, h.p.CurrentWQI().Inputs[0].Value, 1e-9, "but the current index is already recomputed")

	h.clock.Advance(5 * time.Second)
	h.p.Tick(ctx)
	require.Equal(t, 2, count(), "the tick publishes the held-back change")
	var msg map[string]any
	require.NoError(t, json.Unmarshal(h.out.last("purehealth/MH-PUNE-001/wqi"), &msg))
	assert.Equal(t, 7.2, msg["inputs"].([]any)[0].(map[string]any)["value"])
	h.p.Tick(ctx)
	assert.Equal(t, 2, count(), "nothing new, nothing published")
}

// A device inventing sensor names cannot grow the agent's state: readings of new sensors
// beyond the limit are refused with a counter and an alert, and silent sensors that are
// not configured are forgotten, with their alerts, making room again.
func TestSensorLimit(t *testing.T) {
	h := newHarness(t, true, func(o *state.Options) {
		o.MaxSensors, o.ForgetAfter = 3, 24*time.Hour
		o.Expected = []state.SensorSpec{{Name: "ph-probe", Kind: "serial", Param: telemetry.PH}}
	})
	ctx := t.Context()
	named := func(sensor string, v float64) telemetry.Observation {
		return telemetry.Observation{Sensor: sensor, Param: "ph", Value: v, Unit: "pH"}
	}
	rejected, err := h.p.Ingest(ctx, []telemetry.Observation{
		named("dev-1", 7.1), named("dev-2", 15), named("dev-2", 15.1), named("dev-2", 15.2),
		named("dev-3", 7.3), named("dev-4", 7.4),
	})
	require.NoError(t, err)
	assert.Equal(t, []error{nil, nil, nil, nil}, rejected[:4])
	assert.ErrorIs(t, rejected[4], telemetry.ErrSensorLimit, "the configured probe takes one of the three places")
	assert.ErrorIs(t, rejected[5], telemetry.ErrSensorLimit)
	assert.EqualValues(t, 2, h.p.Stats().SensorLimited)
	rules := func() map[string]bool {
		out := map[string]bool{}
		for _, a := range h.alerts.Active() {
			out[a.Rule+":"+a.Sensor] = true
		}
		return out
	}
	assert.True(t, rules()[alerting.RuleSensorLimit+":"], "sensor limit alert: %v", rules())
	assert.True(t, rules()[alerting.RuleSensorFault+":dev-2"], "pH 15 is a bad reading, three in a row a fault: %v", rules())

	rejected, err = h.p.Ingest(ctx, []telemetry.Observation{named("dev-1", 7.2), named("ph-probe", 7.0)})
	require.NoError(t, err)
	assert.Nil(t, rejected, "known sensors go on")

	h.clock.Advance(25 * time.Hour)
	h.p.Tick(ctx)
	assert.False(t, rules()[alerting.RuleSensorLimit+":"], "room again: resolved")
	assert.False(t, rules()[alerting.RuleSensorFault+":dev-2"], "a forgotten sensor's alerts resolve")
	names := []string{}
	for _, s := range h.p.deps.State.Sensors() {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"ph-probe"}, names, "only the configured probe is kept")

	rejected, err = h.p.Ingest(ctx, []telemetry.Observation{named("dev-3", 7.3), named("dev-4", 7.4)})
	require.NoError(t, err)
	assert.Nil(t, rejected)
}

func TestAddSampleIsStoredWithProvenanceAndCompletesTheIndex(t *testing.T) {
	h := newHarness(t, true)
	ctx := t.Context()
	_, err := h.p.Ingest(ctx, []telemetry.Observation{obs("do", 7.2, "mg/L"), obs("ph", 7.5, "")})
	require.NoError(t, err)
	require.True(t, h.p.CurrentWQI().Result.Partial)

	taken := h.clock.Now().Add(-12 * 24 * time.Hour) // a 5-day BOD reported a week later
	lab := &telemetry.Sample{ID: "PUN-0618-01", Lab: "MPCB Pune", Method: "APHA 5210 B"}
	bod, err := h.p.AddSample(ctx, telemetry.Observation{Param: "BOD", Value: 3.1, Unit: "mg/L", Time: taken, Sample: lab})
	require.NoError(t, err)
	assert.NotZero(t, bod.Seq)
	assert.Equal(t, telemetry.SourceManual, bod.Source)
	assert.Equal(t, "MPCB Pune", bod.Sensor, "the lab names the sensor")
	assert.Equal(t, telemetry.Good, bod.Quality, "twelve days old is no fault of a sample")
	_, err = h.p.AddSample(ctx, telemetry.Observation{Param: "fecal coliform", Value: 2400, Unit: "MPN/100mL", Time: taken})
	require.NoError(t, err)

	cur := h.p.CurrentWQI()
	require.NotNil(t, cur)
	assert.False(t, cur.Result.Partial, "manual BOD and FC complete the station's own index")

	rs, err := h.spool.Readings(spool.Query{Param: telemetry.BOD})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Equal(t, lab, rs[0].Sample, "the provenance is stored durably")
	rs, err = h.spool.Readings(spool.Query{Param: telemetry.FC})
	require.NoError(t, err)
	assert.Equal(t, "manual", rs[0].Sensor)
	assert.Nil(t, rs[0].Sample)

	for name, o := range map[string]telemetry.Observation{
		"no time":      {Param: "bod", Value: 3},
		"unknown unit": {Param: "bod", Value: 3, Unit: "NTU", Time: taken},
		"bad lab name": {Param: "bod", Value: 3, Time: taken, Sample: &telemetry.Sample{Lab: "x\x00"}},
	} {
		_, err := h.p.AddSample(ctx, o)
		assert.ErrorIs(t, err, ErrSample, name)
	}
	rejected, err := h.p.Ingest(ctx, []telemetry.Observation{{Param: "bod", Value: 3, Source: telemetry.SourceSensor, Sample: lab}})
	require.NoError(t, err)
	assert.ErrorIs(t, rejected[0], ErrSample, "a probe's reading carries no lab provenance")
}

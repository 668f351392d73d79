package state

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wqi"
)

var t0 = time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)

func newStation(expected ...SensorSpec) *Station {
	return New(Options{
		Station: "S", Method: wqi.BensonKrause, PressureAtm: 1,
		Freshness: func(p telemetry.Param) time.Duration {
			if p == telemetry.BOD {
				return 48 * time.Hour
			}
			return time.Hour
		},
		Expected: expected,
	})
}

func r(seq uint64, sensor string, p telemetry.Param, v float64, at time.Time, q telemetry.Quality) telemetry.Reading {
	return telemetry.Reading{Seq: seq, Sensor: sensor, Param: p, Value: v, Time: at, Quality: q}
}

func TestLatestValueRules(t *testing.T) {
	s := newStation()
	s.Observe([]telemetry.Reading{r(1, "ph-1", telemetry.PH, 7.1, t0, telemetry.Good)}, t0)
	s.Observe([]telemetry.Reading{r(2, "ph-1", telemetry.PH, 99, t0.Add(time.Minute), telemetry.Bad)}, t0)
	v, _, ok := s.Latest(telemetry.PH)
	require.True(t, ok)
	assert.Equal(t, 7.1, v, "bad readings never become the latest value")

	s.Observe([]telemetry.Reading{r(3, "ph-1", telemetry.PH, 7.3, t0.Add(-time.Hour), telemetry.Good)}, t0)
	v, _, _ = s.Latest(telemetry.PH)
	assert.Equal(t, 7.1, v, "a backfilled older reading does not replace a fresher one")

	s.Observe([]telemetry.Reading{r(4, "ph-1", telemetry.PH, 7.6, t0.Add(-9*time.Hour), telemetry.Good)}, t0)
	unsynced := r(5, "ph-1", telemetry.PH, 7.7, time.Unix(100, 0), telemetry.Good)
	unsynced.Flags = telemetry.FlagTimeUnsynced
	s.Observe([]telemetry.Reading{unsynced}, t0)
	v, _, _ = s.Latest(telemetry.PH)
	assert.Equal(t, 7.7, v, "under an untrusted clock arrival order rules")

	suspect := r(6, "ph-1", telemetry.PH, 7.9, t0.Add(2*time.Minute), telemetry.Suspect)
	s.Observe([]telemetry.Reading{suspect}, t0)
	v, _, _ = s.Latest(telemetry.PH)
	assert.Equal(t, 7.9, v, "suspect values still feed the index")
}

func TestWQIUsesFreshInputsOnly(t *testing.T) {
	s := newStation()
	s.Observe([]telemetry.Reading{
		r(1, "do-1", telemetry.DO, 7, t0, telemetry.Good),
		r(2, "ph-1", telemetry.PH, 7.5, t0, telemetry.Good),
		r(3, "lab", telemetry.BOD, 2, t0, telemetry.Good),
	}, t0)
	res, inputs, err := s.WQI(t0.Add(30 * time.Minute))
	require.NoError(t, err)
	assert.Equal(t, []telemetry.Param{telemetry.FC}, res.Missing)
	assert.Len(t, inputs, 3)

	res, inputs, err = s.WQI(t0.Add(2 * time.Hour))
	require.NoError(t, err)
	assert.Equal(t, []telemetry.Param{telemetry.DO, telemetry.FC, telemetry.PH}, res.Missing, "do and ph are stale after 1h, bod is fresh for 48h")
	stale := 0
	for _, in := range inputs {
		if in.Stale {
			stale++
		}
	}
	assert.Equal(t, 2, stale, "stale inputs are reported, not used")

	_, _, err = s.WQI(t0.Add(72 * time.Hour))
	assert.True(t, errors.Is(err, wqi.ErrNoInputs))
}

func TestSensorHealth(t *testing.T) {
	s := newStation(SensorSpec{Name: "ph-1", Kind: "serial", Param: telemetry.PH, Interval: time.Minute})
	sensors := s.Sensors()
	require.Len(t, sensors, 1)
	assert.True(t, sensors[0].Expected)
	assert.False(t, sensors[0].Online(t0, 3), "a configured probe that never reported is not online")

	for i := range 5 {
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		q := telemetry.Good
		if i == 4 {
			q = telemetry.Bad
		}
		s.Observe([]telemetry.Reading{r(uint64(i+1), "do-mqtt", telemetry.DO, 7, at, q)}, at)
	}
	s.RecordError("do-mqtt", telemetry.DO, "unit_mismatch")
	s.RecordReconnect("ph-1")
	sensors = s.Sensors()
	require.Len(t, sensors, 2)
	mq := sensors[0]
	assert.Equal(t, "do-mqtt", mq.Name)
	assert.Equal(t, "mqtt", mq.Kind)
	assert.True(t, mq.Learned)
	assert.Equal(t, 10*time.Second, mq.Interval, "interval learned from arrivals")

	burst := newStation()
	for i := range 5 {
		at := t0.Add(time.Duration(i) * 50 * time.Millisecond)
		burst.Observe([]telemetry.Reading{r(uint64(i+1), "log", telemetry.DO, 7, at, telemetry.Good)}, at)
	}
	assert.Equal(t, minLearnedInterval, burst.Sensors()[0].Interval, "a burst does not teach a 50 ms interval")
	assert.InDelta(t, 6, mq.RatePerMin, 0.01)
	assert.Equal(t, uint64(5), mq.Readings)
	assert.Equal(t, uint64(4), mq.Good)
	assert.Equal(t, uint64(2), mq.Errors)
	assert.Equal(t, map[string]uint64{"bad": 1, "unit_mismatch": 1}, mq.ErrorsByKind)
	last := t0.Add(40 * time.Second)
	assert.True(t, mq.Online(last.Add(30*time.Second), 3))
	assert.False(t, mq.Online(last.Add(31*time.Second), 3))
	assert.Equal(t, uint64(1), sensors[1].Reconnects)
}

func TestRestoreSeedsLatestOnly(t *testing.T) {
	s := newStation()
	s.Restore([]telemetry.Reading{
		r(9, "do-1", telemetry.DO, 6, t0, telemetry.Good),
		r(3, "do-1", telemetry.DO, 5, t0, telemetry.Good),
	})
	v, _, ok := s.Latest(telemetry.DO)
	require.True(t, ok)
	assert.Equal(t, 6.0, v)
	assert.Empty(t, s.Sensors(), "restoring does not invent sensor activity")
}

// TestRestoreLatest asks for the newest reading of each index input within its freshness
// window, and the index is back without a new reading.
func TestRestoreLatest(t *testing.T) {
	stored := map[telemetry.Param]telemetry.Reading{
		telemetry.DO:  r(3, "do-1", telemetry.DO, 6.5, t0.Add(-30*time.Minute), telemetry.Good),
		telemetry.BOD: r(1, "lab", telemetry.BOD, 2, t0.Add(-30*time.Hour), telemetry.Good),
		telemetry.PH:  r(2, "ph-1", telemetry.PH, 7.2, t0.Add(-3*time.Hour), telemetry.Good), // too old
	}
	lab := r(4, "MPCB Pune", telemetry.FC, 900, t0.Add(-20*24*time.Hour), telemetry.Good)
	lab.Source = telemetry.SourceManual
	asked := map[telemetry.Param]time.Time{}
	askedManual := map[telemetry.Param]time.Time{}
	s := newStation()
	err := s.RestoreLatest(t0, func(p telemetry.Param, src telemetry.Source, since time.Time) ([]telemetry.Reading, error) {
		switch src {
		case telemetry.SourceSensor:
			asked[p] = since
			if rd, ok := stored[p]; ok && rd.Time.After(since) {
				return []telemetry.Reading{rd}, nil
			}
		case telemetry.SourceManual:
			askedManual[p] = since
			if p == telemetry.FC && lab.Time.After(since) {
				return []telemetry.Reading{lab}, nil
			}
		}
		return nil, nil
	})
	require.NoError(t, err)
	assert.Equal(t, map[telemetry.Param]time.Time{
		telemetry.DO: t0.Add(-time.Hour), telemetry.FC: t0.Add(-time.Hour), telemetry.PH: t0.Add(-time.Hour),
		telemetry.BOD: t0.Add(-48 * time.Hour), telemetry.Temp: t0.Add(-time.Hour),
	}, asked, "each input is asked for within its own freshness window")
	assert.Equal(t, t0.Add(-31*24*time.Hour), askedManual[telemetry.FC], "a lab's FC within its own, longer window")
	res, _, err := s.WQI(t0)
	require.NoError(t, err)
	assert.Equal(t, []telemetry.Param{telemetry.DO, telemetry.FC, telemetry.BOD}, res.Used, "the 20-day-old lab FC is back too")

	boom := errors.New("disk on fire")
	err = newStation().RestoreLatest(t0, func(telemetry.Param, telemetry.Source, time.Time) ([]telemetry.Reading, error) { return nil, boom })
	assert.ErrorIs(t, err, boom)
}

// A station without BOD and FC probes: the lab's values feed its index for 31 days, a
// probe's value of the same parameter wins while it is fresh, and a sample past its own
// freshness is reported stale.
func TestManualSamplesFeedTheIndexWithinTheirOwnFreshness(t *testing.T) {
	s := newStation()
	manual := func(seq uint64, p telemetry.Param, v float64, at time.Time) telemetry.Reading {
		x := r(seq, "MPCB Pune", p, v, at, telemetry.Good)
		x.Source = telemetry.SourceManual
		return x
	}
	s.Observe([]telemetry.Reading{
		r(1, "do-1", telemetry.DO, 7, t0, telemetry.Good),
		r(2, "ph-1", telemetry.PH, 7.5, t0, telemetry.Good),
		manual(3, telemetry.BOD, 2, t0.Add(-20*24*time.Hour)),
		manual(4, telemetry.FC, 900, t0.Add(-20*24*time.Hour)),
	}, t0)
	res, inputs, err := s.WQI(t0.Add(10 * time.Minute))
	require.NoError(t, err)
	assert.False(t, res.Partial, "a 20-day-old lab BOD and FC complete the index")
	sources := map[telemetry.Param]telemetry.Source{}
	for _, in := range inputs {
		sources[in.Param] = in.Source
		assert.False(t, in.Stale, "%s", in.Param)
	}
	assert.Equal(t, telemetry.SourceManual, sources[telemetry.BOD])
	assert.Equal(t, telemetry.SourceSensor, sources[telemetry.DO])
	assert.Equal(t, 31*24*time.Hour, s.FreshnessOf(telemetry.BOD, telemetry.SourceManual))
	assert.Equal(t, 48*time.Hour, s.FreshnessOf(telemetry.BOD, telemetry.SourceSensor))
	assert.Equal(t, 31*24*time.Hour, s.RestoreWindow(telemetry.FC))

	// A fresh BOD probe value wins over the lab's.
	s.Observe([]telemetry.Reading{r(5, "bod-1", telemetry.BOD, 6, t0.Add(5*time.Minute), telemetry.Good)}, t0)
	_, inputs, err = s.WQI(t0.Add(10 * time.Minute))
	require.NoError(t, err)
	for _, in := range inputs {
		if in.Param == telemetry.BOD {
			assert.Equal(t, telemetry.SourceSensor, in.Source)
			assert.Equal(t, 6.0, in.Value)
		}
	}

	// 12 days on the lab values are 32 days old: stale, and the probes too.
	_, inputs, err = s.WQI(t0.Add(12 * 24 * time.Hour))
	assert.ErrorIs(t, err, wqi.ErrNoInputs)
	for _, in := range inputs {
		assert.True(t, in.Stale, "%s", in.Param)
	}

	// Per parameter and source, configurable: manual DO stays 2 days.
	s2 := New(Options{Station: "S", Freshness: func(telemetry.Param) time.Duration { return time.Hour },
		SourceFreshness: map[telemetry.Source]map[telemetry.Param]time.Duration{telemetry.SourceManual: {telemetry.DO: 48 * time.Hour}}})
	s2.Observe([]telemetry.Reading{manual(1, telemetry.DO, 6.1, t0), manual(2, telemetry.BOD, 2, t0)}, t0)
	res, _, err = s2.WQI(t0.Add(24 * time.Hour))
	require.NoError(t, err)
	assert.Equal(t, []telemetry.Param{telemetry.DO}, res.Used, "BOD keeps the parameter's own hour when the map overrides only DO")
}

// Past computes the index at a past instant by the rule of the current one, from the
// newest of the readings it was given by their own time; readings whose time or value
// says nothing of the water then are left out.
func TestPastIndex(t *testing.T) {
	s := newStation()
	p := s.Past()
	p.Observe(r(1, "do-1", telemetry.DO, 7, t0, telemetry.Good))
	p.Observe(r(2, "ph-1", telemetry.PH, 7.5, t0, telemetry.Good))
	p.Observe(r(3, "do-1", telemetry.DO, 5, t0.Add(-time.Minute), telemetry.Good)) // older: not kept
	p.Observe(r(4, "ph-1", telemetry.PH, 3, t0.Add(time.Minute), telemetry.Bad))
	unsynced := r(5, "ph-1", telemetry.PH, 6, t0.Add(time.Minute), telemetry.Good)
	unsynced.Flags = telemetry.FlagTimeUnsynced
	p.Observe(unsynced)
	mean := r(6, "ph-1", telemetry.PH, 6.5, t0.Add(time.Minute), telemetry.Good)
	mean.Flags = telemetry.FlagDownsampled
	p.Observe(mean)

	res, inputs, err := p.WQI(t0.Add(30 * time.Minute))
	require.NoError(t, err)
	s.Observe([]telemetry.Reading{r(1, "do-1", telemetry.DO, 7, t0, telemetry.Good), r(2, "ph-1", telemetry.PH, 7.5, t0, telemetry.Good)}, t0)
	want, wantInputs, err := s.WQI(t0.Add(30 * time.Minute))
	require.NoError(t, err)
	assert.Equal(t, want, res, "the same rule as the current index")
	assert.Equal(t, wantInputs, inputs)

	_, _, err = p.WQI(t0.Add(2 * time.Hour))
	assert.ErrorIs(t, err, wqi.ErrNoInputs, "and the same freshness")
}

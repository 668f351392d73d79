package forecastjob_test

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/forecast"
	"github.com/purehealth/purehealth/cloud/internal/forecastjob"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/wire"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// station sends readings to the store as its agent would, seq by seq.
type station struct {
	t   *testing.T
	s   *store.Store
	id  string
	seq uint64
}

func newStation(t *testing.T, s *store.Store, id, class string) *station {
	t.Helper()
	_, err := s.AddStation(t.Context(), store.NewStation{ID: id, Name: "Station " + id, Class: class})
	require.NoError(t, err)
	return &station{t: t, s: s, id: id}
}

// send stores readings of param at the given times with value(t).
func (st *station) send(param, unit string, times []time.Time, value func(time.Time) float64) {
	st.t.Helper()
	var rs []wire.Reading
	flush := func() {
		if len(rs) == 0 {
			return
		}
		_, err := st.s.Ingest(st.t.Context(), st.id, storetest.Batch(st.id, rs))
		require.NoError(st.t, err)
		rs = rs[:0]
	}
	for _, at := range times {
		st.seq++
		rs = append(rs, wire.Reading{Seq: st.seq, Time: at.UTC().Truncate(time.Microsecond), Sensor: param + "-1",
			Param: param, Value: math.Round(value(at)*1000) / 1000, Unit: unit, Quality: "good", Source: "sensor"})
		if len(rs) == 2000 {
			flush()
		}
	}
	flush()
}

// every returns the times from..to (excluded) every step.
func every(from, to time.Time, step time.Duration) []time.Time {
	var out []time.Time
	for t := from; t.Before(to); t = t.Add(step) {
		out = append(out, t)
	}
	return out
}

// dailyDO is dissolved oxygen with a daily cycle peaking mid-afternoon around a mean that
// wanders from day to day (flow and weather), with reading noise. Times must come in
// order.
func dailyDO(mean float64, seed uint64) func(time.Time) float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	level := 0.0
	return func(t time.Time) float64 {
		h := float64(t.Unix()%86400) / 3600
		level = 0.995*level + 0.01*rng.NormFloat64()
		return mean + level + 0.8*math.Sin(2*math.Pi*(h-9)/24) + 0.05*rng.NormFloat64()
	}
}

func alertsOf(t *testing.T, s *store.Store, id string) []store.Alert {
	t.Helper()
	list, err := s.Alerts(t.Context(), store.AlertQuery{Station: id, Limit: 100})
	require.NoError(t, err)
	return list
}

// TestRoundForecastsWarnsAndResolves: a station whose nights dip below its class's DO
// minimum gets forecasts, stored once, pushed as prediction events, and an early
// warning; when the river recovers the warning resolves.
func TestRoundForecastsWarnsAndResolves(t *testing.T) {
	s, _ := storetest.Open(t, store.Options{})
	// Rounds within one hour see the same series: the data ends on the hour.
	now := time.Now().UTC().Truncate(time.Hour)
	st := newStation(t, s, "S", "B")
	st.send("do", "mg/L", every(now.Add(-10*24*time.Hour), now, 10*time.Minute), dailyDO(5.6, 1))
	b := storetest.Batch("S", nil)
	for i, at := range every(now.Add(-10*24*time.Hour), now, time.Hour) {
		b.WQI = append(b.WQI, storetest.WQI(uint64(i+1), at, 60+5*math.Sin(2*math.Pi*float64(at.Hour())/24)))
	}
	_, err := s.Ingest(t.Context(), "S", b)
	require.NoError(t, err)
	_, mark, err := s.EventBounds(t.Context())
	require.NoError(t, err)

	clock := now.Add(5 * time.Minute)
	r := forecastjob.New(s, forecastjob.Options{Now: func() time.Time { return clock }})
	rep, err := r.Round(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Stations)
	assert.Equal(t, 2, rep.Series, "do and the WQI")
	assert.Equal(t, 2, rep.Forecasts)
	assert.Equal(t, 2, rep.Stored)
	assert.Equal(t, 1, rep.Warnings)

	rec, err := s.LatestForecast(t.Context(), "S", "do")
	require.NoError(t, err)
	var f forecast.Forecast
	require.NoError(t, json.Unmarshal(rec.Data, &f))
	assert.Equal(t, "S", f.Station)
	assert.Equal(t, "do", f.Param)
	assert.True(t, f.IssuedAt.Equal(clock))
	assert.Len(t, f.Points, 24)
	assert.Greater(t, f.Skill.BacktestPoints, 0)
	assert.Less(t, f.Skill.MASE, 1.0, "a clean daily cycle beats the same hour yesterday")
	for _, p := range f.Points {
		assert.True(t, p.Lo95 <= p.Lo80 && p.Lo80 <= p.Value && p.Value <= p.Hi80 && p.Hi80 <= p.Hi95, "%+v", p)
	}
	var keys map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(rec.Data, &keys))
	for _, k := range []string{"station", "param", "issued_at", "model", "skill", "points"} {
		assert.Contains(t, keys, k, "the contract's keys")
	}

	evs, err := s.Events(t.Context(), store.EventQuery{After: mark, Limit: 100})
	require.NoError(t, err)
	var predictions, alerts int
	for _, e := range evs {
		switch e.Type {
		case store.EventPrediction:
			predictions++
			if strings.Contains(string(e.Data), `"param":"do"`) {
				assert.JSONEq(t, string(rec.Data), string(e.Data), "the live message is the stored forecast")
			}
		case store.EventAlert:
			alerts++
		}
	}
	assert.Equal(t, 2, predictions)
	assert.Equal(t, 1, alerts)

	list := alertsOf(t, s, "S")
	require.Len(t, list, 1)
	w := list[0]
	assert.Equal(t, store.RuleForecastBreach, w.Rule)
	assert.Equal(t, "forecast_breach/do/min", w.Key)
	assert.Equal(t, store.OriginCloud, w.Origin)
	assert.Equal(t, alert.Critical, w.Severity, "the point forecast itself dips below 5")
	assert.Regexp(t, `^DO is forecast to fall below 5 mg/L around \d\d:00; 80 % interval \d+\.\d+–\d+\.\d+$`, w.Message)
	var ev map[string]any
	require.NoError(t, json.Unmarshal(w.Evidence, &ev))
	assert.Equal(t, 5.0, ev["limit"].(map[string]any)["value"])
	assert.Equal(t, "min", ev["limit"].(map[string]any)["bound"])
	assert.Contains(t, ev, "first")
	assert.Equal(t, f.Model, ev["forecast"].(map[string]any)["model"])

	// The same hour again: nothing new to store or say.
	clock = now.Add(20 * time.Minute)
	rep, err = r.Round(t.Context())
	require.NoError(t, err)
	assert.Zero(t, rep.Stored)
	assert.Zero(t, rep.Changes)
	assert.Equal(t, 1, rep.Warnings, "still warning")

	// Four days of a recovered river: the forecast clears the limit and the warning goes.
	later := now.Add(4 * 24 * time.Hour)
	st.send("do", "mg/L", every(now, later, 10*time.Minute), dailyDO(9, 2))
	clock = later.Add(5 * time.Minute)
	rep, err = r.Round(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 0, rep.Warnings)
	list = alertsOf(t, s, "S")
	require.Len(t, list, 1)
	assert.Equal(t, alert.Resolved, list[0].State)
}

// TestShortGappyAndStaleSeries: every series gets a record, with the reason when there is
// no forecast; a long silence restarts the history after it.
func TestShortGappyAndStaleSeries(t *testing.T) {
	s, _ := storetest.Open(t, store.Options{})
	now := time.Now().UTC().Truncate(time.Minute)
	newStation(t, s, "SHORT", "B").send("do", "mg/L", every(now.Add(-30*time.Hour), now, 15*time.Minute), dailyDO(7, 3))
	newStation(t, s, "STALE", "B").send("do", "mg/L", every(now.Add(-8*24*time.Hour), now.Add(-10*time.Hour), 15*time.Minute), dailyDO(7, 4))
	// Irregular sampling (every 7 to 47 minutes) with a four-day silence: only the five
	// days since count, which is enough.
	var times []time.Time
	rng := rand.New(rand.NewPCG(5, 5))
	for at := now.Add(-12 * 24 * time.Hour); at.Before(now); at = at.Add(time.Duration(7+rng.IntN(40)) * time.Minute) {
		if at.Before(now.Add(-5*24*time.Hour)) && !at.Before(now.Add(-9*24*time.Hour)) {
			continue
		}
		times = append(times, at)
	}
	newStation(t, s, "GAPPY", "B").send("do", "mg/L", times, dailyDO(7, 6))

	r := forecastjob.New(s, forecastjob.Options{Now: func() time.Time { return now.Add(time.Minute) }, Workers: 2})
	rep, err := r.Round(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 3, rep.Series)
	assert.Equal(t, 1, rep.Forecasts)
	assert.Equal(t, 2, rep.NoForecast)

	short, err := s.LatestForecast(t.Context(), "SHORT", "do")
	require.NoError(t, err)
	assert.Empty(t, short.Model)
	assert.Nil(t, short.Data)
	assert.Contains(t, short.Reason, "too little history")

	stale, err := s.LatestForecast(t.Context(), "STALE", "do")
	require.NoError(t, err)
	assert.Contains(t, stale.Reason, "no recent good reading")

	gappy, err := s.LatestForecast(t.Context(), "GAPPY", "do")
	require.NoError(t, err)
	require.NotEmpty(t, gappy.Model, gappy.Reason)
	var f forecast.Forecast
	require.NoError(t, json.Unmarshal(gappy.Data, &f))
	assert.Len(t, f.Points, 24)
	for _, p := range f.Points {
		assert.InDelta(t, 7, p.Value, 1.5, "a forecast of the river after the gap")
	}
}

// TestRoundsDoNotOverlap: a replica that finds a round running skips its turn.
func TestRoundsDoNotOverlap(t *testing.T) {
	s, _ := storetest.Open(t, store.Options{})
	newStation(t, s, "A", "B")
	r := forecastjob.New(s, forecastjob.Options{})
	release := make(chan struct{})
	held := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.RunExclusive(t.Context(), forecastjob.LockName, func(context.Context) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	rep, err := r.Round(t.Context())
	require.NoError(t, err)
	assert.True(t, rep.Skipped)
	close(release)
	require.NoError(t, <-done)
	rep, err = r.Round(t.Context())
	require.NoError(t, err)
	assert.False(t, rep.Skipped)
	assert.Equal(t, 1, rep.Stations)
}

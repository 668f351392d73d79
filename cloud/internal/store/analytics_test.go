package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
)

func testRiversPlaceStations(t *testing.T, l layout) {
	s, _ := l.open(t, store.Options{})
	_, err := s.AddStation(t.Context(), store.NewStation{ID: "UP", Name: "Upstream",
		River: &store.River{Name: "Mula-Mutha", Km: 0.5}})
	require.NoError(t, err)
	storetest.AddStation(t, s, "DOWN")

	st, err := s.Station(t.Context(), "UP")
	require.NoError(t, err)
	require.NotNil(t, st.River)
	assert.Equal(t, "Mula-Mutha", *st.River)
	assert.Equal(t, 0.5, *st.RiverKm)

	require.NoError(t, s.SetRiver(t.Context(), "DOWN", &store.River{Name: "Mula-Mutha", Km: 9.5}))
	list, err := s.Stations(t.Context(), "", 10)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, 9.5, *list[0].RiverKm, "DOWN sorts first and is on the river now")
	body, err := json.Marshal(list[0])
	require.NoError(t, err)
	assert.Contains(t, string(body), `"river":"Mula-Mutha","river_km":9.5`)

	require.NoError(t, s.SetRiver(t.Context(), "DOWN", nil))
	st, err = s.Station(t.Context(), "DOWN")
	require.NoError(t, err)
	assert.Nil(t, st.River)
	assert.Nil(t, st.RiverKm)
	body, err = json.Marshal(st)
	require.NoError(t, err)
	assert.NotContains(t, string(body), "river", "a station on no river says nothing of rivers")

	for _, bad := range []store.River{{Name: "", Km: 1}, {Name: " padded", Km: 1}, {Name: "R", Km: 1e9}} {
		assert.ErrorIs(t, s.SetRiver(t.Context(), "UP", &bad), store.ErrInvalid, "%+v", bad)
	}
	assert.ErrorIs(t, s.SetRiver(t.Context(), "NOPE", &store.River{Name: "R"}), store.ErrNotFound)
}

// forecastRecord is a forecast as the forecast job stores it.
func forecastRecord(station, param string, at time.Time, digest string, value float64) store.ForecastRecord {
	data, _ := json.Marshal(map[string]any{"station": station, "param": param, "issued_at": at, "model": "ets_ana",
		"skill": map[string]any{"mase": 0.7}, "points": []map[string]any{{"time": at.Truncate(time.Hour), "value": value}}})
	return store.ForecastRecord{Station: station, Param: param, IssuedAt: at, Model: "ets_ana", Digest: digest, Data: data}
}

func testForecastsStoredWhenTheyChange(t *testing.T, l layout) {
	s, _ := l.open(t, store.Options{})
	storetest.AddStation(t, s, "A")
	at := time.Now().UTC().Truncate(time.Second)
	_, mark, err := s.EventBounds(t.Context())
	require.NoError(t, err)

	do := forecastRecord("A", "do", at, "d1", 6.5)
	short := store.ForecastRecord{Station: "A", Param: "wqi", IssuedAt: at, Digest: "r1",
		Reason: "too little history: 30 hourly values over 1.3 days"}
	stored, err := s.StoreForecasts(t.Context(), []store.ForecastRecord{do, short})
	require.NoError(t, err)
	require.Len(t, stored, 2)

	evs, err := s.Events(t.Context(), store.EventQuery{After: mark, Limit: 10})
	require.NoError(t, err)
	require.Len(t, evs, 1, "a prediction for the forecast, none for the reason")
	assert.Equal(t, store.EventPrediction, evs[0].Type)
	assert.Equal(t, "A", evs[0].Station)
	assert.JSONEq(t, string(do.Data), string(evs[0].Data))
	assert.True(t, evs[0].Time.Equal(at))

	// The next round computes the same forecast: nothing new.
	later := at.Add(15 * time.Minute)
	again := forecastRecord("A", "do", later, "d1", 6.5)
	stored, err = s.StoreForecasts(t.Context(), []store.ForecastRecord{again})
	require.NoError(t, err)
	assert.Empty(t, stored, "an unchanged forecast is not stored twice")
	got, err := s.LatestForecast(t.Context(), "A", "do")
	require.NoError(t, err)
	assert.True(t, got.IssuedAt.Equal(at), "the first issue stands")

	changed := forecastRecord("A", "do", later, "d2", 6.1)
	stored, err = s.StoreForecasts(t.Context(), []store.ForecastRecord{changed})
	require.NoError(t, err)
	require.Len(t, stored, 1)
	got, err = s.LatestForecast(t.Context(), "A", "do")
	require.NoError(t, err)
	assert.Equal(t, "d2", got.Digest)
	assert.JSONEq(t, string(changed.Data), string(got.Data))

	latest, err := s.LatestForecasts(t.Context(), "A", at.Add(-time.Hour))
	require.NoError(t, err)
	require.Len(t, latest, 2)
	assert.Equal(t, "d2", latest["do"].Digest)
	assert.Empty(t, latest["wqi"].Model)
	assert.Contains(t, latest["wqi"].Reason, "too little history")
	assert.Nil(t, latest["wqi"].Data)

	_, err = s.LatestForecast(t.Context(), "A", "ph")
	assert.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.StoreForecasts(t.Context(), []store.ForecastRecord{{Station: "A", Param: "do", IssuedAt: at, Digest: "x", Model: "ets_ana"}})
	assert.ErrorIs(t, err, store.ErrInvalid, "a model without data")

	if l.Mode == store.ModePlain {
		days, err := s.Partitions(t.Context(), "forecasts")
		require.NoError(t, err)
		assert.Contains(t, days, at.Truncate(24*time.Hour), "the day of issue has its partition")
	}
}

func float(v float64) *float64 { return &v }

func testCloudAlertsReconcile(t *testing.T, l layout) {
	s, url := l.open(t, store.Options{})
	storetest.AddStation(t, s, "A")
	storetest.AddStation(t, s, "B")
	scope := store.CloudAlertScope{Rules: []string{store.RuleForecastBreach}, Stations: []string{"A", "B"}}
	at := time.Now().UTC().Truncate(time.Second)
	_, mark, err := s.EventBounds(t.Context())
	require.NoError(t, err)
	breach := store.CloudAlert{Station: "A", Rule: store.RuleForecastBreach, Key: "forecast_breach/do/min", Param: "do",
		Severity: alert.Warning, Message: "DO is forecast to fall below 5 mg/L around 05:00; 80 % interval 4.6–5.8",
		Value: float(4.6), Limit: float(5), Evidence: json.RawMessage(`{"first":{"lo80":4.6}}`)}

	changes, err := s.SyncCloudAlerts(t.Context(), scope, []store.CloudAlert{breach}, at)
	require.NoError(t, err)
	require.Len(t, changes, 1)
	assert.Equal(t, "opened", changes[0].Transition)
	opened := changes[0].Alert
	assert.Equal(t, store.OriginCloud, opened.Origin)

	changes, err = s.SyncCloudAlerts(t.Context(), scope, []store.CloudAlert{breach}, at.Add(time.Minute))
	require.NoError(t, err)
	assert.Empty(t, changes, "the same condition changes nothing")

	// An operator acknowledged it meanwhile; the forecast moves: updated, still acknowledged.
	execSQL(t, url, `UPDATE alerts SET state = 'acknowledged', acknowledged_at = $1 WHERE origin = 'cloud'`, at)
	moved := breach
	moved.Message = "DO is forecast to fall below 5 mg/L around 04:00; 80 % interval 4.4–5.6"
	moved.Evidence = json.RawMessage(`{"first": {"lo80": 4.4}}`)
	changes, err = s.SyncCloudAlerts(t.Context(), scope, []store.CloudAlert{moved}, at.Add(2*time.Minute))
	require.NoError(t, err)
	require.Len(t, changes, 1)
	assert.Equal(t, store.TransitionUpdated, changes[0].Transition)
	assert.Equal(t, alert.Acknowledged, changes[0].Alert.State)
	assert.Equal(t, opened.ID, changes[0].Alert.ID)

	worse := moved
	worse.Severity = alert.Critical
	changes, err = s.SyncCloudAlerts(t.Context(), scope, []store.CloudAlert{worse}, at.Add(3*time.Minute))
	require.NoError(t, err)
	require.Len(t, changes, 1)
	assert.Equal(t, "escalated", changes[0].Transition)

	list, err := s.Alerts(t.Context(), store.AlertQuery{Station: "A", Limit: 10})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, alert.Critical, list[0].Severity)
	assert.Equal(t, moved.Message, list[0].Message)
	assert.JSONEq(t, `{"first":{"lo80":4.4}}`, string(list[0].Evidence), "the API serves the evidence")

	changes, err = s.SyncCloudAlerts(t.Context(), scope, nil, at.Add(4*time.Minute))
	require.NoError(t, err)
	require.Len(t, changes, 1)
	assert.Equal(t, "resolved", changes[0].Transition)
	assert.Equal(t, alert.Resolved, changes[0].Alert.State)

	// The live events and the notification outbox saw every transition, in order.
	evs, err := s.Events(t.Context(), store.EventQuery{After: mark, Limit: 20})
	require.NoError(t, err)
	var transitions []string
	for _, e := range evs {
		require.Equal(t, store.EventAlert, e.Type)
		var c store.AlertChange
		require.NoError(t, json.Unmarshal(e.Data, &c))
		transitions = append(transitions, c.Transition)
		assert.NotEmpty(t, c.Evidence)
	}
	assert.Equal(t, []string{"opened", "updated", "escalated", "resolved"}, transitions)
	assert.Equal(t, int64(4), count(t, url, `SELECT count(*) FROM notify_outbox WHERE rule = 'forecast_breach'`))

	// A condition seen only once it was over is recorded as opened and resolved, once.
	past := store.CloudAlert{Station: "B", Rule: store.RuleForecastBreach, Key: "forecast_breach/ph/max", Param: "ph",
		Severity: alert.Warning, Message: "was over", Over: true}
	changes, err = s.SyncCloudAlerts(t.Context(), scope, []store.CloudAlert{past}, at.Add(5*time.Minute))
	require.NoError(t, err)
	require.Len(t, changes, 2)
	assert.Equal(t, "opened", changes[0].Transition)
	assert.Equal(t, "resolved", changes[1].Transition)
	changes, err = s.SyncCloudAlerts(t.Context(), scope, []store.CloudAlert{past}, at.Add(6*time.Minute))
	require.NoError(t, err)
	assert.Empty(t, changes, "on record already")

	known, err := s.CloudAlerts(t.Context(), scope, at)
	require.NoError(t, err)
	assert.Len(t, known, 2, "both alerts, resolved after the given time")

	for _, bad := range [][]store.CloudAlert{
		{{Station: "A", Rule: store.RuleSuspectSensor, Key: "k", Severity: alert.Warning}},
		{{Station: "A", Rule: store.RuleForecastBreach, Key: "k", Severity: "loud"}},
		{{Station: "A", Rule: store.RuleForecastBreach, Key: "k", Severity: alert.Info, Evidence: json.RawMessage(`{`)}},
		{breach, breach},
	} {
		_, err := s.SyncCloudAlerts(t.Context(), scope, bad, at)
		assert.ErrorIs(t, err, store.ErrInvalid)
	}
}

func testAnalysisSeriesSplitsRollupAndReadings(t *testing.T, l layout) {
	s, _ := l.open(t, store.Options{})
	storetest.AddStation(t, s, "A")
	now := time.Now().UTC().Truncate(time.Hour)
	start := now.Add(-5 * time.Hour)
	var rs []wire.Reading
	seq := uint64(1)
	add := func(at time.Time, v float64, q string) {
		rs = append(rs, wire.Reading{Seq: seq, Time: at, Sensor: "do-1", Param: "do", Value: v, Unit: "mg/L",
			Quality: q, Source: "sensor"})
		seq++
	}
	for h := range 5 {
		at := start.Add(time.Duration(h) * time.Hour)
		add(at.Add(10*time.Minute), 6, "good")
		add(at.Add(20*time.Minute), 8, "suspect")
		add(at.Add(30*time.Minute), 99, "bad")
	}
	b := storetest.Batch("A", rs)
	b.WQI = []wire.WQIPoint{storetest.WQI(1, start.Add(time.Minute), 70), storetest.WQI(2, start.Add(2*time.Minute), 72),
		storetest.WQI(3, now.Add(-30*time.Minute), 75)}
	_, err := s.Ingest(t.Context(), "A", b)
	require.NoError(t, err)

	got, err := s.AnalysisSeries(t.Context(), store.SeriesQuery{Stations: []string{"A", "NONE"}, From: start,
		RawFrom: now.Add(-2 * time.Hour), To: now.Add(time.Hour), Qualities: []telemetry.Quality{telemetry.Good}, WQI: true})
	require.NoError(t, err)
	require.Len(t, got, 2)
	do, wqi := got[0], got[1]
	assert.Equal(t, "do", do.Param)
	require.Len(t, do.Hourly, 3, "three hours before the raw window, from the rollup")
	for _, h := range do.Hourly {
		assert.Equal(t, 7.0, h.Mean, "the rollup holds good and suspect readings")
		assert.Equal(t, int64(2), h.Count)
	}
	require.Len(t, do.Readings, 2, "then the good readings themselves")
	for _, p := range do.Readings {
		assert.Equal(t, 6.0, p.Value)
		assert.Equal(t, telemetry.Good, p.Quality)
	}
	assert.Equal(t, store.WQISeries, wqi.Param)
	require.Len(t, wqi.Hourly, 1)
	assert.Equal(t, 71.0, wqi.Hourly[0].Mean)
	require.Len(t, wqi.Readings, 1)
	assert.Equal(t, 75.0, wqi.Readings[0].Value)

	_, err = s.AnalysisSeries(t.Context(), store.SeriesQuery{Stations: []string{"A"}, From: now, RawFrom: start, To: now})
	assert.ErrorIs(t, err, store.ErrInvalid)
}

func testRunExclusiveOneAtATime(t *testing.T, l layout) {
	s, _ := l.open(t, store.Options{})
	inside := make(chan struct{})
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		err := s.RunExclusive(t.Context(), "round", func(ctx context.Context) error {
			close(inside)
			<-release
			return nil
		})
		assert.NoError(t, err)
	})
	<-inside
	ran := false
	err := s.RunExclusive(t.Context(), "round", func(context.Context) error { ran = true; return nil })
	assert.ErrorIs(t, err, store.ErrBusy)
	assert.False(t, ran)
	assert.NoError(t, s.RunExclusive(t.Context(), "another", func(context.Context) error { return nil }),
		"other names are other locks")
	close(release)
	wg.Wait()
	boom := errors.New("boom")
	assert.ErrorIs(t, s.RunExclusive(t.Context(), "round", func(context.Context) error { return boom }), boom,
		"free again, and fn's error comes back")
}

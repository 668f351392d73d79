package store_test

import (
	"errors"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/wire"
)

const station = "MH-PUNE-001"

func testIngestExactlyOnce(t *testing.T, l layout) {
	s, url := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	start := time.Now().Add(-2 * time.Hour).UTC()
	all := storetest.Readings(1, 300, start, 10*time.Second)

	type step struct {
		name      string
		readings  []wire.Reading
		wantNew   int64
		wantAcked uint64
		wantTotal int64
	}
	steps := []step{
		{"first batch", all[0:100], 100, 100, 100},
		{"the same batch again", all[0:100], 0, 100, 100},
		{"an overlapping batch", all[50:200], 100, 200, 200},
		{"a replay of an old batch", all[0:10], 0, 10, 200},
		{"the rest, shuffled", shuffled(all[150:300]), 100, 300, 300},
		{"everything at once", all, 0, 300, 300},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			res, err := s.Ingest(t.Context(), station, storetest.Batch(station, st.readings))
			require.NoError(t, err)
			assert.Equal(t, st.wantNew, res.NewReadings, "new rows")
			assert.Equal(t, st.wantAcked, res.Ack.AckedSeq, "acked_seq is the batch's highest seq")
			assert.Equal(t, map[string]uint64{"readings": st.wantAcked, "alerts": 0, "wqi": 0}, res.Ack.Acked)
			assert.Equal(t, st.wantTotal, count(t, url, `SELECT count(*) FROM measurements`), "rows in measurements")
			assert.Equal(t, st.wantTotal, count(t, url, `SELECT count(DISTINCT seq) FROM measurements`), "distinct seqs")
		})
	}
	st, err := s.Station(t.Context(), station)
	require.NoError(t, err)
	assert.Equal(t, uint64(300), st.ReadingsSeq)
	require.NotNil(t, st.LastBatchAt)
}

func shuffled(rs []wire.Reading) []wire.Reading {
	out := append([]wire.Reading(nil), rs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Seq%7 < out[j].Seq%7 })
	return out
}

func testIngestStoresEveryFieldVerbatim(t *testing.T, l layout) {
	s, _ := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	nasty := []string{
		`'; DROP TABLE measurements;--`, `"quoted" and 'single'`, `back\slash \\ \n`, `नदी 🌊 Ωμέγα`,
		`$1 ? %s %% _ * `, "tab\tnew\nline", `{"json": [1]}`, `)) OR 1=1 --`,
	}
	at := time.Date(2025, 11, 13, 12, 0, 0, 123456000, time.UTC)
	var b wire.Batch
	b.V, b.Station, b.Agent = 1, station, nasty[0]
	for i, txt := range nasty {
		seq := uint64(i + 1)
		b.Readings = append(b.Readings, wire.Reading{Seq: seq, Time: at.Add(time.Duration(i) * time.Second),
			Sensor: txt, Param: "ph", Value: 7 + float64(i)/10, Unit: "pH", Quality: "suspect", Source: "sensor",
			Flags: []string{"spike", "time_unsynced"}})
		ev := storetest.Alert(seq, seq, "opened", "active", at)
		ev.Rule, ev.Key, ev.Param, ev.Sensor, ev.Message = txt, txt, txt, txt, txt
		b.Alerts = append(b.Alerts, ev)
		w := storetest.WQI(seq, at.Add(time.Duration(i)*time.Second), 50)
		w.Category, w.Missing, w.SubIndices = txt, []string{txt}, map[string]float64{txt: 1.5}
		b.WQI = append(b.WQI, w)
	}
	_, err := s.Ingest(t.Context(), station, &b)
	require.NoError(t, err)

	rs, err := s.Readings(t.Context(), store.ReadingsQuery{Station: station, Limit: 100})
	require.NoError(t, err)
	require.Len(t, rs, len(nasty))
	alerts, err := s.Alerts(t.Context(), store.AlertQuery{Station: station, Limit: 100})
	require.NoError(t, err)
	require.Len(t, alerts, len(nasty))
	wqi, err := s.WQIHistory(t.Context(), store.WQIQuery{Station: station, Limit: 100})
	require.NoError(t, err)
	require.Len(t, wqi, len(nasty))
	for i, txt := range nasty {
		r := rs[len(nasty)-1-i] // newest first
		assert.Equal(t, txt, r.Sensor)
		assert.Equal(t, []string{"spike", "time_unsynced"}, r.Flags)
		assert.Equal(t, at.Add(time.Duration(i)*time.Second), r.Time, "microsecond times survive")
		var a store.Alert
		for _, x := range alerts {
			if x.ID == uint64(i+1) {
				a = x
			}
		}
		assert.Equal(t, []string{txt, txt, txt, txt, txt}, []string{a.Rule, a.Key, a.Param, a.Sensor, a.Message})
		w := wqi[len(nasty)-1-i]
		assert.Equal(t, txt, w.Category)
		assert.Equal(t, []string{txt}, w.Missing)
		assert.Equal(t, map[string]float64{txt: 1.5}, w.SubIndices)
	}
	st, err := s.Station(t.Context(), station)
	require.NoError(t, err)
	assert.Equal(t, nasty[0], st.Agent)
}

func testIngestRejectsWhatTheDatabaseCannotHold(t *testing.T, l layout) {
	s, url := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	now := time.Now().UTC()
	tests := []struct {
		name  string
		edit  func(b *wire.Batch)
		field string
	}{
		{"NUL in a sensor name", func(b *wire.Batch) { b.Readings[1].Sensor = "a\x00b" }, "readings[1].sensor"},
		{"seq beyond bigint", func(b *wire.Batch) { b.Readings[0].Seq = math.MaxUint64 }, "readings[0].seq"},
		{"alert id beyond bigint", func(b *wire.Batch) {
			b.Alerts = []wire.AlertEvent{storetest.Alert(1, math.MaxInt64+1, "opened", "active", now)}
		}, "alerts[0].id"},
		{"NUL in a sub-index name", func(b *wire.Batch) {
			w := storetest.WQI(1, now, 50)
			w.SubIndices = map[string]float64{"\x00": 1}
			b.WQI = []wire.WQIPoint{w}
		}, "wqi[0].sub_indices"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := storetest.Batch(station, storetest.Readings(1, 3, now, time.Second))
			tc.edit(b)
			_, err := s.Ingest(t.Context(), station, b)
			require.ErrorIs(t, err, store.ErrInvalid)
			fe, ok := errors.AsType[*wire.FieldError](err)
			require.True(t, ok, "want a *wire.FieldError, got %v", err)
			assert.Equal(t, tc.field, fe.Field)
			assert.Zero(t, count(t, url, `SELECT count(*) FROM measurements`), "nothing of a refused batch is stored")
		})
	}
	_, err := s.Ingest(t.Context(), station, storetest.Batch("MH-OTHER-002", storetest.Readings(1, 1, now, time.Second)))
	require.ErrorIs(t, err, store.ErrInvalid, "a batch of another station")
}

func testAlertsFollowTheNewestTransition(t *testing.T, l layout) {
	s, url := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	t0 := time.Now().Add(-time.Hour).UTC()
	opened := storetest.Alert(1, 7, "opened", "active", t0)
	acked := storetest.Alert(2, 7, "acknowledged", "acknowledged", t0)
	ackAt := t0.Add(time.Minute).Truncate(time.Microsecond)
	acked.Time, acked.AcknowledgedAt = ackAt, &ackAt
	resolved := storetest.Alert(3, 7, "resolved", "resolved", t0)
	resAt := t0.Add(2 * time.Minute).Truncate(time.Microsecond)
	resolved.Time, resolved.ResolvedAt, resolved.AcknowledgedAt = resAt, &resAt, &ackAt
	other := storetest.Alert(4, 8, "opened", "active", t0.Add(3*time.Minute))

	ingest := func(evs ...wire.AlertEvent) {
		t.Helper()
		b := storetest.Batch(station, nil)
		b.Alerts = evs
		res, err := s.Ingest(t.Context(), station, b)
		require.NoError(t, err)
		var want uint64
		for _, e := range evs {
			want = max(want, e.Seq)
		}
		assert.Equal(t, want, res.Ack.Acked["alerts"])
		assert.Zero(t, res.Ack.AckedSeq, "no readings in the batch")
	}
	ingest(opened, resolved) // acknowledged arrives late
	ingest(acked)
	ingest(opened) // a replay
	ingest(other, resolved)

	assert.Equal(t, int64(4), count(t, url, `SELECT count(*) FROM alert_events`), "one history row per transition")
	all, err := s.Alerts(t.Context(), store.AlertQuery{Limit: 10})
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, uint64(8), all[0].ID, "newest opened first")
	a := all[1]
	assert.Equal(t, alert.Resolved, a.State, "a late or replayed older transition must not win")
	assert.Equal(t, resAt, *a.ResolvedAt)
	assert.Equal(t, ackAt, *a.AcknowledgedAt)
	assert.Equal(t, station, a.Station)

	active := true
	act, err := s.Alerts(t.Context(), store.AlertQuery{Active: &active, Limit: 10})
	require.NoError(t, err)
	require.Len(t, act, 1)
	assert.Equal(t, uint64(8), act[0].ID)
	since, err := s.Alerts(t.Context(), store.AlertQuery{Since: t0.Add(150 * time.Second), Limit: 10})
	require.NoError(t, err)
	require.Len(t, since, 1, "since filters on the latest transition")
	assert.Equal(t, uint64(8), since[0].ID)
}

func testLatestValuesKeepTheNewestUsable(t *testing.T, l layout) {
	s, _ := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	r := func(seq uint64, at time.Time, v float64, q, src string) wire.Reading {
		return wire.Reading{Seq: seq, Time: at, Sensor: "ph-1", Param: "ph", Value: v, Unit: "pH", Quality: q, Source: src}
	}
	batches := [][]wire.Reading{
		{r(1, t0, 7.0, "good", "sensor"), r(2, t0.Add(time.Minute), 7.1, "good", "sensor")},
		{r(3, t0.Add(2*time.Minute), 15, "bad", "sensor")},      // bad: ignored
		{r(4, t0.Add(-time.Hour), 6.0, "good", "sensor")},       // older: ignored
		{r(5, t0.Add(-time.Minute), 7.5, "suspect", "api")},     // another source
		{r(6, t0.Add(3*time.Minute), 7.3, "suspect", "sensor")}, // suspect is usable
	}
	for _, rs := range batches {
		_, err := s.Ingest(t.Context(), station, storetest.Batch(station, rs))
		require.NoError(t, err)
	}
	latest, err := s.LatestValues(t.Context(), station)
	require.NoError(t, err)
	require.Len(t, latest, 2)
	assert.Equal(t, "api", latest[0].Source)
	assert.Equal(t, 7.5, latest[0].Value)
	assert.Equal(t, "sensor", latest[1].Source)
	assert.Equal(t, 7.3, latest[1].Value)
	assert.Equal(t, uint64(6), latest[1].Seq)
}

// A transition a station appended twice under two seqs (a retried write it could not
// confirm) is stored once, whether both copies come in one batch or in two.
func TestAlertTransitionStoredOnce(t *testing.T) {
	s, url := storetest.Open(t, store.Options{})
	storetest.AddStation(t, s, station)
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	opened := storetest.Alert(1, 7, "opened", "active", t0)
	again := opened
	again.Seq = 2
	resolved := storetest.Alert(3, 7, "resolved", "resolved", t0.Add(time.Minute))
	twice := resolved
	twice.Seq = 4

	b := storetest.Batch(station, nil)
	b.Alerts = []wire.AlertEvent{opened, again, resolved}
	res, err := s.Ingest(t.Context(), station, b)
	require.NoError(t, err)
	assert.Equal(t, int64(2), res.NewAlerts)
	b.Alerts = []wire.AlertEvent{twice}
	res, err = s.Ingest(t.Context(), station, b)
	require.NoError(t, err)
	assert.Zero(t, res.NewAlerts)
	assert.Equal(t, uint64(4), res.Ack.Acked["alerts"], "the duplicate is acknowledged like any record already stored")

	assert.Equal(t, int64(2), count(t, url, `SELECT count(*) FROM alert_events`))
	assert.Equal(t, int64(2), count(t, url, `SELECT count(*) FROM events WHERE type = 'alert'`), "one live event per transition")
}

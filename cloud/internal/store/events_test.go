package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/wire"
)

// TestIngestWritesEventsOfWhatIsNew checks the live events a batch leaves: one per new
// reading, WQI result and alert transition, in seq order per stream, with data shaped as
// the query API shows the stored rows; a batch sent again adds none.
func testIngestWritesEventsOfWhatIsNew(t *testing.T, l layout) {
	s, _ := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	at := time.Now().Add(-time.Hour).UTC()
	b := storetest.Batch(station, shuffled(storetest.Readings(1, 20, at, time.Second)))
	b.WQI = []wire.WQIPoint{storetest.WQI(2, at.Add(30*time.Second), 71.5), storetest.WQI(1, at.Add(20*time.Second), 70)}
	b.Alerts = []wire.AlertEvent{storetest.Alert(1, 7, "opened", "active", at.Add(5*time.Second))}
	b.Readings[3].Time = b.Readings[3].Time.Add(123 * time.Nanosecond) // stored to the microsecond

	_, err := s.Ingest(t.Context(), station, b)
	require.NoError(t, err)
	evs, err := s.Events(t.Context(), store.EventQuery{Limit: 100})
	require.NoError(t, err)
	require.Len(t, evs, 23, "20 readings, 2 WQI results and 1 alert transition")

	stored, err := s.Readings(t.Context(), store.ReadingsQuery{Station: station, Limit: 100})
	require.NoError(t, err)
	for i, e := range evs[:20] {
		assert.Equal(t, store.EventReading, e.Type)
		assert.Equal(t, station, e.Station)
		want, err := json.Marshal(stored[19-i]) // the API lists newest first
		require.NoError(t, err)
		assert.JSONEq(t, string(want), string(e.Data), "event %d mirrors the API's reading", i)
		assert.Equal(t, stored[19-i].Time, e.Time)
		if i > 0 {
			assert.Greater(t, e.ID, evs[i-1].ID)
		}
	}
	wqi, err := s.WQIHistory(t.Context(), store.WQIQuery{Station: station, Limit: 10})
	require.NoError(t, err)
	for i, e := range evs[20:22] {
		assert.Equal(t, store.EventWQI, e.Type)
		want, err := json.Marshal(wqi[1-i])
		require.NoError(t, err)
		assert.JSONEq(t, string(want), string(e.Data))
	}
	alerts, err := s.Alerts(t.Context(), store.AlertQuery{Station: station, Limit: 10})
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	assert.Equal(t, store.EventAlert, evs[22].Type)
	var change store.AlertChange
	require.NoError(t, json.Unmarshal(evs[22].Data, &change))
	assert.Equal(t, "opened", change.Transition)
	assert.Equal(t, alerts[0], change.Alert, "the alert event holds the alert as the API shows it")

	_, err = s.Ingest(t.Context(), station, b)
	require.NoError(t, err)
	again, err := s.Events(t.Context(), store.EventQuery{After: evs[22].ID, Limit: 100})
	require.NoError(t, err)
	assert.Empty(t, again, "a duplicate batch adds no events")
}

// TestBackfillIsAnnouncedNotStreamed checks Options.LiveMaxAge: of a batch that brings
// readings older than it, only the recent ones get a live event each; the old ones are
// stored, rolled up and counted like any, and announced by one status event with their
// count and time span. A duplicate batch announces nothing again.
func testBackfillIsAnnouncedNotStreamed(t *testing.T, l layout) {
	now := time.Now().UTC().Truncate(time.Second)
	s, _ := l.open(t, store.Options{LiveMaxAge: time.Hour, Now: func() time.Time { return now }})
	storetest.AddStation(t, s, station)
	old := storetest.Readings(1, 30, now.Add(-3*time.Hour), time.Minute) // 3h..2h31m ago
	recent := storetest.Readings(31, 5, now.Add(-10*time.Minute), time.Minute)
	b := storetest.Batch(station, append(old, recent...))
	b.Alerts = []wire.AlertEvent{storetest.Alert(1, 7, "opened", "active", now.Add(-150*time.Minute))}

	res, err := s.Ingest(t.Context(), station, b)
	require.NoError(t, err)
	assert.EqualValues(t, 35, res.NewReadings, "every reading is stored")
	evs, err := s.Events(t.Context(), store.EventQuery{Limit: 100})
	require.NoError(t, err)
	require.Len(t, evs, 7, "5 recent readings, one backfill notice, the alert transition")
	for i, e := range evs[:5] {
		assert.Equal(t, store.EventReading, e.Type)
		assert.Equal(t, recent[i].Time, e.Time, "reading event %d", i)
	}
	assert.Equal(t, store.EventStatus, evs[5].Type)
	assert.Equal(t, old[29].Time, evs[5].Time, "the notice is dated by its newest reading")
	var got store.Backfill
	require.NoError(t, json.Unmarshal(evs[5].Data, &got))
	assert.Equal(t, store.BackfillSpan{Readings: 30, From: old[0].Time, To: old[29].Time}, got.Backfill)
	want, err := json.Marshal(got)
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(evs[5].Data), "the data is what Go encodes")
	assert.Equal(t, store.EventAlert, evs[6].Type, "alerts stream whatever their age")

	stored, err := s.Readings(t.Context(), store.ReadingsQuery{Station: station, Limit: 100})
	require.NoError(t, err)
	assert.Len(t, stored, 35)

	// A batch of old readings only: one notice. Sent again: nothing.
	b = storetest.Batch(station, storetest.Readings(36, 4, now.Add(-5*time.Hour), time.Second))
	for range 2 {
		_, err = s.Ingest(t.Context(), station, b)
		require.NoError(t, err)
	}
	more, err := s.Events(t.Context(), store.EventQuery{After: evs[6].ID, Limit: 100})
	require.NoError(t, err)
	require.Len(t, more, 1)
	require.NoError(t, json.Unmarshal(more[0].Data, &got))
	assert.EqualValues(t, 4, got.Backfill.Readings)

	// WQI results alike: the station's index history after an outage is announced, not
	// streamed as if each were its current index; a recent one streams.
	b = storetest.Batch(station, nil)
	b.WQI = []wire.WQIPoint{storetest.WQI(1, now.Add(-4*time.Hour), 70), storetest.WQI(2, now.Add(-3*time.Hour), 71),
		storetest.WQI(3, now.Add(-time.Minute), 72)}
	for range 2 {
		res, err = s.Ingest(t.Context(), station, b)
		require.NoError(t, err)
	}
	history, err := s.WQIHistory(t.Context(), store.WQIQuery{Station: station, Limit: 10})
	require.NoError(t, err)
	assert.Len(t, history, 3, "every result is stored")
	wqiEvs, err := s.Events(t.Context(), store.EventQuery{After: more[0].ID, Limit: 100})
	require.NoError(t, err)
	require.Len(t, wqiEvs, 2, "one notice for the two old results, one event for the recent one; nothing again")
	assert.Equal(t, store.EventStatus, wqiEvs[0].Type)
	got = store.Backfill{}
	require.NoError(t, json.Unmarshal(wqiEvs[0].Data, &got))
	assert.Equal(t, store.BackfillSpan{WQI: 2, From: now.Add(-4 * time.Hour), To: now.Add(-3 * time.Hour)}, got.Backfill)
	assert.Equal(t, store.EventWQI, wqiEvs[1].Type)
	assert.Equal(t, now.Add(-time.Minute), wqiEvs[1].Time)
}

// TestEventIDsFollowCommitOrder races batches of several stations against a reader that
// repeatedly asks for the events after the last id it saw, the way every replica reads
// them. If a transaction could commit an id below one already visible, the reader would
// step over it; with the events lock it sees every event exactly once.
func testEventIDsFollowCommitOrder(t *testing.T, l layout) {
	s, _ := l.open(t, store.Options{MaxConns: 12})
	const stations, batches, size = 4, 25, 20
	for i := range stations {
		storetest.AddStation(t, s, fmt.Sprintf("ST-%d", i))
	}
	start := time.Now().Add(-time.Hour)
	var wg sync.WaitGroup
	var done atomic.Bool
	for i := range stations {
		wg.Go(func() {
			id := fmt.Sprintf("ST-%d", i)
			for n := range batches {
				rs := storetest.Readings(uint64(n*size+1), size, start.Add(time.Duration(n)*time.Minute), time.Second)
				_, err := s.Ingest(t.Context(), id, storetest.Batch(id, rs))
				assert.NoError(t, err)
			}
		})
	}
	var seen []int64
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		var last int64
		for {
			finished := done.Load() // read before the query: after it nothing new comes
			evs, err := s.Events(t.Context(), store.EventQuery{After: last, Limit: 1000})
			if !assert.NoError(t, err) {
				return
			}
			for _, e := range evs {
				seen = append(seen, e.ID)
				last = e.ID
			}
			if finished && len(evs) == 0 {
				return
			}
		}
	}()
	wg.Wait()
	done.Store(true)
	<-readerDone

	all, err := s.Events(t.Context(), store.EventQuery{Limit: 100000})
	require.NoError(t, err)
	require.Len(t, all, stations*batches*size)
	ids := make([]int64, len(all))
	for i, e := range all {
		ids[i] = e.ID
	}
	assert.Equal(t, ids, seen, "a reader following id order sees every event, once, in order")
}

func testListenerAnnouncesNewEvents(t *testing.T, lay layout) {
	s, _ := lay.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	l, err := s.ListenEvents(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { l.Close(t.Context()) })

	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	_, err = l.Wait(short)
	cancel()
	require.ErrorIs(t, err, store.ErrNoNotification, "nothing happened yet")

	_, err = s.Ingest(t.Context(), station, storetest.Batch(station, storetest.Readings(1, 5, time.Now().Add(-time.Minute), time.Second)))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	id, err := l.Wait(ctx)
	require.NoError(t, err, "the listener survives a wait that timed out")
	_, last, err := s.EventBounds(t.Context())
	require.NoError(t, err)
	assert.Equal(t, last, id, "the notification carries the highest new id")
}

func testEventGapBoundsAndPrune(t *testing.T, l layout) {
	var now atomic.Pointer[time.Time]
	t0 := time.Now().UTC()
	now.Store(&t0)
	s, _ := l.open(t, store.Options{})
	storetest.AddStation(t, s, "A")
	storetest.AddStation(t, s, "B")
	ingest := func(st string, from uint64) {
		t.Helper()
		_, err := s.Ingest(t.Context(), st, storetest.Batch(st, storetest.Readings(from, 3, t0.Add(-time.Hour), time.Second)))
		require.NoError(t, err)
	}
	ingest("A", 1)
	mid := time.Now()
	time.Sleep(5 * time.Millisecond)
	ingest("B", 1)
	ingest("A", 4)

	first, last, err := s.EventBounds(t.Context())
	require.NoError(t, err)
	assert.Equal(t, int64(9), last-first+1)
	before, err := s.EventIDBefore(t.Context(), mid)
	require.NoError(t, err)
	assert.Equal(t, first+2, before, "the events stored before mid are A's first three")

	tests := []struct {
		name string
		q    store.EventQuery
		want int
	}{
		{"all after the first", store.EventQuery{After: first, Limit: 100}, 8},
		{"capped by the limit", store.EventQuery{After: first, Limit: 5}, 5},
		{"one station", store.EventQuery{After: 0, Stations: []string{"A"}, Limit: 100}, 6},
		{"up to a bound", store.EventQuery{After: 0, Upto: first + 3, Stations: []string{"B"}, Limit: 100}, 1},
		{"nothing after the last", store.EventQuery{After: last, Limit: 100}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := s.Gap(t.Context(), tt.q)
			require.NoError(t, err)
			assert.Equal(t, tt.want, g.Count)
			evs, err := s.Events(t.Context(), tt.q)
			require.NoError(t, err)
			assert.Len(t, evs, tt.want)
			if tt.want > 0 {
				assert.Equal(t, evs[0].CreatedAt, g.FirstCreated)
			} else {
				assert.True(t, g.FirstCreated.IsZero())
			}
		})
	}

	n, err := s.PruneEvents(t.Context(), mid)
	require.NoError(t, err)
	assert.Equal(t, int64(3), n)
	first, _, err = s.EventBounds(t.Context())
	require.NoError(t, err)
	assert.Equal(t, before+1, first)
}

// TestStationHealthOfflineThenOnline drives the health check with the store's clock: a
// silent station goes offline with a cloud alert and a status event, once; its next batch
// brings it back and resolves the alert; a station alert with the same id number is a
// different alert.
func testStationHealthOfflineThenOnline(t *testing.T, l layout) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	s, _ := l.open(t, store.Options{Now: clock})
	storetest.AddStation(t, s, "A")
	storetest.AddStation(t, s, "SLOW")
	storetest.AddStation(t, s, "NEVER") // never sent anything: not offline, unknown
	at := time.Now().Add(-time.Hour).UTC()
	for _, id := range []string{"A", "SLOW"} {
		_, err := s.Ingest(t.Context(), id, storetest.Batch(id, storetest.Readings(1, 2, at, time.Second)))
		require.NoError(t, err)
	}
	policy := store.HealthPolicy{OfflineAfter: 10 * time.Minute, ByStation: map[string]time.Duration{"SLOW": time.Hour}}

	changes, err := s.CheckStationHealth(t.Context(), policy)
	require.NoError(t, err)
	assert.Empty(t, changes, "everyone reported just now")

	offset.Store(int64(11 * time.Minute))
	_, mark, err := s.EventBounds(t.Context())
	require.NoError(t, err)
	changes, err = s.CheckStationHealth(t.Context(), policy)
	require.NoError(t, err)
	require.Len(t, changes, 1, "A is silent past 10m; SLOW has an hour")
	assert.Equal(t, "A", changes[0].Station)
	assert.False(t, changes[0].Online)
	again, err := s.CheckStationHealth(t.Context(), policy)
	require.NoError(t, err)
	assert.Empty(t, again, "an offline station is taken offline once")

	st, err := s.Station(t.Context(), "A")
	require.NoError(t, err)
	require.NotNil(t, st.OfflineSince)
	evs, err := s.Events(t.Context(), store.EventQuery{After: mark, Limit: 10})
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.Equal(t, store.EventStatus, evs[0].Type)
	var status store.StationStatus
	require.NoError(t, json.Unmarshal(evs[0].Data, &status))
	assert.Equal(t, store.StateOffline, status.State)
	assert.False(t, status.Online)
	assert.Equal(t, store.EventAlert, evs[1].Type)
	var opened store.AlertChange
	require.NoError(t, json.Unmarshal(evs[1].Data, &opened))
	assert.Equal(t, store.RuleStationOffline, opened.Rule)
	assert.Equal(t, store.OriginCloud, opened.Origin)
	assert.Equal(t, alert.Active, opened.State)
	assert.Equal(t, changes[0].AlertID, opened.ID)

	// An agent alert with the same id number at the same station is another alert.
	b := storetest.Batch("A", storetest.Readings(3, 1, at.Add(time.Minute), time.Second))
	b.Alerts = []wire.AlertEvent{storetest.Alert(1, changes[0].AlertID, "opened", "active", at)}
	_, err = s.Ingest(t.Context(), "A", b)
	require.NoError(t, err)

	st, err = s.Station(t.Context(), "A")
	require.NoError(t, err)
	assert.Nil(t, st.OfflineSince, "a batch brings the station back")
	alerts, err := s.Alerts(t.Context(), store.AlertQuery{Station: "A", Limit: 10})
	require.NoError(t, err)
	require.Len(t, alerts, 2)
	byOrigin := map[string]store.Alert{}
	for _, a := range alerts {
		byOrigin[a.Origin] = a
	}
	assert.Equal(t, alert.Resolved, byOrigin[store.OriginCloud].State)
	assert.NotNil(t, byOrigin[store.OriginCloud].ResolvedAt)
	assert.Equal(t, alert.Active, byOrigin[store.OriginStation].State)
	assert.Equal(t, byOrigin[store.OriginStation].ID, byOrigin[store.OriginCloud].ID)

	evs, err = s.Events(t.Context(), store.EventQuery{After: evs[1].ID, Limit: 10})
	require.NoError(t, err)
	types := []string{}
	for _, e := range evs {
		types = append(types, e.Type)
	}
	assert.Equal(t, []string{"status", "alert", "reading", "alert"}, types,
		"back online first (status, cloud alert resolved), then the batch's reading and alert")
	require.NoError(t, json.Unmarshal(evs[0].Data, &status))
	assert.Equal(t, store.StateOnline, status.State)
	assert.True(t, status.Online)
	require.NotNil(t, status.OfflineSince)
	var resolved store.AlertChange
	require.NoError(t, json.Unmarshal(evs[1].Data, &resolved))
	assert.Equal(t, "resolved", resolved.Transition)
	assert.Equal(t, store.OriginCloud, resolved.Origin)

	_, err = s.CheckStationHealth(t.Context(), store.HealthPolicy{})
	assert.True(t, errors.Is(err, store.ErrInvalid), "a policy without a threshold is refused")
}

// TestEventDataIsWhatGoEncodes checks that the data of the events PostgreSQL builds for
// new rows is, once compacted as the fan-out sends it (json.Marshal of a RawMessage), the
// very bytes encoding/json makes of what the query API returns for the same rows: numbers
// in Go's notation at every magnitude, strings escaped alike, times with trailing zeros
// trimmed, map keys in byte order, optional members omitted.
func testEventDataIsWhatGoEncodes(t *testing.T, l layout) {
	s, _ := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	values := []float64{0, math.Copysign(0, -1), 7.2, -123.456, 0.1 + 0.2, 1e-4, 0.0001234, 9.9e-5, 1.5e-5,
		1e-6, -2.5e-6, 9.999999999999999e-7, 1e-7, 1e-100, 5e-324, 999999999999999.9, 1e15, 1.2345e20,
		1e21, -1.5e300, math.MaxFloat64, 12345678.000001}
	texts := []string{"plain", "", `<b>&"quoted" \back\slash`, "tab\tnew\nline\r\b\f\x01\x1f\x7f",
		"नदी 🌊 Ωμέγα", "line\u2028para\u2029", `{"json": [1]}`}
	base := time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)
	fractions := []time.Duration{0, 500 * time.Millisecond, 123456 * time.Microsecond, time.Microsecond,
		100 * time.Millisecond, 120 * time.Millisecond, 1234567 * time.Nanosecond}
	var b wire.Batch
	b.V, b.Station, b.Agent = wire.Version, station, "test"
	for i, v := range values {
		seq := uint64(i + 1)
		at := base.Add(time.Duration(i)*time.Minute + fractions[i%len(fractions)])
		r := wire.Reading{Seq: seq, Time: at, Sensor: texts[i%len(texts)], Param: "ph", Value: v, Unit: "pH",
			Quality: "good", Source: "sensor"}
		if i%2 == 1 {
			r.Flags = []string{"spike", texts[(i+2)%len(texts)]}
		}
		if i%3 == 2 { // a lab sample: its provenance travels in the event too
			r.Source, r.SampleID, r.Lab, r.Method = "manual", texts[(i+1)%len(texts)], texts[(i+2)%len(texts)], "APHA 5210 B"
		}
		b.Readings = append(b.Readings, r)

		w := storetest.WQI(seq, at, float64(i))
		w.Category, w.SubIndices = texts[(i+1)%len(texts)], map[string]float64{"b": v, "aa": 1, "a": -v, "Z": 2, "é": 3, "<": 4}
		switch i % 3 {
		case 0:
			w.DOSaturationPct, w.Missing = nil, nil
		case 1:
			w.DOSaturationPct, w.SubIndices = &values[i], nil
		}
		b.WQI = append(b.WQI, w)

		a := storetest.Alert(seq, seq, "opened", "active", at)
		a.Sensor, a.Message, a.Rule = texts[i%len(texts)], texts[(i+3)%len(texts)], texts[(i+4)%len(texts)]
		a.Value, a.Limit = &values[i], &values[len(values)-1-i]
		if i%2 == 0 {
			a.Value, a.Transition, a.State = nil, "resolved", alert.Resolved
			resolved := at.Add(time.Second)
			a.ResolvedAt = &resolved
		}
		if i%3 == 0 {
			a.Limit, a.Transition, a.State = nil, "acknowledged", alert.Acknowledged
			acked := at.Add(500 * time.Millisecond)
			a.AcknowledgedAt = &acked
		}
		b.Alerts = append(b.Alerts, a)
	}
	b.Readings[len(b.Readings)-1].Time = time.Date(999, 1, 2, 3, 4, 5, 6000, time.UTC) // a four-digit year with zeros
	_, err := s.Ingest(t.Context(), station, &b)
	require.NoError(t, err)

	evs, err := s.Events(t.Context(), store.EventQuery{Limit: 1000})
	require.NoError(t, err)
	require.Len(t, evs, 3*len(values))
	readings, err := s.Readings(t.Context(), store.ReadingsQuery{Station: station, Limit: 1000})
	require.NoError(t, err)
	bySeq := map[uint64]store.Reading{}
	for _, r := range readings {
		bySeq[r.Seq] = r
	}
	wqi, err := s.WQIHistory(t.Context(), store.WQIQuery{Station: station, Limit: 1000})
	require.NoError(t, err)
	wqiBySeq := map[uint64]wire.WQIPoint{}
	for _, w := range wqi {
		wqiBySeq[w.Seq] = w
	}
	alerts, err := s.Alerts(t.Context(), store.AlertQuery{Station: station, Limit: 1000})
	require.NoError(t, err)
	alertByID := map[uint64]store.Alert{}
	for _, a := range alerts {
		alertByID[a.ID] = a
	}

	for i, e := range evs {
		seq := uint64(i%len(values) + 1)
		var want any
		switch i / len(values) {
		case 0:
			require.Equal(t, store.EventReading, e.Type)
			want = bySeq[seq]
		case 1:
			require.Equal(t, store.EventWQI, e.Type)
			want = wqiBySeq[seq]
		case 2:
			require.Equal(t, store.EventAlert, e.Type)
			want = store.AlertChange{Alert: alertByID[seq], Transition: b.Alerts[seq-1].Transition}
		}
		wantJSON, err := json.Marshal(want)
		require.NoError(t, err)
		got, err := json.Marshal(json.RawMessage(e.Data))
		require.NoError(t, err, "event %d holds valid JSON: %s", e.ID, e.Data)
		assert.Equal(t, string(wantJSON), string(got), "%s event of seq %d", e.Type, seq)
	}
}

// FuzzReadingEventData stores readings with arbitrary text, values and times and checks
// that each reading's event data, compacted as the fan-out sends it, is what encoding/json
// makes of the reading as the query API returns it, byte for byte.
func FuzzReadingEventData(f *testing.F) {
	f.Add("ph-1", "pH", 7.2, int64(0), true)
	f.Add(`<b>&"x"\`, "µS/cm", 1e-7, int64(123456789), false)
	f.Add("tab\t\x01\u2028🌊", "", -1.5e300, int64(-1), true)
	f.Add("", "°C", 0.000015, int64(1e18), false)
	f.Add("नदी", "NTU", 1e21, int64(999), true)
	f.Add("x", "y", 7e22, int64(1097), false)
	s, _ := storetest.Open(f, store.Options{})
	storetest.AddStation(f, s, station)
	var seq uint64
	var last int64 // the newest event seen; iterations of one process run one at a time
	f.Fuzz(func(t *testing.T, text, unit string, value float64, micros int64, flagged bool) {
		if !utf8.ValidString(text) || !utf8.ValidString(unit) || strings.ContainsRune(text+unit, 0) ||
			math.IsNaN(value) || math.IsInf(value, 0) {
			t.Skip("not a reading a batch can carry")
		}
		// Any time from year 1 to 9999, to the microsecond PostgreSQL keeps.
		const span = int64(9998*365*24*3600) * 1e6
		at := time.UnixMicro(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro() + (micros%span+span)%span).UTC()
		seq++
		r := wire.Reading{Seq: seq, Time: at, Sensor: text, Param: "ph", Value: value, Unit: unit,
			Quality: "good", Source: "sensor"}
		// The reading as the query API returns it (TestIngestStoresEveryFieldVerbatim).
		want := store.Reading{Seq: r.Seq, Time: at, Param: r.Param, Value: value, Unit: unit, Quality: r.Quality,
			Source: r.Source, Sensor: text}
		if flagged {
			r.Flags = []string{text, "spike"}
			want.Flags = r.Flags
		}
		res, err := s.Ingest(t.Context(), station, storetest.Batch(station, []wire.Reading{r}))
		require.NoError(t, err)
		require.Equal(t, int64(1), res.NewReadings)
		evs, err := s.Events(t.Context(), store.EventQuery{After: last, Limit: 10})
		require.NoError(t, err)
		require.Len(t, evs, 1)
		last = evs[0].ID
		wantJSON, err := json.Marshal(want)
		require.NoError(t, err)
		got, err := json.Marshal(json.RawMessage(evs[0].Data))
		require.NoError(t, err, "valid JSON: %s", evs[0].Data)
		var back store.Reading
		require.NoError(t, json.Unmarshal(got, &back))
		assert.Equal(t, want, back, "the event reads back as the reading")
		assert.Equal(t, string(wantJSON), string(got))
	})
}

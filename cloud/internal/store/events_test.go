package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/shared/wire"
)

// TestIngestWritesEventsOfWhatIsNew checks the live events a batch leaves: one per new
// reading, WQI result and alert transition, in seq order per stream, with data shaped as
// the query API shows the stored rows; a batch sent again adds none.
func TestIngestWritesEventsOfWhatIsNew(t *testing.T) {
	s, _ := storetest.Open(t, store.Options{})
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

// TestEventIDsFollowCommitOrder races batches of several stations against a reader that
// repeatedly asks for the events after the last id it saw, the way every replica reads
// them. If a transaction could commit an id below one already visible, the reader would
// step over it; with the events lock it sees every event exactly once.
func TestEventIDsFollowCommitOrder(t *testing.T) {
	s, _ := storetest.Open(t, store.Options{MaxConns: 12})
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

func TestListenerAnnouncesNewEvents(t *testing.T) {
	s, _ := storetest.Open(t, store.Options{})
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

func TestEventGapBoundsAndPrune(t *testing.T) {
	var now atomic.Pointer[time.Time]
	t0 := time.Now().UTC()
	now.Store(&t0)
	s, _ := storetest.Open(t, store.Options{})
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
func TestStationHealthOfflineThenOnline(t *testing.T) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	s, _ := storetest.Open(t, store.Options{Now: clock})
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
	assert.Equal(t, "active", opened.State)
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
	assert.Equal(t, "resolved", byOrigin[store.OriginCloud].State)
	assert.NotNil(t, byOrigin[store.OriginCloud].ResolvedAt)
	assert.Equal(t, "active", byOrigin[store.OriginAgent].State)
	assert.Equal(t, byOrigin[store.OriginAgent].ID, byOrigin[store.OriginCloud].ID)

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

package fanout_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/fanout"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
)

// memSource is a Source that keeps its events in memory: a small real implementation,
// so that the hub's tests need no database. Events get ids in the order they are added;
// like the database, it keeps each ingest's readings as one row of their span. It is safe
// for concurrent use.
type memSource struct {
	mu       sync.Mutex
	evs      []store.Event // id order; pruning removes the oldest
	lastID   int64
	stations map[string]bool
	seq      map[string]uint64 // next reading seq per station
	added    chan struct{}     // closed and replaced whenever events are added
}

func newMemSource() *memSource {
	return &memSource{stations: map[string]bool{}, seq: map[string]uint64{}, added: make(chan struct{})}
}

func (m *memSource) Follow(ctx context.Context, recent int, start func(int64, []store.Event), publish func([]store.Event)) error {
	m.mu.Lock()
	last := m.lastID
	after := max(0, last-int64(recent))
	tail := m.selectLocked(fanout.ReplayQuery{After: after, Upto: last})
	m.mu.Unlock()
	start(after, tail)
	for cursor := last; ; {
		m.mu.Lock()
		added := m.added
		evs := m.selectLocked(fanout.ReplayQuery{After: cursor, Upto: m.lastID})
		m.mu.Unlock()
		if len(evs) > 0 {
			publish(evs)
			cursor = evs[len(evs)-1].ID
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-added:
		}
	}
}

func (m *memSource) IDBefore(_ context.Context, t time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, _ := slices.BinarySearchFunc(m.evs, t, func(e store.Event, t time.Time) int { return e.CreatedAt.Compare(t) })
	if i == 0 {
		return 0, nil
	}
	return m.evs[i-1].ID, nil
}

func (m *memSource) Replay(_ context.Context, q fanout.ReplayQuery, send func(store.Event) error) error {
	m.mu.Lock()
	var first int64
	if len(m.evs) > 0 {
		first = m.evs[0].First()
	}
	last, evs := m.lastID, m.selectLocked(q)
	m.mu.Unlock()
	var gap store.EventGap
	for _, e := range evs {
		gap.Count += int(min(e.ID, q.Upto) - max(e.First()-1, q.After))
	}
	if len(evs) > 0 {
		gap.FirstCreated = evs[0].CreatedAt
	}
	if err := q.Check(first, last, gap); err != nil {
		return err
	}
	for _, e := range evs {
		if err := send(e); err != nil {
			return err
		}
	}
	return nil
}

func (m *memSource) UnknownStations(_ context.Context, ids []string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var unknown []string
	for _, id := range ids {
		if !m.stations[id] {
			unknown = append(unknown, id)
		}
	}
	return unknown, nil
}

// selectLocked returns the rows with events in (q.After, q.Upto] of q.Stations (all when
// nil).
func (m *memSource) selectLocked(q fanout.ReplayQuery) []store.Event {
	var out []store.Event
	for _, e := range m.evs {
		if e.ID > q.After && e.First() <= q.Upto && (q.Stations == nil || slices.Contains(q.Stations, e.Station)) {
			out = append(out, e)
		}
	}
	return out
}

// The backend methods.

func (m *memSource) addStation(_ testing.TB, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stations[id] = true
}

func (m *memSource) ingest(t testing.TB, station string, n int) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seq[station] == 0 {
		m.seq[station] = 1
	}
	now := time.Now().UTC()
	rs := storetest.Readings(m.seq[station], n, now.Add(-time.Hour), time.Millisecond)
	data, err := json.Marshal(rs)
	require.NoError(t, err)
	m.lastID += int64(n)
	m.evs = append(m.evs, store.Event{ID: m.lastID, Station: station, Type: store.EventReadings,
		Time: rs[n-1].Time, Data: data, CreatedAt: now, Span: int64(n)})
	m.seq[station] += uint64(n)
	close(m.added)
	m.added = make(chan struct{})
}

// events returns the events as clients see them: each reading of a row on its own.
func (m *memSource) events(t testing.TB, after int64, stations ...string) []store.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := fanout.ReplayQuery{After: after, Upto: m.lastID}
	if len(stations) > 0 {
		q.Stations = stations
	}
	var out []store.Event
	for _, row := range m.selectLocked(q) {
		evs, err := row.Expand()
		require.NoError(t, err)
		for _, e := range evs {
			if e.ID > after {
				out = append(out, e)
			}
		}
	}
	return out
}

func (m *memSource) lastEventID(testing.TB) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastID
}

func (m *memSource) prune(_ testing.TB, before time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evs = slices.DeleteFunc(m.evs, func(e store.Event) bool { return e.CreatedAt.Before(before) })
}

package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/shared/wire"
)

func committedRanges(t *testing.T, url string) string {
	t.Helper()
	conn := connect(t, url)
	var r string
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT readings_committed::text FROM station_ingest WHERE station_id = $1`,
		station).Scan(&r))
	return r
}

// testIngestAfterTheAgentLostItsBuffer: an agent whose buffer was lost counts its seqs
// from 1 again. Its new readings carry seqs the cloud already holds, at other times: they
// are stored (the committed ranges send them through the checked path) and get their
// events, and a replay of old or new readings still adds nothing.
func testIngestAfterTheAgentLostItsBuffer(t *testing.T, l layout) {
	s, url := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	t0 := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	before := storetest.Readings(1, 100, t0, time.Second)
	again := storetest.Readings(1, 150, t0.Add(time.Hour), time.Second) // 1..100 taken, 101..150 not

	steps := []struct {
		name      string
		readings  []wire.Reading
		wantNew   int64
		wantTotal int64
		ranges    string
	}{
		{"before the loss", before, 100, 100, "{[1,101)}"},
		{"after it, seqs from 1 again", again, 150, 250, "{[1,151)}"},
		{"a replay of the old readings", before[20:60], 0, 250, "{[1,151)}"},
		{"a replay of the new ones", again[90:140], 0, 250, "{[1,151)}"},
	}
	var last int64
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			res, err := s.Ingest(t.Context(), station, storetest.Batch(station, st.readings))
			require.NoError(t, err)
			assert.Equal(t, st.wantNew, res.NewReadings)
			assert.Equal(t, st.wantTotal, count(t, url, `SELECT count(*) FROM measurements`))
			assert.Equal(t, st.ranges, committedRanges(t, url))
			evs, err := s.Events(t.Context(), store.EventQuery{After: last, Limit: 1000})
			require.NoError(t, err)
			assert.Len(t, evs, int(st.wantNew), "one event per new reading")
			if len(evs) > 0 {
				last = evs[len(evs)-1].ID
			}
		})
	}
	rs, err := s.Readings(t.Context(), store.ReadingsQuery{Station: station, Limit: 1000})
	require.NoError(t, err)
	require.Len(t, rs, 250)
	assert.Equal(t, again[149].Time, rs[0].Time, "the newest is the restarted agent's last")
}

// testIngestRangesFollowTheLanes: the live lane sends a station's newest readings before
// its backlog, which then fills the hole below them; a seq twice in one batch is stored
// once. The committed ranges say exactly what is stored, and every reading is counted once.
func testIngestRangesFollowTheLanes(t *testing.T, l layout) {
	s, url := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	all := storetest.Readings(1, 1000, time.Now().Add(-3*time.Hour).UTC(), 10*time.Second)
	twice := append(append([]wire.Reading(nil), all[600:700]...), all[650], all[699])
	steps := []struct {
		name     string
		readings []wire.Reading
		wantNew  int64
		ranges   string
	}{
		{"the backlog's start", all[0:200], 200, "{[1,201)}"},
		{"the live lane's newest", all[900:1000], 100, "{[1,201),[901,1001)}"},
		{"the backlog, with the newest again", append(append([]wire.Reading(nil), all[200:400]...), all[950:1000]...), 200,
			"{[1,401),[901,1001)}"},
		{"seqs twice in a batch", twice, 100, "{[1,401),[601,701),[901,1001)}"},
		{"the hole filled, overlapping both sides", all[350:950], 400, "{[1,1001)}"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			res, err := s.Ingest(t.Context(), station, storetest.Batch(station, st.readings))
			require.NoError(t, err)
			assert.Equal(t, st.wantNew, res.NewReadings)
			assert.Equal(t, st.ranges, committedRanges(t, url))
		})
	}
	assert.Equal(t, int64(1000), count(t, url, `SELECT count(*) FROM measurements`))
	assert.Equal(t, int64(1000), count(t, url, `SELECT count(DISTINCT seq) FROM measurements`))
	checkRollups(t, s, all)
}

// testReadingEventsAreOneRowPerBatch: a batch's live readings are one row of the events
// table; reading them back gives one event per reading with ids of their own, and every
// bound (After, Upto, Limit, Gap) may fall inside that row.
func testReadingEventsAreOneRowPerBatch(t *testing.T, l layout) {
	s, url := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	rs := storetest.Readings(1, 20, time.Now().Add(-time.Minute).UTC(), time.Second)
	_, err := s.Ingest(t.Context(), station, storetest.Batch(station, shuffled(rs)))
	require.NoError(t, err)
	assert.Equal(t, int64(1), count(t, url, `SELECT count(*) FROM events`), "one row for the batch")
	first, last, err := s.EventBounds(t.Context())
	require.NoError(t, err)
	require.Equal(t, int64(19), last-first)

	all, err := s.Events(t.Context(), store.EventQuery{Limit: 100})
	require.NoError(t, err)
	require.Len(t, all, 20)
	for i, e := range all {
		assert.Equal(t, first+int64(i), e.ID)
		assert.Equal(t, store.EventReading, e.Type)
		assert.Equal(t, rs[i].Time, e.Time)
		var r store.Reading
		require.NoError(t, json.Unmarshal(e.Data, &r))
		assert.Equal(t, rs[i].Seq, r.Seq, "in seq order")
	}
	tests := []struct {
		name     string
		q        store.EventQuery
		from, to int // all[from:to]
	}{
		{"after one inside", store.EventQuery{After: first + 4, Limit: 100}, 5, 20},
		{"up to one inside", store.EventQuery{Upto: first + 6, Limit: 100}, 0, 7},
		{"both inside", store.EventQuery{After: first + 2, Upto: first + 6, Limit: 100}, 3, 7},
		{"a limit inside", store.EventQuery{After: first + 2, Limit: 5}, 3, 8},
		{"after the last", store.EventQuery{After: last, Limit: 100}, 20, 20},
		{"another station", store.EventQuery{Stations: []string{"OTHER"}, Limit: 100}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := s.Events(t.Context(), tt.q)
			require.NoError(t, err)
			assert.Equal(t, all[tt.from:tt.to], append([]store.Event{}, evs...))
			g, err := s.Gap(t.Context(), tt.q)
			require.NoError(t, err)
			assert.Equal(t, tt.to-tt.from, g.Count)
		})
	}

	// Pruning counts the events the row stood for.
	n, err := s.PruneEvents(t.Context(), time.Now().Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, int64(20), n)
}

// TestRangesAfterUpgrade migrates a database from before the committed ranges: each
// station starts with every seq up to the highest it sent, so replays of what it holds
// add nothing and what comes after is copied.
func TestRangesAfterUpgrade(t *testing.T) {
	url := storetest.Migrated(t)
	s := storetest.OpenURL(t, url, store.Options{})
	storetest.AddStation(t, s, station)
	all := storetest.Readings(1, 600, time.Now().UTC().Add(-5*time.Hour), 10*time.Second)
	_, err := s.Ingest(t.Context(), station, storetest.Batch(station, all[:350]))
	require.NoError(t, err)
	s.Close()

	// Back to the version before the ranges (the later migrations run again over
	// themselves, as every migration may).
	version := count(t, url, `SELECT version FROM schema_migrations WHERE name = 'ingest_ranges'`)
	execSQL(t, url, `ALTER TABLE station_ingest DROP COLUMN readings_committed;
		DELETE FROM schema_migrations WHERE version >= (SELECT version FROM schema_migrations WHERE name = 'ingest_ranges')`)
	res, err := store.Migrate(t.Context(), url, store.MigrateOptions{})
	require.NoError(t, err)
	assert.Contains(t, res.Applied, int(version))
	assert.Equal(t, "{[0,351)}", committedRanges(t, url))

	s = storetest.OpenURL(t, url, store.Options{})
	got, err := s.Ingest(t.Context(), station, storetest.Batch(station, all[200:]))
	require.NoError(t, err)
	assert.Equal(t, int64(250), got.NewReadings)
	assert.Equal(t, int64(600), count(t, url, `SELECT count(*) FROM measurements`))
	assert.Equal(t, "{[0,601)}", committedRanges(t, url))
	checkRollups(t, s, all)
}

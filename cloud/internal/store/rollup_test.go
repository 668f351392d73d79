package store_test

import (
	"encoding/json"
	"math/rand/v2"
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

type stats struct {
	sum, min, max float64
	n             int64
}

// expectRollups computes the buckets independently from the readings: usable readings
// only, UTC hours or days.
func expectRollups(rs []wire.Reading, size time.Duration) map[store.RollupPosition]stats {
	out := map[store.RollupPosition]stats{}
	for _, r := range rs {
		if r.Quality == "bad" {
			continue
		}
		k := store.RollupPosition{Bucket: r.Time.UTC().Truncate(size), Param: r.Param}
		st, ok := out[k]
		if !ok {
			st = stats{min: r.Value, max: r.Value}
		}
		st.sum += r.Value
		st.min, st.max = min(st.min, r.Value), max(st.max, r.Value)
		st.n++
		out[k] = st
	}
	return out
}

func testRollupsMatchAnIndependentComputation(t *testing.T, l layout) {
	s, _ := l.open(t, store.Options{})
	storetest.AddStation(t, s, station)
	rng := rand.New(rand.NewPCG(1, 2))
	// Three days of readings every 7 minutes, values random, sent in overlapping batches
	// in a scrambled order: each batch touches buckets that already hold rows.
	start := time.Now().UTC().Truncate(24 * time.Hour).Add(-2*24*time.Hour + 13*time.Minute)
	all := storetest.Readings(1, 3*24*60/7, start, 7*time.Minute)
	for i := range all {
		all[i].Value = rng.Float64() * 10
	}
	for _, span := range [][2]int{{300, 500}, {0, 250}, {450, 617}, {100, 350}, {200, 201}} {
		_, err := s.Ingest(t.Context(), station, storetest.Batch(station, all[span[0]:span[1]]))
		require.NoError(t, err)
	}

	for _, tc := range []struct {
		size store.BucketSize
		d    time.Duration
	}{{store.Hourly, time.Hour}, {store.Daily, 24 * time.Hour}} {
		t.Run(string(tc.size), func(t *testing.T) {
			want := expectRollups(all, tc.d)
			got, err := s.Rollups(t.Context(), store.RollupQuery{Station: station, Size: tc.size, Limit: 10000})
			require.NoError(t, err)
			require.Len(t, got, len(want), "one bucket per (bucket, param) with usable readings")
			for i, r := range got {
				if i > 0 {
					prev := got[i-1]
					assert.True(t, prev.Bucket.After(r.Bucket) || prev.Bucket.Equal(r.Bucket) && prev.Param > r.Param,
						"newest first: %v %s then %v %s", prev.Bucket, prev.Param, r.Bucket, r.Param)
				}
				w, ok := want[store.RollupPosition{Bucket: r.Bucket, Param: r.Param}]
				require.True(t, ok, "unexpected bucket %v %s", r.Bucket, r.Param)
				assert.Equal(t, w.n, r.Count, "count %v %s", r.Bucket, r.Param)
				assert.InEpsilon(t, w.sum/float64(w.n), r.Avg, 1e-9, "avg %v %s", r.Bucket, r.Param)
				assert.Equal(t, w.min, r.Min, "min %v %s", r.Bucket, r.Param)
				assert.Equal(t, w.max, r.Max, "max %v %s", r.Bucket, r.Param)
			}
		})
	}

	t.Run("filters", func(t *testing.T) {
		from := start.Truncate(time.Hour).Add(5 * time.Hour)
		to := from.Add(3 * time.Hour)
		got, err := s.Rollups(t.Context(), store.RollupQuery{Station: station, Size: store.Hourly, Param: "do",
			From: from, To: to, Limit: 100})
		require.NoError(t, err)
		require.Len(t, got, 3)
		for _, r := range got {
			assert.Equal(t, "do", r.Param)
			assert.False(t, r.Bucket.Before(from) || !r.Bucket.Before(to), "bucket %v outside [%v, %v)", r.Bucket, from, to)
		}
	})
}

// checkRollups compares both rollups of station with an independent computation from all.
func checkRollups(t *testing.T, s *store.Store, all []wire.Reading) {
	t.Helper()
	for _, tc := range []struct {
		size store.BucketSize
		d    time.Duration
	}{{store.Hourly, time.Hour}, {store.Daily, 24 * time.Hour}} {
		want := expectRollups(all, tc.d)
		got, err := s.Rollups(t.Context(), store.RollupQuery{Station: station, Size: tc.size, Limit: 10000})
		require.NoError(t, err)
		require.Len(t, got, len(want), "%s: one bucket per (bucket, param) with usable readings", tc.size)
		for _, r := range got {
			w, ok := want[store.RollupPosition{Bucket: r.Bucket, Param: r.Param}]
			require.True(t, ok, "%s: unexpected bucket %v %s", tc.size, r.Bucket, r.Param)
			assert.Equal(t, w.n, r.Count, "%s count %v %s", tc.size, r.Bucket, r.Param)
			assert.InEpsilon(t, w.sum/float64(w.n), r.Avg, 1e-9, "%s avg %v %s", tc.size, r.Bucket, r.Param)
			assert.Equal(t, w.min, r.Min, "%s min %v %s", tc.size, r.Bucket, r.Param)
			assert.Equal(t, w.max, r.Max, "%s max %v %s", tc.size, r.Bucket, r.Param)
		}
	}
}

// TestConcurrentOverlappingBatchesCountOnce sends overlapping batches of one station from
// several goroutines at once, as an agent retrying over several connections might: each
// reading is stored, counted in its buckets and published once. Batches store their
// readings side by side, so a batch often copies readings that another stores a moment
// before it commits.
func testConcurrentOverlappingBatchesCountOnce(t *testing.T, l layout) {
	s, url := l.open(t, store.Options{MaxConns: 8})
	storetest.AddStation(t, s, station)
	start := time.Now().UTC().Add(-3 * time.Hour)
	all := storetest.Readings(1, 1200, start, 5*time.Second)
	var wg sync.WaitGroup
	var added atomic.Int64
	for g := range 4 {
		wg.Go(func() {
			for i := range 12 {
				from := ((i*7 + g*3) % 12) * 100 // every sender covers everything, in its own order
				to := min(from+150, len(all))
				res, err := s.Ingest(t.Context(), station, storetest.Batch(station, all[from:to]))
				assert.NoError(t, err)
				added.Add(res.NewReadings)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(len(all)), added.Load(), "new readings reported, over all batches")
	assert.Equal(t, int64(len(all)), count(t, url, `SELECT count(*) FROM measurements`))
	assert.Equal(t, "{[1,1201)}", committedRanges(t, url))

	checkRollups(t, s, all)
	evs, err := s.Events(t.Context(), store.EventQuery{Limit: 10000})
	require.NoError(t, err)
	seen := map[uint64]int{}
	for _, e := range evs {
		var r store.Reading
		require.NoError(t, json.Unmarshal(e.Data, &r))
		seen[r.Seq]++
	}
	assert.Len(t, evs, len(all), "one event per reading")
	for _, r := range all {
		assert.Equal(t, 1, seen[r.Seq], "events of seq %d", r.Seq)
	}
}

// TestRollupSumsAfterUpgrade migrates a database whose rollups predate their sums (schema
// 3): the buckets it holds keep counting correctly as batches add to them.
func TestRollupSumsAfterUpgrade(t *testing.T) {
	url := storetest.Migrated(t)
	s := storetest.OpenURL(t, url, store.Options{})
	storetest.AddStation(t, s, station)
	start := time.Now().UTC().Truncate(time.Hour).Add(-5*time.Hour + 17*time.Minute)
	all := storetest.Readings(1, 600, start, 40*time.Second)
	_, err := s.Ingest(t.Context(), station, storetest.Batch(station, all[:350]))
	require.NoError(t, err)
	s.Close()

	// Back to schema 3: undo what the later migrations made.
	execSQL(t, url, `ALTER TABLE measurements_hourly DROP COLUMN sum;
		ALTER TABLE measurements_daily DROP COLUMN sum;
		DROP TABLE external_readings, upstream_cursors, satellite_cache, api_tokens, fused_wqi;
		ALTER TABLE measurements DROP COLUMN sample_id, DROP COLUMN lab, DROP COLUMN method;
		DROP TABLE forecasts; DROP INDEX alerts_cloud_key;
		ALTER TABLE stations DROP COLUMN river, DROP COLUMN river_km; ALTER TABLE alerts DROP COLUMN evidence;
		DELETE FROM schema_migrations WHERE version >= 4`)
	res, err := store.Migrate(t.Context(), url, store.MigrateOptions{})
	require.NoError(t, err)
	assert.Equal(t, 3, res.From)
	assert.Contains(t, res.Applied, 4)

	s = storetest.OpenURL(t, url, store.Options{})
	_, err = s.Ingest(t.Context(), station, storetest.Batch(station, all[200:]))
	require.NoError(t, err)
	checkRollups(t, s, all)
}

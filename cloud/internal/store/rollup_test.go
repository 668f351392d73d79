package store_test

import (
	"math/rand/v2"
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

func TestRollupsMatchAnIndependentComputation(t *testing.T) {
	s, _ := storetest.Open(t, store.Options{})
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

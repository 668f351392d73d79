package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
)

// TestRetryAfterConnectionsDie kills every pooled connection behind the store's back, as
// a PostgreSQL restart does, and uses the store at once (before the pool's idle-ping would
// notice): the one retry, on a freshly reset pool, must carry the write through.
func TestRetryAfterConnectionsDie(t *testing.T) {
	s, url := storetest.Open(t, store.Options{MaxConns: 4})
	storetest.AddStation(t, s, station)
	t0 := time.Now().Add(-time.Hour)
	for round := range 3 {
		// Fill the pool with idle connections.
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				_, err := s.Readings(t.Context(), store.ReadingsQuery{Station: station, Limit: 1})
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		killed := count(t, url, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`)
		require.Positive(t, killed)

		res, err := s.Ingest(t.Context(), station, storetest.Batch(station,
			storetest.Readings(uint64(round*10+1), 10, t0.Add(time.Duration(round)*time.Minute), time.Second)))
		require.NoError(t, err, "round %d: %d connections killed", round, killed)
		assert.Equal(t, int64(10), res.NewReadings)
	}
	assert.Equal(t, int64(30), count(t, url, `SELECT count(*) FROM measurements`))
}

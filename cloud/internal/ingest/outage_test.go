package ingest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/ingest"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/shared/wire"
)

// TestDatabaseCrashDuringIngest stops PostgreSQL like a crash (pg_ctl stop -m
// immediate) while an agent streams batches, then starts it again. The agent meanwhile
// gets 503 with Retry-After, no batch is half stored, resending adds no duplicates, and
// the same service (the same pool) carries on.
func TestDatabaseCrashDuringIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts PostgreSQL")
	}
	pg := pgtest.Start(t)
	url := pg.CreateDB(t)
	_, err := store.Migrate(t.Context(), url, store.MigrateOptions{})
	require.NoError(t, err)
	st := storetest.OpenURL(t, url, store.Options{QueryTimeout: 3 * time.Second, IngestTimeout: 10 * time.Second})
	e := serve(t, st, url, ingest.Options{RetryAfter: 2 * time.Second})

	const batches, size = 12, 500
	t0 := time.Now().Add(-2 * time.Hour)
	batch := func(i int) *wire.Batch {
		return storetest.Batch(station, storetest.Readings(uint64(i*size+1), size, t0.Add(time.Duration(i*size)*time.Second), time.Second))
	}
	crashAt := 5
	stopped := make(chan error, 1)
	crashed, restarted := false, false
	var unavailable int
	for i := 0; i < batches; i++ {
		if i == crashAt {
			// Crash while this batch is on its way.
			go func() { stopped <- pg.Stop("immediate") }()
		}
		r := e.post(t, batch(i))
		if r.status == http.StatusOK {
			assert.Equal(t, uint64((i+1)*size), r.ack.AckedSeq, "batch %d", i)
			continue
		}
		require.Equal(t, http.StatusServiceUnavailable, r.status, "batch %d: %+v", i, r.err)
		assert.Equal(t, "2", r.header.Get("Retry-After"), "503 tells the agent when to come back")
		unavailable++
		if !crashed {
			require.NoError(t, <-stopped)
			crashed = true
			// Still down: still 503, and fast.
			r = e.post(t, batch(i))
			assert.Equal(t, http.StatusServiceUnavailable, r.status)
			require.NoError(t, pg.Start())
			restarted = true
			// Before anything is resent: every batch is stored whole or not at all.
			for j := 0; j <= i; j++ {
				n := e.count(t, `SELECT count(*) FROM measurements WHERE seq BETWEEN $1 AND $2`, j*size+1, (j+1)*size)
				assert.True(t, n == 0 || n == size, "batch %d is half stored: %d of %d rows", j, n, size)
				if j < i {
					assert.Equal(t, int64(size), n, "batch %d was acknowledged", j)
				}
			}
		}
		// The agent retries the same batch after Retry-After (shortened here); the pool
		// recovers on its own.
		ok := false
		for attempt := 0; attempt < 5 && !ok; attempt++ {
			r = e.post(t, batch(i))
			ok = r.status == http.StatusOK
			if !ok {
				time.Sleep(200 * time.Millisecond)
			}
		}
		require.True(t, ok, "batch %d: the service did not recover: %d %+v", i, r.status, r.err)
		assert.Equal(t, uint64((i+1)*size), r.ack.AckedSeq)
	}
	require.True(t, restarted, "the crash must have been noticed")
	t.Logf("%d answers of 503 during the outage", unavailable)
	const total = int64(batches * size)
	assert.Equal(t, total, e.count(t, `SELECT count(*) FROM measurements`))
	assert.Equal(t, total, e.count(t, `SELECT count(DISTINCT seq) FROM measurements`), "no duplicates")
	hourly := e.count(t, `SELECT coalesce(sum(count), 0) FROM measurements_hourly`)
	good := e.count(t, `SELECT count(*) FROM measurements WHERE quality <> 'bad'`)
	assert.Equal(t, good, hourly, "rollups count every usable row once")
}

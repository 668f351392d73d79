package ingest_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/ingest"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
)

// BenchmarkIngestHTTP posts gzip batches of 500 new readings from four stations at once
// through the real handler and store, as phbench's cloud ingest comparison does, and
// reports committed rows/s. With -cpuprofile it shows the service's own share of a row's
// cost (decoding, checking, encoding for COPY); the database's is in pg_stat_statements.
// The request bodies are made before the clock starts.
// Run: go test -run '^$' -bench IngestHTTP ./cloud/internal/ingest/
func BenchmarkIngestHTTP(b *testing.B) {
	const (
		stations = 4
		size     = 500
	)
	st, url := storetest.Open(b, store.Options{})
	e := serve(b, st, url, ingest.Options{RatePerStation: 1e6, Burst: 1e6})
	tokens := make([]string, stations)
	ids := make([]string, stations)
	for i := range stations {
		ids[i] = fmt.Sprintf("MH-BENCH-%03d", i)
		tokens[i] = storetest.AddStation(b, st, ids[i])
	}
	start := time.Now().Add(-30 * time.Minute)
	bodies := make([][][]byte, stations)
	for i := range stations {
		for n := range b.N/stations + 1 {
			rs := storetest.Readings(uint64(n*size+1), size, start.Add(time.Duration(n*size)*time.Millisecond), time.Millisecond)
			bodies[i] = append(bodies[i], encode(b, storetest.Batch(ids[i], rs)))
		}
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := range stations {
		wg.Go(func() {
			for n := i; n < b.N; n += stations {
				r := do(b, e.request(b, tokens[i], bodies[i][n/stations], true))
				if r.status != http.StatusOK {
					b.Errorf("status %d: %s", r.status, r.err.Error)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(size*b.N)/b.Elapsed().Seconds(), "rows/s")
}

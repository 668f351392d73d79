package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
)

// BenchmarkIngest compares the full ingest path (COPY of the new readings, rollups,
// latest values, committed ranges, the batch's events, one transaction) with a bare COPY
// of the same rows into measurements, the floor for getting rows into PostgreSQL. Readings are new each
// iteration (fresh seqs), one every second (a batch of 500 touches one or two hours) or
// eight a second (ingest-dense: some ten batches of 500 fall in each hour).
// Run: go test -run '^$' -bench Ingest ./cloud/internal/store/
func BenchmarkIngest(b *testing.B) {
	for _, size := range []int{500, 5000} {
		b.Run(fmt.Sprintf("copy-only/rows=%d", size), func(b *testing.B) {
			s, url := storetest.Open(b, store.Options{})
			storetest.AddStation(b, s, station)
			conn, err := pgx.Connect(b.Context(), url)
			require.NoError(b, err)
			defer conn.Close(b.Context())
			// Create the partitions the rows fall in, through the normal path.
			start := time.Now().Add(-time.Hour)
			_, err = s.Ingest(b.Context(), station, storetest.Batch(station, storetest.Readings(1, 1, start, time.Second)))
			require.NoError(b, err)
			seq := uint64(2)
			b.ResetTimer()
			for b.Loop() {
				rs := storetest.Readings(seq, size, start, time.Millisecond)
				seq += uint64(size)
				_, err := conn.CopyFrom(b.Context(), pgx.Identifier{"measurements"},
					[]string{"time", "station_id", "param", "value", "unit", "quality", "source", "seq", "sensor", "flags"},
					pgx.CopyFromSlice(len(rs), func(i int) ([]any, error) {
						r := rs[i]
						return []any{r.Time, station, r.Param, r.Value, r.Unit, r.Quality, r.Source, int64(r.Seq), r.Sensor, []string{}}, nil
					}))
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(size*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
		// One reading a second, and eight a second as a station with eight sensors sends
		// them: an hour's rollup bucket then gets many batches, each adding to it.
		for _, load := range []struct {
			name string
			step time.Duration
		}{{"ingest", time.Second}, {"ingest-dense", time.Second / 8}} {
			b.Run(fmt.Sprintf("%s/rows=%d", load.name, size), func(b *testing.B) {
				s, _ := storetest.Open(b, store.Options{})
				storetest.AddStation(b, s, station)
				start := time.Now().Add(-time.Hour)
				seq := uint64(1)
				for b.Loop() {
					rs := storetest.Readings(seq, size, start.Add(time.Duration(seq)*load.step), load.step)
					seq += uint64(size)
					if _, err := s.Ingest(b.Context(), station, storetest.Batch(station, rs)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(size*b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

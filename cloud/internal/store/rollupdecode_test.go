package store_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
)

// Rollups reads buckets off the wire itself; what it lists must be what pgx's own
// scanning makes of the same rows: times before and after PostgreSQL's epoch and with
// fractions of a second, parameter names many and repeated, the floats' edges.
func TestRollupsAreWhatPgxScans(t *testing.T) {
	s, url := storetest.Open(t, store.Options{})
	storetest.AddStation(t, s, station)
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	buckets := []time.Time{
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 500000000, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 1000, time.UTC),
		time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC),
	}
	values := []float64{0, math.Copysign(0, -1), 7.123, -1.5e300, math.MaxFloat64, 5e-324, math.Inf(1), math.NaN()}
	n := 0
	for _, at := range buckets {
		// More names than the listing keeps, so that some come past its cache.
		for p := range 70 {
			v := values[n%len(values)]
			_, err := conn.Exec(t.Context(), `INSERT INTO measurements_hourly (bucket, station_id, param, sum, count, min, max, avg)
				VALUES ($1, $2, $3, 0, $4, $5, $6, $7)`, at, station, string(rune('a'+p%26))+string(rune('a'+p/26)),
				int64(n)*math.MaxInt64/977, v, -v, values[(n+3)%len(values)])
			require.NoError(t, err)
			n++
		}
	}
	got, err := s.Rollups(t.Context(), store.RollupQuery{Station: station, Size: store.Hourly, Limit: 10000})
	require.NoError(t, err)
	rows, err := conn.Query(t.Context(), `SELECT bucket, param, avg, min, max, count FROM measurements_hourly
		WHERE station_id = $1 ORDER BY bucket DESC, param DESC`, station)
	require.NoError(t, err)
	require.True(t, store.RollupsBinary(rows.FieldDescriptions()), "the listing comes in the formats decodeRollup reads: %+v",
		rows.FieldDescriptions())
	want, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Rollup, error) {
		var r store.Rollup
		err := row.Scan(&r.Bucket, &r.Param, &r.Avg, &r.Min, &r.Max, &r.Count)
		r.Bucket = r.Bucket.UTC()
		return r, err
	})
	require.NoError(t, err)
	require.Len(t, got, n)
	for i := range want {
		w, g := want[i], got[i]
		assert.True(t, w.Bucket.Equal(g.Bucket) && g.Bucket.Location() == time.UTC, "row %d: bucket %v, want %v", i, g.Bucket, w.Bucket)
		assert.Equal(t, w.Param, g.Param, "row %d", i)
		for _, f := range [][2]float64{{w.Avg, g.Avg}, {w.Min, g.Min}, {w.Max, g.Max}} {
			assert.Equal(t, math.Float64bits(f[0]), math.Float64bits(f[1]), "row %d: %v, want %v", i, f[1], f[0])
		}
		assert.Equal(t, w.Count, g.Count, "row %d", i)
	}
}

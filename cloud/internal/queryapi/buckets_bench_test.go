package queryapi_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// BenchmarkBucketListing requests 30 days of one station's hourly buckets (8 parameters,
// 5760 buckets) through the API, the listing phbench's readings_query_p99_vs_psql times;
// it is there to profile the API's share (-cpuprofile: the database's work is in
// another process).
func BenchmarkBucketListing(b *testing.B) {
	e := newEnv(b)
	end := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	conn, err := pgx.Connect(b.Context(), e.dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	var params []string
	for _, p := range telemetry.Params() {
		params = append(params, string(p))
	}
	_, err = conn.Exec(b.Context(), `INSERT INTO measurements_hourly (bucket, station_id, param, sum, count, min, max, avg)
		SELECT t, $1, p, 60 * 7.1, 60, 6.9, 7.3, 7.1
		FROM generate_series($2::timestamptz - interval '30 days', $2::timestamptz - interval '1 hour', interval '1 hour') t,
			unnest($3::text[]) p`, station, end, params)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(b.Context(), `VACUUM ANALYZE measurements_hourly`); err != nil {
		b.Fatal(err)
	}
	u := e.srv.URL + "/v1/stations/" + station + "/readings?bucket=1h&limit=10000&from=" +
		url.QueryEscape(end.Add(-30*24*time.Hour).Format(time.RFC3339)) + "&to=" + url.QueryEscape(end.Format(time.RFC3339))
	client := e.srv.Client()
	get := func() int {
		resp, err := client.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET: %s, %v", resp.Status, err)
		}
		return int(n)
	}
	bytes := get()
	b.ResetTimer()
	for b.Loop() {
		get()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(30*24*len(params)), "µs/bucket")
	b.SetBytes(int64(bytes))
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/bench/internal/benchline"
	"github.com/purehealth/purehealth/bench/internal/benchrows"
	"github.com/purehealth/purehealth/bench/internal/harness"
	"github.com/purehealth/purehealth/bench/internal/procstat"
	"github.com/purehealth/purehealth/internal/testproc"
)

// The query comparison, as --only names it, and its line.
const (
	onlyQuery = "query"
	nameQuery = "readings_query_p99_vs_psql"
)

// queryStation is the station whose year the query comparison reads.
const queryStation = "BENCH-QUERY"

// The timed requests alternate between the sides in blocks, each block after a few
// untimed ones. The first requests after the other side's block are slow on both sides
// (a psql session's first executions are planned for their values, a process idle since
// wakes up): with two halves of 100, those few were the p99 of either side, whichever
// side paid more for its pause. Short blocks also let load from elsewhere on the machine
// fall on both sides alike.
const (
	queryBlock = 20 // timed requests per block and side, at most
	apiWarmup  = 3  // untimed requests at the start of each block of the API
	// psqlWarmup untimed executions start each psql session: PostgreSQL plans a prepared
	// statement's first five executions for their values, and the API's connection, which
	// keeps its prepared statements, is past them.
	psqlWarmup = 5
)

// queryLimit is the limit of every request: the API's largest, so that a chart of a
// month of hourly buckets comes in one page.
const queryLimit = 10000

// queryOptions are the settings of the query comparison; defaults() fills those not given.
type queryOptions struct {
	spacing time.Duration // between a timestamp's readings (eight each)
	reps    int           // timed requests per query and side
}

func (q *queryOptions) register(fs *flag.FlagSet) {
	fs.DurationVar(&q.spacing, "query-spacing", 0, "time between the loaded year's timestamps, eight readings each (default 5m quick, 1m full)")
	fs.IntVar(&q.reps, "query-reps", 0, "timed requests per query, by the API and by psql each (default 100 quick, 500 full: a p99 of fewer is just the slowest one or two)")
}

func (q *queryOptions) defaults(quick bool) {
	if q.spacing == 0 {
		q.spacing = time.Minute
		if quick {
			q.spacing = 5 * time.Minute
		}
	}
	if q.reps == 0 {
		q.reps = 500
		if quick {
			q.reps = 100
		}
	}
}

func (q *queryOptions) validate() []error {
	var errs []error
	if q.spacing < time.Second {
		errs = append(errs, fmt.Errorf("--query-spacing %s must be at least 1s", q.spacing))
	}
	if q.reps < 10 {
		errs = append(errs, fmt.Errorf("--query-reps %d must be at least 10", q.reps))
	}
	return errs
}

// queryCase is one request of the comparison.
type queryCase struct {
	name     string
	bucket   string // the API's bucket: 1h or 1d
	table    string // the rollup it reads
	from, to time.Time
	buckets  int // buckets of the range, per parameter
}

// expect counts the buckets of c that hold readings of set, and those readings.
func (c queryCase) expect(set benchrows.Set) (buckets int, readings int64) {
	size := c.to.Sub(c.from) / time.Duration(c.buckets)
	seen := map[time.Time]bool{}
	for at := set.End; !at.Before(set.Start()); at = at.Add(-set.Spacing) {
		if at.Before(c.from) || !at.Before(c.to) {
			continue
		}
		seen[at.Truncate(size)] = true
		readings += int64(len(benchrows.Params))
	}
	return len(seen), readings
}

// queryResult is one case measured: both sides' latencies.
type queryResult struct {
	c        queryCase
	api, sql []time.Duration
}

// query loads a year of one station's readings by COPY, builds their hourly and daily
// rollups, and compares the p99 latency of GET /v1/stations/{id}/readings with bucket=1h
// and 1d over the last 30 days and the last year with that of the SQL the API runs for
// them (read from pg_stat_statements), prepared and executed by psql on the same server.
func (b *bench) query(ctx context.Context) {
	o := b.opts.query
	b.printf("\n== readings query: p99 latency of GET /v1/stations/{id}/readings?bucket=1h|1d against its own SQL run by psql\n")
	env, ok := b.startPostgresEnv(ctx, true, nameQuery)
	if !ok {
		return
	}
	defer b.stopStoreEnv(env)
	dir := filepath.Join(b.opts.work, "query")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		b.fail("%s: %v", nameQuery, err)
		return
	}
	end := time.Now().UTC().Truncate(time.Minute).Add(-time.Minute)
	perTimestamp := len(benchrows.Params)
	set := benchrows.Set{Stations: []string{queryStation}, Spacing: o.spacing, End: end, Seed: 7,
		PerStation: int(365*24*time.Hour/o.spacing) * perTimestamp}
	b.printf("rows: a year of station %s, the 8 parameters every %s (%d readings, %s to %s), loaded by one COPY;\n"+
		"      hourly and daily rollups built from them as the ingest keeps them\n",
		queryStation, o.spacing, set.Len(), set.Start().Format(time.RFC3339), end.Format(time.RFC3339))
	day := end.Truncate(24 * time.Hour).Add(24 * time.Hour)
	var cases []queryCase
	for _, bk := range []struct {
		bucket, table string
		size          time.Duration
	}{{"1h", "measurements_hourly", time.Hour}, {"1d", "measurements_daily", 24 * time.Hour}} {
		for _, span := range []struct {
			name string
			days int
		}{{"30 days", 30}, {"a year", 365}} {
			from := day.Add(-time.Duration(span.days) * 24 * time.Hour)
			cases = append(cases, queryCase{name: "bucket=" + bk.bucket + ", " + span.name, bucket: bk.bucket, table: bk.table,
				from: from, to: day, buckets: int(day.Sub(from) / bk.size)})
		}
	}
	b.printf("requests: every parameter, limit=%d, from and to on UTC days ending tomorrow; %d timed requests per query and side\n"+
		"      in blocks of up to %d alternating API and psql, each after %d untimed requests (API) or %d untimed executions (psql);\n"+
		"      one request at a time on one keep-alive connection\n"+
		"ours: %s serve (its defaults); peer: psql -X, PREPARE of the statement pg_stat_statements recorded for the API, then EXECUTE\n"+
		"      with the same values, \\timing (send to last row received) with the output discarded\n",
		queryLimit, o.reps, queryBlock, apiWarmup, psqlWarmup, b.cloudBin())

	addr, err := testproc.FreePort("tcp")
	if err != nil {
		b.fail("%s: %v", nameQuery, err)
		return
	}
	cfg := harness.CloudConfig{Dir: dir, Listen: addr, DatabaseURL: env.url()}
	prep, err := harness.PrepareCloud(ctx, b.cloudBin(), cfg, queryStation)
	if err != nil {
		b.fail("%s: %v", nameQuery, err)
		return
	}
	b.printf("   %s\n", prep.Storage)
	if err := b.loadYear(ctx, env, set); err != nil {
		if ctx.Err() == nil {
			b.fail("%s: load: %v", nameQuery, err)
		}
		return
	}
	cloud, err := harness.StartCloud(ctx, b.cloudBin(), cfg)
	if err != nil {
		b.fail("%s: %v", nameQuery, err)
		return
	}
	if took, err := settle(ctx, cloud.PID()); err != nil {
		b.printf("   ph-cloud did not settle after start-up (%v); measuring anyway\n", err)
	} else {
		b.printf("   ph-cloud settled %.1f s after start-up (its first analytics rounds and storage maintenance)\n", took.Seconds())
	}
	results := b.queryRuns(ctx, env, cloud, dir, set, cases)
	if err := cloud.Stop(); err != nil {
		b.fail("%s: ph-cloud did not shut down cleanly: %v; its log ends:\n%s", nameQuery, err, cloud.LogTail(10))
		return
	}
	if len(results) < len(cases) {
		return
	}
	worst := results[0]
	for _, r := range results[1:] {
		if ratio(r.api, r.sql) > ratio(worst.api, worst.sql) {
			worst = r
		}
	}
	b.add(nameQuery, ms(percentile(worst.api, 0.99)), ms(percentile(worst.sql, 0.99)), "ms", benchline.Goal{Op: benchline.AtMost, Value: 1.3},
		fmt.Sprintf("p99 of the SQL the API runs, prepared and executed by psql on the same server; ours: the API's p99 (HTTP, JSON, one request at a time); the worst of bucket=1h and 1d over 30 days and a year, here %s, of a year of one station's 8 parameters every %s", worst.c.name, o.spacing))
}

// settle waits until process pid is idle: at most one clock tick of CPU in each of two
// consecutive quarter seconds. ph-cloud's start-up runs its analytics rounds and storage
// maintenance over the year just loaded, half a second of both cores; requests timed
// meanwhile were the p99 of whichever side came first, and that is no query's latency.
func settle(ctx context.Context, pid int) (time.Duration, error) {
	const step, quiet, limit = 250 * time.Millisecond, time.Second / procstat.ClockTicks, 20 * time.Second
	start := time.Now()
	last, err := procstat.ReadCPU(pid)
	if err != nil {
		return 0, err
	}
	calm := 0
	for calm < 2 {
		if time.Since(start) > limit {
			return 0, fmt.Errorf("still busy after %s", limit)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(step):
		}
		cpu, err := procstat.ReadCPU(pid)
		if err != nil {
			return 0, err
		}
		if calm++; cpu-last > quiet {
			calm = 0
		}
		last = cpu
	}
	return time.Since(start), nil
}

func ratio(ours, peer []time.Duration) float64 {
	return float64(percentile(ours, 0.99)) / float64(percentile(peer, 0.99))
}

// loadYear copies set into measurements and builds the rollups the ingest would have
// built from it.
func (b *bench) loadYear(ctx context.Context, env *storeEnv, set benchrows.Set) error {
	conn, err := pgx.Connect(ctx, env.url())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var mode string
	if err := conn.QueryRow(ctx, `SELECT value FROM schema_meta WHERE key = 'mode'`).Scan(&mode); err != nil {
		return fmt.Errorf("storage mode: %w", err)
	}
	start := time.Now()
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"measurements"}, benchrows.Columns, set.CopySource())
	if err != nil {
		return fmt.Errorf("COPY: %w", err)
	}
	b.printf("   loaded %d readings in %.1f s\n", n, time.Since(start).Seconds())
	start = time.Now()
	if mode == "timescaledb" {
		for _, view := range []string{"measurements_hourly", "measurements_daily"} {
			if _, err := conn.Exec(ctx, `CALL refresh_continuous_aggregate($1::regclass, NULL, NULL)`, view); err != nil {
				return fmt.Errorf("refresh %s: %w", view, err)
			}
		}
	} else {
		// What the ingest adds batch by batch (usable readings, UTC hours and days), at once.
		for _, r := range []struct{ table, unit string }{{"measurements_hourly", "hour"}, {"measurements_daily", "day"}} {
			_, err := conn.Exec(ctx, `INSERT INTO `+r.table+` (bucket, station_id, param, sum, count, min, max, avg)
				SELECT date_trunc('`+r.unit+`', time, 'UTC'), station_id, param, sum(value), count(*), min(value), max(value), avg(value)
				FROM measurements WHERE quality <> 'bad' GROUP BY 1, 2, 3`)
			if err != nil {
				return fmt.Errorf("build %s: %w", r.table, err)
			}
		}
		// The rows went to the default partition (no daily partitions for a past year);
		// bucket=1h and 1d read the rollups only, and the service's maintenance would
		// otherwise move them into partitions while it is measured.
		if _, err := conn.Exec(ctx, `TRUNCATE measurements`); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE measurements_hourly, measurements_daily`); err != nil {
		return err
	}
	b.printf("   rollups built in %.1f s (%s layout)\n", time.Since(start).Seconds(), mode)
	return nil
}

// queryRuns measures every case on both sides and checks the API's answers.
func (b *bench) queryRuns(ctx context.Context, env *storeEnv, cloud *harness.Cloud, dir string, set benchrows.Set, cases []queryCase) []queryResult {
	o := b.opts.query
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	var out []queryResult
	for _, c := range cases {
		if ctx.Err() != nil {
			return out
		}
		u := fmt.Sprintf("%s/v1/stations/%s/readings?bucket=%s&from=%s&to=%s&limit=%d", cloud.URL, queryStation, c.bucket,
			url.QueryEscape(c.from.Format(time.RFC3339)), url.QueryEscape(c.to.Format(time.RFC3339)), queryLimit)
		b.printf("\n-- %s: GET %s, load average %s\n", c.name, strings.TrimPrefix(u, cloud.URL), loadAverage())
		chk := checks{}
		got, err := getBuckets(ctx, client, u)
		buckets, readings := c.expect(set)
		want := min(queryLimit, buckets*len(benchrows.Params))
		chk.that(err == nil && got.n == want, "the API answers %d buckets (%d, %v)", want, got.n, err)
		if err != nil {
			b.report(c.name, chk)
			continue
		}
		if got.n < queryLimit {
			chk.that(got.count == readings, "the buckets count the range's %d readings (%d)", readings, got.count)
		}
		sqlText, err := apiStatement(ctx, env, c.table)
		chk.that(err == nil, "pg_stat_statements holds the API's statement on %s (%v)", c.table, err)
		if !chk.ok() {
			b.report(c.name, chk)
			continue
		}
		var r queryResult
		r.c = c
		for _, n := range blocks(o.reps, queryBlock) {
			lat, err := timeRequests(ctx, client, u, got.bytes, n)
			if err != nil {
				chk.that(false, "the timed requests succeed (%v)", err)
				break
			}
			r.api = append(r.api, lat...)
			lat, err = psqlTimes(ctx, env, dir, sqlText, []string{queryStation, c.from.Format(time.RFC3339), c.to.Format(time.RFC3339),
				strconv.Itoa(queryLimit + 1)}, n)
			if err != nil {
				chk.that(false, "psql runs the statement (%v)", err)
				break
			}
			r.sql = append(r.sql, lat...)
		}
		b.report(c.name, chk)
		if !chk.ok() {
			continue
		}
		b.printf("   statement: %s\n", firstWords(sqlText))
		b.printf("   API  p50 %6.2f ms, p99 %6.2f ms (%d buckets, %d bytes of JSON)\n", ms(percentile(r.api, 0.5)), ms(percentile(r.api, 0.99)), got.n, got.bytes)
		b.printf("   psql p50 %6.2f ms, p99 %6.2f ms; ratio of the p99s %.2f\n", ms(percentile(r.sql, 0.5)), ms(percentile(r.sql, 0.99)), ratio(r.api, r.sql))
		out = append(out, r)
	}
	return out
}

// bucketsAnswer sums up one answer of the API.
type bucketsAnswer struct {
	n     int   // buckets
	count int64 // readings they count
	bytes int
}

func getBuckets(ctx context.Context, client *http.Client, u string) (bucketsAnswer, error) {
	body, err := get(ctx, client, u)
	if err != nil {
		return bucketsAnswer{}, err
	}
	var v struct {
		Readings []struct {
			Count int64 `json:"count"`
		} `json:"readings"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return bucketsAnswer{}, fmt.Errorf("answer: %w", err)
	}
	a := bucketsAnswer{n: len(v.Readings), bytes: len(body)}
	for _, r := range v.Readings {
		a.count += r.Count
	}
	return a, nil
}

func get(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	var body bytes.Buffer
	if err := getInto(ctx, client, u, &body); err != nil {
		return nil, err
	}
	return body.Bytes(), nil
}

// getInto GETs u into body, which it empties first.
func getInto(ctx context.Context, client *http.Client, u string, body *bytes.Buffer) error {
	body.Reset()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := body.ReadFrom(resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET: %s: %s", resp.Status, cutBytes(body.Bytes(), 200))
	}
	return nil
}

// blocks splits n into blocks of at most size, as even as can be.
func blocks(n, size int) []int {
	k := (n + size - 1) / size
	out := make([]int, k)
	for i := range out {
		out[i] = n / k
		if i < n%k {
			out[i]++
		}
	}
	return out
}

// timeRequests times n GETs of u after apiWarmup untimed ones, each read to its end and
// as long as size bytes. Each
// is read into the same buffer, as psql's connection reads into its own: a new one per
// answer (up to 1.5 MB, grown from nothing) had this process collect its garbage during
// nearly every timed request, which the API's latency then carried and psql's did not.
func timeRequests(ctx context.Context, client *http.Client, u string, size, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	var body bytes.Buffer
	body.Grow(size)
	for i := range apiWarmup + n {
		start := time.Now()
		if err := getInto(ctx, client, u, &body); err != nil {
			return nil, err
		}
		if i >= apiWarmup {
			out = append(out, time.Since(start))
		}
		if body.Len() != size {
			return nil, fmt.Errorf("an answer of %d bytes, the first was %d", body.Len(), size)
		}
	}
	return out, nil
}

// apiStatement returns the text of the statement the API ran on table, as
// pg_stat_statements recorded it (with its $n parameters).
func apiStatement(ctx context.Context, env *storeEnv, table string) (string, error) {
	conn, err := pgx.Connect(ctx, env.url())
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT query FROM pg_stat_statements
		WHERE query LIKE 'SELECT %FROM ' || $1 || ' %' AND query NOT LIKE '%pg_stat_statements%'`, table)
	if err != nil {
		return "", err
	}
	texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	if len(texts) != 1 {
		return "", fmt.Errorf("%d statements on %s, want the API's one: %q", len(texts), table, texts)
	}
	// The values psqlTimes passes, in the order the API binds them.
	for _, p := range []string{"station_id = $1", "bucket >= $2", "bucket < $3", "LIMIT $4"} {
		if !strings.Contains(texts[0], p) {
			return "", fmt.Errorf("the API's statement no longer reads %q (update the benchmark): %s", p, firstWords(texts[0]))
		}
	}
	if strings.Contains(texts[0], "$5") {
		return "", fmt.Errorf("the API's statement takes more than 4 parameters (update the benchmark): %s", firstWords(texts[0]))
	}
	return texts[0], nil
}

var psqlTime = regexp.MustCompile(`(?m)^Time: ([0-9.]+) ms`)

// psqlTimes prepares sql in one psql session, executes it psqlWarmup times and then n
// times with args, and returns the times psql's \timing reports of the n. The script is
// written to dir.
func psqlTimes(ctx context.Context, env *storeEnv, dir, sql string, args []string, n int) ([]time.Duration, error) {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", "''") + "'"
	}
	var script strings.Builder
	fmt.Fprintf(&script, "PREPARE q AS %s;\n\\o /dev/null\n", sql)
	for i := range psqlWarmup + n {
		if i == psqlWarmup {
			script.WriteString("\\timing on\n")
		}
		fmt.Fprintf(&script, "EXECUTE q(%s);\n", strings.Join(quoted, ", "))
	}
	path := filepath.Join(dir, "query.sql")
	if err := os.WriteFile(path, []byte(script.String()), 0o600); err != nil {
		return nil, err
	}
	out, err := env.pg.Psql(ctx, cloudDB, "-q", "-f", path)
	if err != nil {
		return nil, err
	}
	m := psqlTime.FindAllSubmatch(out, -1)
	if len(m) != n {
		return nil, fmt.Errorf("psql printed %d times for %d executions: %q", len(m), n, cutBytes(out, 200))
	}
	times := make([]time.Duration, n)
	for i, x := range m {
		v, err := strconv.ParseFloat(string(x[1]), 64)
		if err != nil {
			return nil, err
		}
		times[i] = time.Duration(v * float64(time.Millisecond))
	}
	return times, nil
}

// percentile is the q-quantile of ds by the nearest rank, 0 without any.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	rank := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/bench/internal/benchrows"
	"github.com/purehealth/purehealth/bench/internal/fsyncrate"
	"github.com/purehealth/purehealth/bench/internal/harness"
	"github.com/purehealth/purehealth/bench/internal/procstat"
)

// The store-and-forward comparisons' names: results are tracked over time by them.
const (
	nameIngest      = "cloud_ingest_vs_psql_copy"
	nameCopyFrom    = "cloud_copyfrom_vs_psql_copy"
	nameDrain       = "backlog_drain_vs_psql_copy"
	nameLiveLatency = "live_lane_latency_during_drain"
)

// cloudDB is the database the cloud uses in these comparisons.
const cloudDB = "purehealth"

// The cloud's ingest limits in these comparisons: far above what they send, so that the
// per-station limiter (default 2 batches/s, burst 10) and the in-flight cap are not what
// is measured.
const (
	benchRatePerStation = 10000
	benchBurst          = 10000
	benchMaxInFlight    = 64
)

func (b *bench) cloudBin() string { return filepath.Join(b.opts.bin, "ph-cloud") }

// storeEnv is a throwaway PostgreSQL with the cloud's database, for one comparison.
type storeEnv struct {
	pg      *harness.Postgres
	profile bool // pg_stat_statements is loaded
}

// startStoreEnv starts PostgreSQL and creates the cloud's database, printing the server's
// settings. Without PostgreSQL or ph-cloud it records names as skipped and returns false.
func (b *bench) startStoreEnv(ctx context.Context, names ...string) (*storeEnv, bool) {
	return b.startPostgresEnv(ctx, b.opts.store.pgProfile, names...)
}

// startPostgresEnv is startStoreEnv, with pg_stat_statements loaded when profile is set.
func (b *bench) startPostgresEnv(ctx context.Context, profile bool, names ...string) (*storeEnv, bool) {
	if _, err := os.Stat(b.cloudBin()); err != nil {
		b.printf("ph-cloud: %v (run make build first): skipped\n", err)
		for _, n := range names {
			b.skipped = append(b.skipped, fmt.Sprintf("%s: %s not built", n, b.cloudBin()))
		}
		return nil, false
	}
	extra := append([]string(nil), b.opts.store.pgSettings...)
	if profile {
		extra = append(extra, "shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all")
	}
	pg, err := harness.StartPostgres(ctx, extra...)
	if errors.Is(err, harness.ErrNoPostgres) {
		b.printf("PostgreSQL: %v: skipped (Debian: apt-get install postgresql)\n", err)
		for _, n := range names {
			b.skipped = append(b.skipped, fmt.Sprintf("%s: no PostgreSQL server binaries", n))
		}
		return nil, false
	}
	if err != nil {
		if ctx.Err() == nil {
			b.fail("%s: start PostgreSQL: %v", strings.Join(names, ", "), err)
		}
		return nil, false
	}
	env := &storeEnv{pg: pg, profile: profile}
	err = pg.CreateDB(ctx, cloudDB)
	var settings []harness.Setting
	if err == nil {
		settings, err = pg.Settings(ctx)
	}
	if err == nil && env.profile {
		_, err = env.exec(ctx, "CREATE EXTENSION pg_stat_statements")
	}
	if err != nil {
		if ctx.Err() == nil {
			b.fail("%s: PostgreSQL: %v", strings.Join(names, ", "), err)
		}
		b.stopStoreEnv(env)
		return nil, false
	}
	var kv []string
	for _, s := range settings {
		kv = append(kv, s.Name+"="+s.Value)
	}
	b.printf("PostgreSQL: throwaway cluster in %s (%s), its defaults except listen 127.0.0.1, timezone UTC, log_min_messages warning", pg.Dir(), fsyncrate.FSType(pg.Dir()))
	if len(b.opts.store.pgSettings) > 0 {
		b.printf(", %s (--pg-setting)", strings.Join(b.opts.store.pgSettings, " "))
	}
	if env.profile {
		b.printf(", pg_stat_statements loaded (--pg-profile)")
	}
	b.printf(":\n            %s\n", strings.Join(kv, " "))
	return env, true
}

func (b *bench) stopStoreEnv(env *storeEnv) {
	if err := env.pg.Stop(); err != nil {
		b.fail("PostgreSQL did not shut down cleanly: %v", err)
	}
}

func (env *storeEnv) url() string { return env.pg.URL(cloudDB) }

// exec runs sql on a new connection to the cloud's database.
func (env *storeEnv) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	conn, err := pgx.Connect(ctx, env.url())
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tag, err := conn.Exec(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", firstWords(sql), err)
	}
	return tag.RowsAffected(), nil
}

// count returns the result of a SELECT count(*) query.
func (env *storeEnv) count(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := env.queryRow(ctx, sql, args, &n)
	return n, err
}

// queryRow runs a query of one row on a new connection and scans it into dest.
func (env *storeEnv) queryRow(ctx context.Context, sql string, args []any, dest ...any) error {
	conn, err := pgx.Connect(ctx, env.url())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		return fmt.Errorf("%s: %w", firstWords(sql), err)
	}
	return nil
}

// reset empties the tables a load fills, keeping the partitions, and checkpoints, so that
// every load starts from the same empty table and none pays for the previous one's dirty
// pages.
func (env *storeEnv) reset(ctx context.Context) error {
	if _, err := env.exec(ctx, "TRUNCATE measurements, measurements_hourly, measurements_daily, station_latest, events"); err != nil {
		return err
	}
	_, err := env.exec(ctx, "CHECKPOINT")
	return err
}

// psqlCopy loads csvPath into measurements with psql's \copy and returns the rows psql
// reports and the wall time of the psql process (its connection included).
func (env *storeEnv) psqlCopy(ctx context.Context, csvPath string) (int64, time.Duration, error) {
	cmd := fmt.Sprintf(`\copy measurements(%s) FROM '%s' WITH (FORMAT csv)`,
		strings.Join(benchrows.Columns, ", "), strings.ReplaceAll(csvPath, "'", "''"))
	start := time.Now()
	out, err := env.pg.Psql(ctx, cloudDB, "-c", cmd)
	wall := time.Since(start)
	if err != nil {
		return 0, wall, err
	}
	n, err := parseCopyTag(out)
	return n, wall, err
}

// psqlExport writes the rows of query (a SELECT of benchrows.Columns) to csvPath.
func (env *storeEnv) psqlExport(ctx context.Context, query, csvPath string) (int64, error) {
	cmd := fmt.Sprintf(`\copy (%s) TO '%s' WITH (FORMAT csv)`, query, strings.ReplaceAll(csvPath, "'", "''"))
	out, err := env.pg.Psql(ctx, cloudDB, "-c", cmd)
	if err != nil {
		return 0, err
	}
	return parseCopyTag(out)
}

var copyTag = regexp.MustCompile(`(?m)^COPY (\d+)\s*$`)

// parseCopyTag reads the row count from psql's output of a \copy: the line "COPY <n>".
func parseCopyTag(out []byte) (int64, error) {
	m := copyTag.FindAllSubmatch(out, -1)
	if len(m) != 1 {
		return 0, fmt.Errorf("psql \\copy: want one line \"COPY <rows>\" in its output, got %q", cutBytes(bytes.TrimSpace(out), 200))
	}
	n, err := strconv.ParseInt(string(m[0][1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("psql \\copy: row count %q: %w", m[0][1], err)
	}
	return n, nil
}

// statement is one line of pg_stat_statements.
type statement struct {
	calls   int64
	totalMS float64
	rows    int64
	query   string
}

// resetProfile empties pg_stat_statements, when it is loaded.
func (env *storeEnv) resetProfile(ctx context.Context) error {
	if !env.profile {
		return nil
	}
	_, err := env.exec(ctx, "SELECT pg_stat_statements_reset()")
	return err
}

// printProfile prints the n statements that took the most time since resetProfile.
func (b *bench) printProfile(ctx context.Context, env *storeEnv, n int) {
	if !env.profile {
		return
	}
	conn, err := pgx.Connect(ctx, env.url())
	if err != nil {
		b.printf("   pg_stat_statements: %v\n", err)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT calls, total_exec_time, rows, query FROM pg_stat_statements
		WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC LIMIT $1`, n)
	var stmts []statement
	if err == nil {
		stmts, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (statement, error) {
			var s statement
			err := r.Scan(&s.calls, &s.totalMS, &s.rows, &s.query)
			return s, err
		})
	}
	if err != nil {
		b.printf("   pg_stat_statements: %v\n", err)
		return
	}
	b.printf("   pg_stat_statements, top %d by total time (server-side execution only):\n", len(stmts))
	for _, s := range stmts {
		b.printf("     %8.0f ms %7d calls %9d rows  %s\n", s.totalMS, s.calls, s.rows, firstWords(s.query))
	}
}

// firstWords is sql on one line, cut to 110 characters.
func firstWords(sql string) string {
	s := strings.Join(strings.Fields(sql), " ")
	if len(s) > 110 {
		s = s[:110] + "..."
	}
	return s
}

func cutBytes(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// cpuMeter reads the CPU time of the processes of a comparison, so that each phase can
// say where the machine's CPU went (on two cores, everything shares them).
type cpuMeter struct {
	names []string
	read  []func() (time.Duration, error)
}

func (m *cpuMeter) add(name string, read func() (time.Duration, error)) {
	m.names = append(m.names, name)
	m.read = append(m.read, read)
}

func (m *cpuMeter) snapshot() []time.Duration {
	out := make([]time.Duration, len(m.read))
	for i, r := range m.read {
		d, err := r()
		if err != nil {
			d = -1
		}
		out[i] = d
	}
	return out
}

// cpuSettle is how long since waits before it reads: a server process of a connection
// that just closed is counted in its parent only once it has exited and been reaped.
const cpuSettle = 500 * time.Millisecond

// since formats the CPU used between from and now, per process, with the wall time.
func (m *cpuMeter) since(from []time.Duration, wall time.Duration, rows int64) string {
	time.Sleep(cpuSettle)
	return m.format(from, m.snapshot(), wall, rows)
}

// format formats the CPU used between two snapshots, per process, with the wall time.
func (m *cpuMeter) format(from, now []time.Duration, wall time.Duration, rows int64) string {
	var parts []string
	var total time.Duration
	for i, n := range m.names {
		if from[i] < 0 || now[i] < 0 {
			parts = append(parts, n+" ?")
			continue
		}
		d := now[i] - from[i]
		total += d
		parts = append(parts, fmt.Sprintf("%s %.2f s", n, d.Seconds()))
	}
	s := fmt.Sprintf("cpu: %s = %.2f s in %.2f s wall (%.2f of the machine's cores)", strings.Join(parts, ", "),
		total.Seconds(), wall.Seconds(), total.Seconds()/wall.Seconds())
	if rows > 0 {
		s += fmt.Sprintf("; %.1f µs cpu per row", float64(total.Microseconds())/float64(rows))
	}
	return s
}

func treeCPU(pid int) func() (time.Duration, error) {
	return func() (time.Duration, error) { return procstat.ReadTreeCPU(pid) }
}

func ownCPU(pid int) func() (time.Duration, error) {
	return func() (time.Duration, error) { return procstat.ReadCPU(pid) }
}

// selfCPU is the CPU time of this process and of the children it has waited for (psql,
// the agent's CLI): the programs it starts and keeps running are measured on their own.
func selfCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	t, err := procstat.ParseTimes(b)
	if err != nil {
		return 0, err
	}
	return t.CPU + t.Children, nil
}

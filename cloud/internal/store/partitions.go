package store

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// The plain layout's partitioned tables, each with one partition per UTC day named
// <table>_pYYYYMMDD and a DEFAULT partition <table>_default for days outside the window
// [today - retention, today + AheadDays].
var partitioned = []string{"measurements", "wqi_readings", "forecasts"}

// partitionColumn is the column a partitioned table is partitioned by.
func partitionColumn(table string) string {
	if table == "forecasts" {
		return "issued_at"
	}
	return "time"
}

// partitionLockKey serializes partition changes across replicas.
const partitionLockKey = 0x70682d70617274 // "ph-part"

func dayNumber(t time.Time) int64 { return t.Unix() / 86400 }
func dayStart(d int64) time.Time  { return time.Unix(d*86400, 0).UTC() }

func partitionName(table string, d int64) string {
	return table + "_p" + dayStart(d).Format("20060102")
}

var partitionSuffix = regexp.MustCompile(`_p(\d{8})$`)

func (s *Store) retentionOf(table string) time.Duration {
	switch table {
	case "wqi_readings":
		return s.opts.Retention.WQI
	case "forecasts":
		return s.opts.Retention.Forecasts
	}
	return s.opts.Retention.Measurements
}

// window returns the first and last day that get their own partition of table.
func (s *Store) window(table string) (first, last int64) {
	now := s.opts.Now()
	return dayNumber(now.Add(-s.retentionOf(table))), dayNumber(now) + int64(s.opts.AheadDays)
}

// ensurePartitions makes sure that the days of times that fall inside the table's window
// have their partitions. It runs before the batch transaction, in its own short one:
// attaching a partition locks the DEFAULT partition, and holding that inside a batch
// transaction while other batches wait would invite deadlocks.
func (s *Store) ensurePartitions(ctx context.Context, table string, times []time.Time) error {
	first, last := s.window(table)
	var missing []int64
	s.partMu.Lock()
	known := s.parts[table]
	for _, t := range times {
		d := dayNumber(t)
		if d < first || d > last || known[d] || slices.Contains(missing, d) {
			continue
		}
		missing = append(missing, d)
	}
	s.partMu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	return s.createPartitions(ctx, table, missing)
}

// createPartitions creates the partitions of the given days that do not exist yet,
// moving rows of those days out of the DEFAULT partition, and refreshes the cache of known
// partitions.
func (s *Store) createPartitions(ctx context.Context, table string, days []int64) error {
	return s.withRetry(ctx, "create partitions", func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			// Wait for running batches, but never queue ingest behind us for long.
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(partitionLockKey)); err != nil {
				return err
			}
			existing, err := listPartitions(ctx, tx, table)
			if err != nil {
				return err
			}
			for _, d := range days {
				if existing[d] {
					continue
				}
				if err := createPartition(ctx, tx, table, d); err != nil {
					return fmt.Errorf("create partition %s: %w", partitionName(table, d), describePgErr(err))
				}
				existing[d] = true
			}
			s.partMu.Lock()
			s.parts[table] = existing
			s.partMu.Unlock()
			return nil
		})
	})
}

// createPartition creates the day's table, moves the day's rows over from the DEFAULT
// partition, and attaches it. Names and bounds come from the day number, never from input.
func createPartition(ctx context.Context, tx pgx.Tx, table string, d int64) error {
	name := partitionName(table, d)
	parent := pgx.Identifier{table}.Sanitize()
	part := pgx.Identifier{name}.Sanitize()
	def := pgx.Identifier{table + "_default"}.Sanitize()
	check := pgx.Identifier{name + "_bounds"}.Sanitize()
	col := pgx.Identifier{partitionColumn(table)}.Sanitize()
	from := dayStart(d).Format("2006-01-02 15:04:05Z07:00")
	to := dayStart(d + 1).Format("2006-01-02 15:04:05Z07:00")
	stmts := []string{
		fmt.Sprintf(`CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)`, part, parent),
		// The check lets ATTACH skip scanning the new table.
		fmt.Sprintf(`ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s >= '%s' AND %s < '%s')`, part, check, col, from, col, to),
		fmt.Sprintf(`WITH moved AS (DELETE FROM %s WHERE %s >= '%s' AND %s < '%s' RETURNING *)
			INSERT INTO %s SELECT * FROM moved`, def, col, from, col, to, part),
		fmt.Sprintf(`ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')`, parent, part, from, to),
		fmt.Sprintf(`ALTER TABLE %s DROP CONSTRAINT %s`, part, check),
	}
	for _, st := range stmts {
		if _, err := tx.Exec(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

// listPartitions returns the days that have a partition of table.
func listPartitions(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, table string) (map[int64]bool, error) {
	rows, err := q.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = to_regclass($1)`, table)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	out := map[int64]bool{}
	for _, n := range names {
		m := partitionSuffix.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		t, err := time.Parse("20060102", m[1])
		if err != nil {
			continue
		}
		out[dayNumber(t)] = true
	}
	return out, nil
}

// Partitions lists the days (UTC midnights) that have their own partition of table, in
// order. Plain layout only; nil on TimescaleDB.
func (s *Store) Partitions(ctx context.Context, table string) ([]time.Time, error) {
	if s.schema.Mode != ModePlain {
		return nil, nil
	}
	var days map[int64]bool
	err := s.query(ctx, "list partitions", func(ctx context.Context) (err error) {
		days, err = listPartitions(ctx, s.pool, table)
		return err
	})
	if err != nil {
		return nil, err
	}
	keys := make([]int64, 0, len(days))
	for d := range days {
		keys = append(keys, d)
	}
	slices.Sort(keys)
	out := make([]time.Time, len(keys))
	for i, d := range keys {
		out[i] = dayStart(d)
	}
	return out, nil
}

// MaintenanceReport says what one Maintain run changed.
type MaintenanceReport struct {
	PartitionsCreated int
	PartitionsDropped int
	RowsDeleted       int64 // expired rows deleted outside dropped partitions
}

// Maintain keeps the storage within its window: on the plain layout it creates the
// partitions of today and the next AheadDays days and drops partitions wholly past
// retention, deletes expired rows of the DEFAULT partitions and the rollups; on both
// layouts it expires alert history and resolved alerts, external readings by the
// retention of their origin (Options.SourceRetention, Retention.External), fused WQI
// results and the stations' health history (Retention.Health). It is idempotent; the service
// runs it hourly.
func (s *Store) Maintain(ctx context.Context) (MaintenanceReport, error) {
	var rep MaintenanceReport
	now := s.opts.Now()
	if s.schema.Mode == ModePlain {
		for _, table := range partitioned {
			if err := s.maintainTable(ctx, table, &rep); err != nil {
				return rep, err
			}
		}
		deletes := []struct {
			sql    string
			cutoff time.Time
		}{
			// Rows outside every partition's window keep the retention counted from their
			// arrival: a station clock years off must not make them vanish at once.
			{`DELETE FROM measurements_default WHERE received_at < $1`, now.Add(-s.opts.Retention.Measurements)},
			{`DELETE FROM wqi_readings_default WHERE received_at < $1`, now.Add(-s.opts.Retention.WQI)},
			{`DELETE FROM measurements_hourly WHERE bucket < $1`, now.Add(-s.opts.Retention.Rollups)},
			{`DELETE FROM measurements_daily WHERE bucket < $1`, now.Add(-s.opts.Retention.Rollups)},
			{`DELETE FROM alert_events WHERE time < $1`, now.Add(-s.opts.Retention.Alerts)},
			// Forecasts are issued now, so the DEFAULT partition holds only those of a
			// day whose partition was missing: their own time is their arrival.
			{`DELETE FROM forecasts_default WHERE issued_at < $1`, now.Add(-s.opts.Retention.Forecasts)},
		}
		for _, d := range deletes {
			n, err := s.exec(ctx, "expire rows", d.sql, d.cutoff)
			if err != nil {
				return rep, err
			}
			rep.RowsDeleted += n
		}
	}
	n, err := s.exec(ctx, "expire alerts", `DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < $1`,
		now.Add(-s.opts.Retention.Alerts))
	rep.RowsDeleted += n
	if err != nil {
		return rep, err
	}
	n, err = s.expireExternal(ctx, now)
	rep.RowsDeleted += n
	if err != nil {
		return rep, err
	}
	// Counted from arrival: a station's clock may be years off.
	n, err = s.exec(ctx, "expire health history", `DELETE FROM station_health_history WHERE received_at < $1`,
		now.Add(-s.opts.Retention.Health))
	rep.RowsDeleted += n
	return rep, err
}

// expireExternal deletes external readings past their origin's retention (counted from
// the time they describe: upstream data arrives years old and is kept by its own rule,
// never by the raw-readings retention) and fused WQI results past the WQI retention, on
// either layout: neither table has a TimescaleDB retention policy.
func (s *Store) expireExternal(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	named := make([]string, 0, len(s.opts.SourceRetention))
	for origin, d := range s.opts.SourceRetention {
		named = append(named, origin)
		n, err := s.exec(ctx, "expire external readings",
			`DELETE FROM external_readings WHERE origin = $1 AND time < $2`, origin, now.Add(-d))
		total += n
		if err != nil {
			return total, err
		}
	}
	n, err := s.exec(ctx, "expire external readings",
		`DELETE FROM external_readings WHERE origin <> ALL($1) AND time < $2`, named, now.Add(-s.opts.Retention.External))
	total += n
	if err != nil {
		return total, err
	}
	n, err = s.exec(ctx, "expire fused wqi", `DELETE FROM fused_wqi WHERE time < $1`, now.Add(-s.opts.Retention.WQI))
	return total + n, err
}

func (s *Store) exec(ctx context.Context, what, sql string, args ...any) (int64, error) {
	var n int64
	err := s.query(ctx, what, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, sql, args...)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return n, nil
}

func (s *Store) maintainTable(ctx context.Context, table string, rep *MaintenanceReport) error {
	first, last := s.window(table)
	var existing map[int64]bool
	err := s.query(ctx, "list partitions", func(ctx context.Context) (err error) {
		existing, err = listPartitions(ctx, s.pool, table)
		return err
	})
	if err != nil {
		return fmt.Errorf("list partitions of %s: %w", table, err)
	}
	var want []int64
	for d := dayNumber(s.opts.Now()); d <= last; d++ {
		if !existing[d] {
			want = append(want, d)
		}
	}
	if len(want) > 0 {
		ctx, cancel := context.WithTimeout(ctx, s.opts.IngestTimeout)
		err := s.createPartitions(ctx, table, want)
		cancel()
		if err != nil {
			return fmt.Errorf("create partitions of %s: %w", table, err)
		}
		rep.PartitionsCreated += len(want)
	}
	for d := range existing {
		if d >= first {
			continue
		}
		// Dropping a partition locks the parent briefly; give up rather than stall
		// ingest, and try again at the next run.
		err := s.query(ctx, "drop partition", func(ctx context.Context) error {
			return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '5s'"); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(partitionLockKey)); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{partitionName(table, d)}.Sanitize())
				return err
			})
		})
		if err != nil {
			return fmt.Errorf("drop partition %s: %w", partitionName(table, d), err)
		}
		rep.PartitionsDropped++
		s.partMu.Lock()
		delete(s.parts[table], d)
		s.partMu.Unlock()
	}
	return nil
}

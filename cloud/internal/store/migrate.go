package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Mode is the storage layout of the time series.
type Mode string

// The layouts. ModeAuto is only a request to Migrate: choose by what the server offers.
const (
	ModeAuto      Mode = "auto"
	ModePlain     Mode = "plain"
	ModeTimescale Mode = "timescaledb"
)

// String describes the layout for people.
func (m Mode) String() string {
	switch m {
	case ModePlain:
		return "plain PostgreSQL (native partitions)"
	case ModeTimescale:
		return "timescaledb"
	}
	return string(m)
}

// Schema is the state of a database's schema.
type Schema struct {
	Version int  // highest applied migration, 0 for none
	Want    int  // the version this build needs
	Mode    Mode // empty before the first migration
}

func (s Schema) check() error {
	switch {
	case s.Version < s.Want:
		return fmt.Errorf("%w: database is at schema %d, this ph-cloud needs %d: run ph-cloud migrate", ErrSchema, s.Version, s.Want)
	case s.Version > s.Want:
		return fmt.Errorf("%w: database is at schema %d, newer than the %d this ph-cloud knows: upgrade ph-cloud", ErrSchema, s.Version, s.Want)
	case s.Mode != ModePlain && s.Mode != ModeTimescale:
		return fmt.Errorf("%w: schema_meta records an unknown storage mode %q", ErrSchema, s.Mode)
	}
	return nil
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one version: a common script, or one per mode.
type migration struct {
	version int
	name    string
	common  string
	byMode  map[Mode]string
}

func (m migration) script(mode Mode) (string, error) {
	if m.common != "" {
		return m.common, nil
	}
	s, ok := m.byMode[mode]
	if !ok {
		return "", fmt.Errorf("migration %d has no script for mode %s", m.version, mode)
	}
	return s, nil
}

// loadMigrations reads migrations/NNNN_name.sql (both modes) and
// migrations/NNNN_name.MODE.sql (one mode). Versions must run 1, 2, 3, ... without gaps.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, err
	}
	byVersion := map[int]*migration{}
	for _, e := range entries {
		name := e.Name()
		base, ok := strings.CutSuffix(name, ".sql")
		if !ok {
			continue
		}
		num, rest, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", name)
		}
		body, err := fs.ReadFile(fsys, path.Join("migrations", name))
		if err != nil {
			return nil, err
		}
		label, mode, hasMode := strings.Cut(rest, ".")
		m := byVersion[v]
		if m == nil {
			m = &migration{version: v, name: label, byMode: map[Mode]string{}}
			byVersion[v] = m
		}
		switch {
		case !hasMode:
			m.common = string(body)
		case Mode(mode) == ModePlain || Mode(mode) == ModeTimescale:
			m.byMode[Mode(mode)] = string(body)
		default:
			return nil, fmt.Errorf("migration file %s: unknown mode %q", name, mode)
		}
	}
	var out []migration
	for v := 1; v <= len(byVersion); v++ {
		m, ok := byVersion[v]
		if !ok {
			return nil, fmt.Errorf("migration %d is missing", v)
		}
		if m.common != "" && len(m.byMode) > 0 {
			return nil, fmt.Errorf("migration %d has both a common and a per-mode script", v)
		}
		if m.common == "" && len(m.byMode) != 2 {
			return nil, fmt.Errorf("migration %d needs a script for each mode", v)
		}
		out = append(out, *m)
	}
	return out, nil
}

// migrations is what this build embeds; a broken set is a build defect caught by tests.
func migrations() []migration {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		panic(err)
	}
	return ms
}

// SchemaVersion is the schema version this build needs.
func SchemaVersion() int { return len(migrations()) }

const bootstrap = `
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS schema_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);`

// migrateLockKey is the advisory lock that keeps two migrators apart.
const migrateLockKey = 0x70682d6d6967 // "ph-mig"

func readSchema(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) (Schema, error) {
	sc := Schema{Want: SchemaVersion()}
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL AND to_regclass('schema_meta') IS NOT NULL`).Scan(&exists); err != nil {
		return sc, wrapErr(fmt.Errorf("read schema version: %w", err))
	}
	if !exists {
		return sc, nil
	}
	var mode *string
	err := q.QueryRow(ctx, `SELECT (SELECT coalesce(max(version), 0) FROM schema_migrations),
		(SELECT value FROM schema_meta WHERE key = 'mode')`).Scan(&sc.Version, &mode)
	if err != nil {
		return sc, wrapErr(fmt.Errorf("read schema version: %w", err))
	}
	if mode != nil {
		sc.Mode = Mode(*mode)
	}
	return sc, nil
}

// MigrateOptions tune Migrate.
type MigrateOptions struct {
	// Mode requests a layout: ModeAuto (default) picks TimescaleDB when the server preloads
	// the extension. A database keeps the layout of its first migration; asking for the
	// other one later is an error.
	Mode Mode
	// Retention sets the TimescaleDB policies (ignored on plain PostgreSQL, where the
	// service's maintenance job applies it). Zero fields mean the defaults.
	Retention Retention
	// Timeout bounds the whole run (default 10 minutes).
	Timeout time.Duration
}

// MigrateResult says what Migrate did.
type MigrateResult struct {
	Mode Mode
	// ModeReason says why auto chose plain PostgreSQL when it did (for the log).
	ModeReason string
	From       int   // version before
	To         int   // version after
	Applied    []int // versions applied now
}

// Migrate brings the database at url to this build's schema version. It is idempotent,
// and an advisory lock makes concurrent runs wait for each other. Each migration runs in
// its own transaction together with its schema_migrations row.
func Migrate(ctx context.Context, url string, opts MigrateOptions) (MigrateResult, error) {
	if opts.Mode == "" {
		opts.Mode = ModeAuto
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Minute
	}
	o := Options{Retention: opts.Retention}
	o.fill()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	pool, err := newPool(ctx, url, 2, nil)
	if err != nil {
		return MigrateResult{}, err
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return MigrateResult{}, wrapErr(fmt.Errorf("connect: %w", err))
	}
	defer conn.Release()

	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrateLockKey)); err != nil {
		return MigrateResult{}, wrapErr(fmt.Errorf("take the migration lock: %w", err))
	}
	defer func() {
		// A lost connection releases the lock on its own; otherwise release it here.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrateLockKey)); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := conn.Exec(ctx, bootstrap); err != nil {
		return MigrateResult{}, wrapErr(fmt.Errorf("create schema_migrations: %w", err))
	}
	sc, err := readSchema(ctx, conn)
	if err != nil {
		return MigrateResult{}, err
	}
	res := MigrateResult{From: sc.Version, To: sc.Version}
	if sc.Version > sc.Want {
		return res, sc.check()
	}

	mode, reason, err := chooseMode(ctx, conn.Conn(), sc.Mode, opts.Mode)
	if err != nil {
		return res, err
	}
	res.Mode, res.ModeReason = mode, reason

	for _, m := range migrations() {
		if m.version <= sc.Version {
			continue
		}
		script, err := m.script(mode)
		if err != nil {
			return res, err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, script); err != nil {
				return describePgErr(err)
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return res, wrapErr(fmt.Errorf("migration %d (%s): %w", m.version, m.name, err))
		}
		res.Applied = append(res.Applied, m.version)
		res.To = m.version
	}
	if mode == ModeTimescale {
		if err := applyTimescalePolicies(ctx, conn.Conn(), o.Retention); err != nil {
			return res, wrapErr(err)
		}
	}
	return res, nil
}

// chooseMode is the one place that decides between TimescaleDB and plain PostgreSQL. A
// recorded mode wins; otherwise the request. ModeAuto chooses TimescaleDB only when the
// extension can be enabled: installed but not preloaded (shared_preload_libraries), it
// cannot, and auto falls back to plain PostgreSQL, saying why in reason; ModeTimescale
// then fails with that reason. The choice is recorded in schema_meta.
func chooseMode(ctx context.Context, conn *pgx.Conn, recorded, requested Mode) (mode Mode, reason string, err error) {
	if recorded != "" {
		if requested != ModeAuto && requested != recorded {
			return "", "", fmt.Errorf("%w: the database uses %s storage; database.mode %q cannot change it (use auto, or a new database)", ErrInvalid, recorded, requested)
		}
		return recorded, "", nil
	}
	if requested == ModePlain {
		return requested, "", recordMode(ctx, conn, requested)
	}
	// Enabling an extension that is installed but not preloaded ends the whole session
	// (TimescaleDB raises FATAL), so the preload is checked first, not tried. Only a
	// superuser may read shared_preload_libraries; every session sees the settings that
	// TimescaleDB's loader defines when it was preloaded (this one is not a tuning knob that a
	// configuration file would set without the loader).
	var available, preloaded bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),
		current_setting('timescaledb.bgw_launcher_poll_time', true) IS NOT NULL`).Scan(&available, &preloaded)
	if err != nil {
		return "", "", wrapErr(fmt.Errorf("look for timescaledb: %w", err))
	}
	switch {
	case !available:
		reason = "the timescaledb extension is not installed on the server"
	case !preloaded:
		reason = "the timescaledb extension is installed but not in the server's shared_preload_libraries"
	default:
		if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS timescaledb"); err != nil {
			reason = "the timescaledb extension cannot be enabled: " + describePgErr(err).Error()
		}
	}
	switch {
	case reason == "":
		mode = ModeTimescale
	case requested == ModeAuto:
		mode = ModePlain
	default:
		return "", "", fmt.Errorf("%w: database.mode %s, but %s (set database.mode: plain or auto)", ErrInvalid, requested, reason)
	}
	return mode, reason, recordMode(ctx, conn, mode)
}

func recordMode(ctx context.Context, conn *pgx.Conn, mode Mode) error {
	if _, err := conn.Exec(ctx, `INSERT INTO schema_meta (key, value) VALUES ('mode', $1)`, string(mode)); err != nil {
		return wrapErr(fmt.Errorf("record the storage mode: %w", err))
	}
	return nil
}

// applyTimescalePolicies (re)sets compression, retention and refresh policies from the
// configuration; each add is preceded by a remove so that a changed interval takes effect.
func applyTimescalePolicies(ctx context.Context, conn *pgx.Conn, r Retention) error {
	secs := func(d time.Duration) float64 { return d.Seconds() }
	// A refresh window reaching past the raw retention would erase aggregates of dropped
	// chunks; stop one day short of it.
	refreshStart := r.Measurements - day
	steps := []struct {
		sql  string
		args []any
	}{
		{`SELECT remove_compression_policy('measurements', if_exists => true)`, nil},
		{`SELECT add_compression_policy('measurements', INTERVAL '7 days')`, nil},
		{`SELECT remove_retention_policy('measurements', if_exists => true)`, nil},
		{`SELECT add_retention_policy('measurements', make_interval(secs => $1))`, []any{secs(r.Measurements)}},
		{`SELECT remove_retention_policy('wqi_readings', if_exists => true)`, nil},
		{`SELECT add_retention_policy('wqi_readings', make_interval(secs => $1))`, []any{secs(r.WQI)}},
		{`SELECT remove_retention_policy('forecasts', if_exists => true)`, nil},
		{`SELECT add_retention_policy('forecasts', make_interval(secs => $1))`, []any{secs(r.Forecasts)}},
		{`SELECT remove_retention_policy('alert_events', if_exists => true)`, nil},
		{`SELECT add_retention_policy('alert_events', make_interval(secs => $1))`, []any{secs(r.Alerts)}},
		{`SELECT remove_continuous_aggregate_policy('measurements_hourly', if_exists => true)`, nil},
		{`SELECT add_continuous_aggregate_policy('measurements_hourly', start_offset => make_interval(secs => $1),
			end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes')`, []any{secs(refreshStart)}},
		{`SELECT remove_continuous_aggregate_policy('measurements_daily', if_exists => true)`, nil},
		{`SELECT add_continuous_aggregate_policy('measurements_daily', start_offset => make_interval(secs => $1),
			end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour')`, []any{secs(refreshStart)}},
		{`SELECT remove_retention_policy('measurements_hourly', if_exists => true)`, nil},
		{`SELECT add_retention_policy('measurements_hourly', make_interval(secs => $1))`, []any{secs(r.Rollups)}},
		{`SELECT remove_retention_policy('measurements_daily', if_exists => true)`, nil},
		{`SELECT add_retention_policy('measurements_daily', make_interval(secs => $1))`, []any{secs(r.Rollups)}},
	}
	for _, st := range steps {
		if _, err := conn.Exec(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("timescaledb policy: %s: %w", strings.Join(strings.Fields(st.sql), " "), describePgErr(err))
		}
	}
	return nil
}

// describePgErr adds the server's position and detail to a PostgreSQL error.
func describePgErr(err error) error {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	if !ok {
		return err
	}
	extra := []string{}
	if pgErr.Detail != "" {
		extra = append(extra, "detail: "+pgErr.Detail)
	}
	if pgErr.Hint != "" {
		extra = append(extra, "hint: "+pgErr.Hint)
	}
	if pgErr.Where != "" {
		extra = append(extra, "where: "+pgErr.Where)
	}
	if len(extra) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(extra, "; "))
}

// CheckSchema reports the schema of the database at url without changing anything.
func CheckSchema(ctx context.Context, url string) (Schema, error) {
	pool, err := newPool(ctx, url, 2, nil)
	if err != nil {
		return Schema{}, err
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return readSchema(ctx, pool)
}

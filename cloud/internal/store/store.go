package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors. Match with errors.Is.
var (
	// ErrUnavailable: the database could not be reached or did not answer in time. The
	// operation had no effect or is safe to repeat.
	ErrUnavailable = errors.New("database unavailable")
	// ErrSchema: the database is not migrated to the version this build needs.
	ErrSchema = errors.New("database schema mismatch")
	// ErrNotFound: no such station (or token).
	ErrNotFound = errors.New("not found")
	// ErrExists: a station with that id exists already.
	ErrExists = errors.New("already exists")
	// ErrInvalid: an argument is out of its domain (the error says which).
	ErrInvalid = errors.New("invalid argument")
)

// Retention says how long each kind of data is kept.
type Retention struct {
	Measurements time.Duration // raw readings (default 90 days)
	WQI          time.Duration // default 730 days
	Alerts       time.Duration // alert history and resolved alerts (default 365 days)
	Rollups      time.Duration // hourly and daily rollups (default 730 days)
	Health       time.Duration // stations' health record history (default 30 days); the newest is kept
	// External is how long readings from outside the stations (government programmes,
	// satellites, posted lab samples) are kept, counted from the time they describe, for
	// an origin that Options.SourceRetention does not name (default DefaultExternalRetention).
	// Fused WQI results are kept as long as WQI.
	External time.Duration
	// Forecasts is how long issued forecasts are kept (default 7 days).
	Forecasts time.Duration
}

func (r *Retention) fill() {
	def := DefaultRetention()
	if r.Measurements == 0 {
		r.Measurements = def.Measurements
	}
	if r.WQI == 0 {
		r.WQI = def.WQI
	}
	if r.Alerts == 0 {
		r.Alerts = def.Alerts
	}
	if r.Rollups == 0 {
		r.Rollups = def.Rollups
	}
	if r.External == 0 {
		r.External = def.External
	}
	if r.Health == 0 {
		r.Health = def.Health
	}
	if r.Forecasts == 0 {
		r.Forecasts = def.Forecasts
	}
}

// Options tune a Store. The zero value of each field means its default.
type Options struct {
	MaxConns      int32         // pool size, default 10
	QueryTimeout  time.Duration // deadline of one query (acquire included), default 10s
	IngestTimeout time.Duration // deadline of one batch transaction, default 30s
	AheadDays     int           // plain layout: daily partitions kept ready beyond today, default 3
	Retention     Retention
	// SourceRetention overrides Retention.External per origin: the configured name of an
	// upstream source (cpcb-nwmp), or OriginManual for posted samples.
	SourceRetention map[string]time.Duration
	// LiveMaxAge is how old a reading may be when its batch is stored and still get a
	// live event of its own. Older ones, a backlog arriving late, are announced by one
	// status event per batch (Backfill). Zero: every new reading gets its event.
	LiveMaxAge time.Duration
	Log        *slog.Logger     // default: discard
	Now        func() time.Time // clock for partition windows and retention, default time.Now
}

const day = 24 * time.Hour

func (o *Options) fill() {
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.QueryTimeout == 0 {
		o.QueryTimeout = DefaultQueryTimeout
	}
	if o.IngestTimeout == 0 {
		o.IngestTimeout = DefaultIngestTimeout
	}
	if o.AheadDays == 0 {
		o.AheadDays = DefaultAheadDays
	}
	o.Retention.fill()
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is the cloud's database. See the package documentation.
type Store struct {
	pool   *pgxpool.Pool
	opts   Options
	log    *slog.Logger
	schema Schema

	partMu sync.Mutex
	parts  map[string]map[int64]bool // plain layout: table -> UTC day number -> partition exists
}

// Open connects to the database at url and checks that it is migrated to exactly the
// version this build needs; otherwise the error matches ErrSchema and tells the operator
// what to run.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	opts.fill()
	pool, err := newPool(ctx, url, opts.MaxConns, func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, stagingDDL)
		return err
	})
	if err != nil {
		return nil, err
	}
	s := &Store{pool: pool, opts: opts, log: opts.Log, parts: map[string]map[int64]bool{}}
	cctx, cancel := context.WithTimeout(ctx, opts.QueryTimeout)
	defer cancel()
	schema, err := readSchema(cctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if err := schema.check(); err != nil {
		pool.Close()
		return nil, err
	}
	s.schema = schema
	return s, nil
}

func newPool(ctx context.Context, url string, maxConns int32, afterConnect func(context.Context, *pgx.Conn) error) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	cfg.MaxConns = maxConns
	// Buckets and partitions are UTC days whatever the server's default zone.
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	// JIT compilation pays off for long analytic queries, not for ours: once partitions
	// hold a few hundred thousand rows, the rollup recompute of each batch crosses the JIT
	// cost thresholds (its staging table is never analyzed) and spends ~0.7 s compiling,
	// which cut a backlog drain from ~10k to ~1.3k readings/s. A database_url may still
	// set jit explicitly.
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; !set {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	// Live events built by PostgreSQL print numbers with float8's text output, which is
	// the shortest exact form (as Go's) only at extra_float_digits 1, the default; a
	// database_url or server setting must not change it for our connections.
	cfg.ConnConfig.RuntimeParams["extra_float_digits"] = "1"
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "ph-cloud"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	cfg.HealthCheckPeriod = 15 * time.Second
	cfg.AfterConnect = afterConnect
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database pool: %w", err)
	}
	return pool, nil
}

// Close closes the pool, waiting for connections in use to be released.
func (s *Store) Close() { s.pool.Close() }

// Schema returns the schema version and layout found at Open.
func (s *Store) Schema() Schema { return s.schema }

// Ping checks that the database answers. It reports how long the round trip took.
func (s *Store) Ping(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	start := time.Now()
	var one int
	err := s.pool.QueryRow(ctx, "SELECT 1").Scan(&one)
	if err != nil {
		return 0, wrapErr(err)
	}
	return time.Since(start), nil
}

// PoolStats reports the connection pool's state.
func (s *Store) PoolStats() *pgxpool.Stat { return s.pool.Stat() }

// connLost reports whether err means the connection (and likely every pooled one) is
// gone: the server shut down or restarted, or the network failed.
func connLost(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection exceptions
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return pgconn.SafeToRetry(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// retryable reports whether repeating an idempotent operation may succeed: after a lost
// connection, or a transient conflict between transactions.
func retryable(err error) bool {
	if connLost(err) {
		return true
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch pgErr.Code {
		case "53300", // too_many_connections
			"40001", "40P01", // serialization_failure, deadlock_detected
			"55P03": // lock_not_available (lock_timeout)
			return true
		}
	}
	return false
}

// isUniqueViolation reports whether err is a unique key's violation (SQLSTATE 23505).
func isUniqueViolation(err error) bool {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	return ok && pgErr.Code == "23505"
}

// unavailable reports whether err means the database is (for now) out of reach.
func unavailable(err error) bool {
	return retryable(err) || errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err)
}

// wrapErr marks database outages with ErrUnavailable.
func wrapErr(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// withRetry runs op, and once more if it failed with a connection error or a transient
// conflict: after a PostgreSQL restart the first use of a pooled connection fails although
// the server is back. op must be idempotent.
func (s *Store) withRetry(ctx context.Context, what string, op func(ctx context.Context) error) error {
	err := op(ctx)
	if retryable(err) && ctx.Err() == nil {
		if connLost(err) {
			// The other idle connections died with this one (a restarted server): drop
			// them all, so that the retry gets a fresh connection rather than the next
			// dead one. Connections in use are closed when they come back.
			s.pool.Reset()
		}
		s.log.Debug("retrying", "op", what, "err", err)
		err = op(ctx)
	}
	return wrapErr(err)
}

// query runs op with the query deadline and one retry (op must be read-only or idempotent).
func (s *Store) query(ctx context.Context, what string, op func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	return s.withRetry(ctx, what, op)
}

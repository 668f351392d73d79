package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/internal/pgtest"
)

// PostgresSettings are the server settings a benchmark reports, in this order.
var PostgresSettings = []string{"server_version", "fsync", "synchronous_commit", "wal_sync_method",
	"full_page_writes", "wal_level", "shared_buffers", "max_wal_size", "checkpoint_timeout", "max_connections",
	"jit", "jit_above_cost"}

// Postgres is a throwaway PostgreSQL server (pgtest's, started without a test) with its
// defaults, fsync on, except for what a benchmark must set: it listens on a free port of
// 127.0.0.1 only, with its socket in its own directory, the time zone UTC and the log at
// warnings. Its methods are safe for concurrent use.
type Postgres struct {
	*pgtest.Server
}

// ErrNoPostgres reports that no PostgreSQL installation was found.
var ErrNoPostgres = pgtest.ErrNoBinaries

// StartPostgres starts a server and returns once it accepts connections. The caller must
// Stop it, which also removes its directory. extra are more "name=value" settings.
func StartPostgres(ctx context.Context, extra ...string) (*Postgres, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := pgtest.StartServer(extra...)
	if err != nil {
		return nil, err
	}
	return &Postgres{s}, nil
}

// CreateDB creates database name.
func (pg *Postgres) CreateDB(ctx context.Context, name string) error {
	return pg.CreateDatabase(ctx, name)
}

// Setting is one server setting as SHOW gives it.
type Setting struct{ Name, Value string }

// Settings returns PostgresSettings as the server has them.
func (pg *Postgres) Settings(ctx context.Context) ([]Setting, error) {
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	out := make([]Setting, 0, len(PostgresSettings))
	for _, name := range PostgresSettings {
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return nil, fmt.Errorf("read setting %s: %w", name, err)
		}
		out = append(out, Setting{name, v})
	}
	return out, nil
}

// Psql runs the server's psql against database db with args (after the connection), as the
// benchmark's own user, and returns its output. -X (no ~/.psqlrc) and ON_ERROR_STOP are
// always set.
func (pg *Postgres) Psql(ctx context.Context, db string, args ...string) ([]byte, error) {
	psql, err := pgtest.Tool("psql")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, psql, append([]string{"-X", "-v", "ON_ERROR_STOP=1", "-d", pg.URL(db)}, args...)...)
	cmd.Env = append(os.Environ(), "PGTZ=UTC")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("psql %s: %w: %s", strings.Join(args, " "), err, lastLine(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// Stop shuts the server down (fast: open sessions are rolled back) and removes its
// directory.
func (pg *Postgres) Stop() error { return pg.Close() }

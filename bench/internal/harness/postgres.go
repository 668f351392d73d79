package harness

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresSettings are the server settings a benchmark reports, in this order.
var PostgresSettings = []string{"server_version", "fsync", "synchronous_commit", "wal_sync_method",
	"full_page_writes", "wal_level", "shared_buffers", "max_wal_size", "checkpoint_timeout", "max_connections",
	"jit", "jit_above_cost"}

// Postgres is a throwaway PostgreSQL server from the system's binaries, with its defaults
// (fsync on) except for what a benchmark must set: it listens on a free port of 127.0.0.1
// only, with its socket in its own directory, the time zone UTC and the log at warnings.
// When the benchmark runs as root, the server runs as the "postgres" system user, since
// PostgreSQL refuses root. Its methods are safe for concurrent use.
type Postgres struct {
	*Proc
	bin  string // directory of initdb, postgres, psql
	dir  string // owns data/, the socket and the log
	port int
	cred *syscall.Credential // nil unless running as root
}

// ErrNoPostgres reports that no PostgreSQL installation was found.
var ErrNoPostgres = errors.New("PostgreSQL binaries (initdb, postgres, psql) not found on PATH or in /usr/lib/postgresql/*/bin")

// PostgresBinDir finds the directory holding initdb, postgres and psql together: the
// newest /usr/lib/postgresql/<major>/bin (Debian), else the directory of initdb on PATH.
func PostgresBinDir() (string, error) {
	complete := func(dir string) bool {
		for _, n := range []string{"initdb", "postgres", "psql"} {
			if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
				return false
			}
		}
		return true
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(d string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return cmp.Compare(major(b), major(a)) })
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if complete(d) {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

// StartPostgres initializes a cluster in a new directory under the system's temporary
// directory (the server's user must reach it, and the socket path must stay short), starts
// the server and returns once it accepts connections. The caller must Stop it, which also
// removes the directory. extra are more "name=value" settings.
func StartPostgres(ctx context.Context, extra ...string) (*Postgres, error) {
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "phbench-pg-")
	if err != nil {
		return nil, err
	}
	pg := &Postgres{bin: bin, dir: dir}
	fail := func(err error) (*Postgres, error) {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fail(fmt.Errorf("running as root needs the postgres system user to run the server: %w", err))
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return fail(fmt.Errorf("postgres user: %w", err))
		}
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, int(uid), int(gid)); err != nil {
			return fail(err)
		}
	}
	// initdb --no-sync: the cluster is thrown away after the run; the server itself runs
	// with fsync on.
	out, err := pg.command(ctx, filepath.Join(bin, "initdb"), "-D", pg.dataDir(), "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput()
	if err != nil {
		return fail(fmt.Errorf("initdb: %w: %s", err, bytes.TrimSpace(out)))
	}
	addr, err := FreePort()
	if err != nil {
		return fail(err)
	}
	_, port, _ := strings.Cut(addr, ":")
	if pg.port, err = strconv.Atoi(port); err != nil {
		return fail(err)
	}
	args := []string{"-D", pg.dataDir(), "-p", port, "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "timezone=UTC", "-c", "log_min_messages=warning"}
	for _, e := range extra {
		args = append(args, "-c", e)
	}
	if pg.Proc, err = pg.startServer(args); err != nil {
		return fail(err)
	}
	if err := pg.waitReady(ctx, 60*time.Second); err != nil {
		return nil, errors.Join(err, pg.Stop())
	}
	return pg, nil
}

func (pg *Postgres) dataDir() string { return filepath.Join(pg.dir, "data") }

// Dir is the directory holding the cluster (data/) and the server's log.
func (pg *Postgres) Dir() string { return pg.dir }

func (pg *Postgres) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = pg.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	return cmd
}

// startServer starts postgres as a *Proc whose log is postgres.log. Should the benchmark
// die, the kernel sends the server SIGQUIT (PostgreSQL's immediate shutdown).
func (pg *Postgres) startServer(args []string) (*Proc, error) {
	logPath := filepath.Join(pg.dir, "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log for postgres: %w", err)
	}
	if pg.cred != nil {
		if err := logf.Chown(int(pg.cred.Uid), int(pg.cred.Gid)); err != nil {
			return nil, errors.Join(err, logf.Close())
		}
	}
	name := filepath.Join(pg.bin, "postgres")
	cmd := exec.Command(name, args...)
	cmd.Dir = pg.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("start postgres: %w", err), logf.Close())
	}
	p := &Proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.err = errors.Join(err, logf.Close())
		close(p.done)
	}()
	return p, nil
}

func (pg *Postgres) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, pg.URL("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-pg.Done():
			_, why := pg.Exited()
			return fmt.Errorf("postgres exited during start-up (%v); its log ends:\n%s", why, pg.LogTail(15))
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready after %s (%w); its log ends:\n%s", limit, err, pg.LogTail(15))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// URL is the connection URL of database db, as the superuser "postgres".
func (pg *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.port, db)
}

// CreateDB creates database name.
func (pg *Postgres) CreateDB(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
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
	cmd := exec.CommandContext(ctx, filepath.Join(pg.bin, "psql"),
		append([]string{"-X", "-v", "ON_ERROR_STOP=1", "-d", pg.URL(db)}, args...)...)
	cmd.Env = append(os.Environ(), "PGTZ=UTC")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("psql %s: %w: %s", strings.Join(args, " "), err, lastLine(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// Stop shuts the server down (fast: open sessions are rolled back), waiting up to a minute
// before it kills it, and removes its directory. It returns how the server ended; calling
// it again returns the same.
func (pg *Postgres) Stop() error {
	select {
	case <-pg.Done():
	default:
		// SIGINT is PostgreSQL's fast shutdown; Proc.Stop's SIGTERM would wait for every
		// client to leave.
		if err := pg.cmd.Process.Signal(syscall.SIGINT); err == nil {
			select {
			case <-pg.Done():
			case <-time.After(time.Minute):
			}
		}
	}
	err := pg.Proc.Stop()
	if rerr := os.RemoveAll(pg.dir); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return err
}

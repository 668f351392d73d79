// Package pgtest gives tests a real PostgreSQL server (the cloud's tests and the system
// tests in e2e/).
//
// Unless PH_TEST_DATABASE_URL names an existing server, the first test that asks for a
// database starts a throwaway server from the system's PostgreSQL binaries (initdb and
// postgres found on PATH or under /usr/lib/postgresql/*/bin) in a directory under /tmp,
// listening on a free port of 127.0.0.1, with fsync off for speed. When the tests run as
// root, the server runs as the "postgres" system user of the Debian package, since
// PostgreSQL refuses to run as root. Every test gets its own fresh database, dropped when
// the test ends. One server serves the whole test binary: call Main from TestMain so that
// it is stopped (pg_ctl stop -m fast) when the tests are done.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Tests that stop and restart PostgreSQL (fault tests) take a private server with Start.
// StartServer starts one without a test, with the settings a caller chooses (the
// benchmarks run PostgreSQL with its defaults, fsync on).
//
// Without the binaries a test is skipped with a message saying to install postgresql,
// unless PH_REQUIRE_TOOLS=1, when it fails.
package pgtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names an existing server to use instead of a throwaway one. The user must be
// allowed to create databases; URL form (postgres://...) only.
const EnvURL = "PH_TEST_DATABASE_URL"

// shared is the test binary's server, started by the first New and stopped by Main.
var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

var dbCounter atomic.Int64

// Main runs the tests and then stops the shared server, if one was started. Use it from
// TestMain and pass its result to os.Exit.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	return code
}

// New returns the URL of a fresh, empty database on the shared server (or on the server
// PH_TEST_DATABASE_URL names). The database is dropped when the test ends.
func New(t testing.TB) string {
	t.Helper()
	if base := os.Getenv(EnvURL); base != "" {
		return createDB(t, base)
	}
	shared.once.Do(func() { shared.srv, shared.err = start() })
	if shared.err != nil {
		unavailable(t, shared.err)
	}
	return shared.srv.CreateDB(t)
}

// NewOn returns the URL of a fresh, empty database on the server adminURL names (as a user
// allowed to create databases), dropped when the test ends.
func NewOn(t testing.TB, adminURL string) string {
	t.Helper()
	return createDB(t, adminURL)
}

// Start starts a private server for this test, stopped and removed when the test ends.
// Use it for tests that stop PostgreSQL, or that need more settings ("name=value", such
// as shared_preload_libraries=timescaledb); it needs the local binaries even when
// PH_TEST_DATABASE_URL is set.
func Start(t testing.TB, settings ...string) *Server {
	t.Helper()
	s, err := start(settings...)
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// ErrNoBinaries reports that no PostgreSQL installation was found.
var ErrNoBinaries = errors.New("PostgreSQL binaries (initdb, pg_ctl, postgres) not found on PATH or in /usr/lib/postgresql/*/bin")

func unavailable(t testing.TB, err error) {
	t.Helper()
	msg := fmt.Sprintf("pgtest: no PostgreSQL server: %v (install it: apt-get install postgresql)", err)
	if os.Getenv("PH_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Tool returns the path of a PostgreSQL program (pg_dump, psql, ...) of the installation
// pgtest uses.
func Tool(name string) (string, error) {
	dir, err := binDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// LibDir is the directory of the server's loadable modules (extensions) in the
// installation pgtest uses.
func LibDir() (string, error) {
	dir, err := binDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(dir), "lib"), nil
}

// TimescaleSettings returns the settings that make a server Start-ed here load TimescaleDB
// (preloaded, its telemetry off so that tests reach nothing outside the machine), or an
// error saying why the installation pgtest uses cannot load it.
func TimescaleSettings() ([]string, error) {
	lib, err := LibDir()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(lib, "timescaledb.so")); err != nil {
		return nil, fmt.Errorf("TimescaleDB is not installed: %w", err)
	}
	return []string{"shared_preload_libraries=timescaledb", "timescaledb.telemetry_level=off"}, nil
}

// binDir finds the directory holding initdb, pg_ctl and postgres together.
func binDir() (string, error) {
	complete := func(dir string) bool {
		for _, n := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
				return false
			}
		}
		return true
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		// Debian links a few programs into /usr/local/bin or /usr/bin; the rest sit beside
		// the real file.
		if real, err := filepath.EvalSymlinks(p); err == nil && complete(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if complete(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first.
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return cmp.Compare(vb, va)
	})
	for _, d := range dirs {
		if complete(d) {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

// Server is a throwaway PostgreSQL server. Its methods are safe for concurrent use.
type Server struct {
	bin      string
	dir      string // owns data/, the socket and the log
	port     int
	cred     *syscall.Credential // nil unless running as root
	settings []string            // "name=value", after the fixed ones

	mu      sync.Mutex
	proc    *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// testSettings trade durability for speed: a test's database is thrown away.
var testSettings = []string{"fsync=off", "max_connections=200", "shared_buffers=64MB"}

func start(settings ...string) (*Server, error) {
	return StartServer(append(slices.Clone(testSettings), settings...)...)
}

// StartServer initializes a cluster in a new directory under the system's temporary
// directory and starts a server on a free port of 127.0.0.1, returning once it accepts
// connections. Besides listening on 127.0.0.1 only, the time zone UTC and the log at
// warnings, it has PostgreSQL's defaults and settings ("name=value"). The caller must
// Close it, which also removes the directory. When the process runs as root, the server
// runs as the "postgres" system user, since PostgreSQL refuses root.
func StartServer(settings ...string) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	// Under /tmp, not t.TempDir: the server's user must reach it, and the socket path
	// must stay short.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, settings: settings}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if os.Geteuid() == 0 {
		cred, err := postgresUser()
		if err != nil {
			return fail(err)
		}
		s.cred = cred
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(err)
		}
	}
	out, err := s.command(filepath.Join(bin, "initdb"), "-D", s.dataDir(), "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput()
	if err != nil {
		return fail(fmt.Errorf("initdb: %w: %s", err, out))
	}
	// A port that was free a moment ago can be taken by a parallel test binary: try a few.
	for range 5 {
		if s.port, err = freePort(); err != nil {
			return fail(err)
		}
		if err = s.Start(); err == nil {
			return s, nil
		}
	}
	return fail(err)
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres system user to run the server: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres user: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// Dir is the directory holding the cluster (data/) and the server's log.
func (s *Server) Dir() string { return s.dir }

// PID is the process id of the running server (the postmaster), 0 when it is stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Process.Pid
}
func (s *Server) logPath() string { return filepath.Join(s.dir, "postgres.log") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

// URL returns the connection URL of database db.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Start starts the server (again) on its port and waits until it accepts connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("pgtest: server already running")
	}
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	args := []string{"-D", s.dataDir(), "-p", strconv.Itoa(s.port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "timezone=UTC", "-c", "log_min_messages=warning"}
	for _, set := range s.settings {
		args = append(args, "-c", set)
	}
	cmd := s.command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Should the test binary die without cleaning up, the server goes with it (SIGQUIT is
	// PostgreSQL's immediate shutdown).
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	s.proc, s.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-exited:
			s.proc = nil
			return fmt.Errorf("postgres exited at start: %s", s.logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after 60s: %v: %s", err, s.logTail())
		}
	}
}

// Stop stops the server with pg_ctl stop -m mode: "fast" (roll back and disconnect
// clients, then a clean shutdown) or "immediate" (like a crash: recovery runs at the next
// start).
func (s *Server) Stop(mode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	out, err := s.command(filepath.Join(s.bin, "pg_ctl"), "stop", "-D", s.dataDir(), "-m", mode,
		"-w", "-t", "60").CombinedOutput()
	if err != nil {
		// Make sure it is gone before reporting.
		s.proc.Process.Signal(syscall.SIGQUIT)
	}
	exited := s.exited
	s.mu.Unlock()
	<-exited
	s.mu.Lock()
	s.proc = nil
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %w: %s", mode, err, out)
	}
	return nil
}

// Close stops the server and removes its files.
func (s *Server) Close() error {
	err := s.Stop("fast")
	return errors.Join(err, os.RemoveAll(s.dir))
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// CreateDB creates a fresh database and returns its URL; it is dropped when the test ends.
func (s *Server) CreateDB(t testing.TB) string {
	t.Helper()
	return createDB(t, s.URL("postgres"))
}

// CreateDatabase creates the database name, for a caller without a test; it stays until
// the server is closed.
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	if err := adminExec(ctx, s.URL("postgres"), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func createDB(t testing.TB, adminURL string) string {
	t.Helper()
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: %q must be a postgres:// URL", adminURL)
	}
	name := fmt.Sprintf("pgtest_%d_%d", os.Getpid(), dbCounter.Add(1))
	if err := adminExec(context.Background(), adminURL, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		// A test that stopped a private server has nothing left to drop.
		if err := adminExec(context.Background(), adminURL, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

func adminExec(ctx context.Context, adminURL, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

package testproc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { os.Exit(Main(new(Builder), m.Run)) }

// guard bounds every wait here; it only turns a hang into a failure.
const guard = 20 * time.Second

// shell returns the path of sh, skipping the test without one.
func shell(t *testing.T) string {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skipf("no sh: %v", err)
	}
	return sh
}

// recorder is a testing.TB that records failures instead of ending the test, to check
// what a helper reports.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func TestBuilder(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	var b Builder
	t.Cleanup(func() { assert.NoError(t, b.Close()) })

	path, err := b.Build("hello", "./testdata/hello", false)
	require.NoError(t, err)
	assert.Equal(t, "hello", filepath.Base(path), "the program keeps its name")
	out, err := exec.Command(path).Output()
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(out))

	info, err := os.Stat(path)
	require.NoError(t, err)
	again, err := b.Build("hello", "./testdata/hello", false)
	require.NoError(t, err)
	assert.Equal(t, path, again, "one build per program")
	info2, err := os.Stat(again)
	require.NoError(t, err)
	assert.Equal(t, info.ModTime(), info2.ModTime(), "not built again")

	_, err = b.Build("broken", "./testdata/no-such-program", false)
	assert.ErrorContains(t, err, "go build", "a failed build says what it ran")

	require.NoError(t, b.Close())
	_, err = os.Stat(path)
	assert.ErrorIs(t, err, os.ErrNotExist, "Close removes the builds")
	assert.NoError(t, b.Close(), "Close is idempotent")
}

func TestEnv(t *testing.T) {
	t.Setenv("GORACE", "halt_on_error=1")
	env := Env()
	assert.Equal(t, "GORACE=halt_on_error=1 atexit_sleep_ms=0", env[len(env)-1],
		"the race detector's settings are kept and its wait at exit is off")
}

func TestProcess(t *testing.T) {
	sh := shell(t)

	t.Run("lines, then a clean stop", func(t *testing.T) {
		p := Start(t, sh, "-c", `trap 'exit 0' TERM; echo one; echo two; while :; do sleep 0.01; done`)
		assert.Equal(t, "one", p.Line(t, guard))
		assert.Equal(t, "two", p.Line(t, guard))
		assert.NoError(t, p.Stop(syscall.SIGTERM, guard))
		assert.NoError(t, p.Stop(syscall.SIGTERM, guard), "Stop is idempotent")
	})
	t.Run("a signal it ignores", func(t *testing.T) {
		p := Start(t, sh, "-c", `trap '' TERM; echo up; while :; do sleep 0.01; done`)
		p.Line(t, guard)
		assert.ErrorContains(t, p.Stop(syscall.SIGTERM, 100*time.Millisecond), "killed")
	})
	t.Run("a signal that ends it", func(t *testing.T) {
		p := Start(t, sh, "-c", `echo up; exec sleep 60`)
		p.Line(t, guard)
		assert.ErrorContains(t, p.Stop(syscall.SIGTERM, guard), "signal: terminated")
	})
	t.Run("killed", func(t *testing.T) {
		p := Start(t, sh, "-c", `echo up; exec sleep 60`)
		p.Line(t, guard)
		require.NoError(t, p.Kill())
		assert.NoError(t, p.Kill(), "Kill is idempotent")
		assert.NoError(t, p.Stop(syscall.SIGTERM, guard), "nothing to stop after Kill")
	})
	t.Run("stopped when the test ends", func(t *testing.T) {
		var p *Process
		t.Run("inner", func(t *testing.T) {
			p = Start(t, sh, "-c", `echo up; exec sleep 60`)
			p.Line(t, guard)
		})
		select {
		case <-p.exited:
		default:
			t.Fatal("the process outlived its test")
		}
	})
}

func TestDaemon(t *testing.T) {
	sh := shell(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "ready")
	d := NewDaemon(t, DaemonOptions{
		Name: "svc", Path: sh, Log: filepath.Join(dir, "svc.log"), Guard: guard,
		// Ready once it has written its marker; a clean exit on SIGTERM.
		Args: []string{"-c", `trap 'rm -f ` + marker + `; exit 0' TERM; trap 'echo hup' HUP; echo serving; touch ` + marker + `; while :; do sleep 0.01; done`},
		Ready: func(context.Context) error {
			_, err := os.Stat(marker)
			return err
		},
	})
	assert.False(t, d.Running(), "not started by NewDaemon")
	d.Start(t)
	assert.True(t, d.Running())
	d.Signal(t, syscall.SIGHUP)
	require.Eventually(t, func() bool { return strings.Contains(d.LogTail(1<<10), "hup\n") }, guard, 10*time.Millisecond,
		"the signal reached the service, which runs on")
	assert.True(t, d.Running())
	d.Stop(t)
	assert.False(t, d.Running())
	d.Start(t)
	d.Kill(t)
	assert.False(t, d.Running())
	assert.Equal(t, 2, d.Starts())
	log := d.LogTail(1 << 10)
	assert.Contains(t, log, "=== start 1 at ")
	assert.Contains(t, log, "=== start 2 at ")
	assert.Equal(t, 2, strings.Count(log, "serving\n"), "both lives in one log:\n%s", log)
}

func TestCheckLog(t *testing.T) {
	tests := []struct {
		name string
		log  string // "" for no log at all
		want []string
	}{
		{name: "never started"},
		{name: "clean", log: "=== start 1\nlevel=INFO msg=up\n"},
		{name: "race", log: "==================\nWARNING: DATA RACE\nWrite at 0x00c000\n", want: []string{`"WARNING: DATA RACE"`}},
		{name: "panic", log: "panic: runtime error: index out of range\n", want: []string{`"panic:"`}},
		{name: "fatal", log: "fatal error: concurrent map writes\n", want: []string{`"fatal error:"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "svc.log")
			if tt.log != "" {
				require.NoError(t, os.WriteFile(path, []byte(tt.log), 0o600))
			}
			d := &Daemon{o: DaemonOptions{Name: "svc", Log: path}}
			r := &recorder{TB: t}
			d.CheckLog(r)
			require.Len(t, r.errors, len(tt.want), "errors: %q", r.errors)
			for i, w := range tt.want {
				assert.Contains(t, r.errors[i], w)
			}
		})
	}
}

func TestRun(t *testing.T) {
	sh := shell(t)
	res := Run(t, guard, sh, "-c", `echo out; echo err >&2; exit 4`)
	assert.Equal(t, Result{Stdout: "out\n", Stderr: "err\n", Code: 4}, res)

	res, err := Exec(t.Context(), sh, "-c", `echo fine`)
	require.NoError(t, err)
	assert.Equal(t, Result{Stdout: "fine\n"}, res)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = Exec(ctx, sh, "-c", `exec sleep 60`)
	assert.Error(t, err, "a command cut short by its context is an error, not an exit code")
}

func TestFreeAddr(t *testing.T) {
	l, err := net.Listen("tcp", FreeAddr(t, "tcp"))
	require.NoError(t, err, "the TCP address can be listened on")
	assert.NoError(t, l.Close())
	c, err := net.ListenPacket("udp", FreeAddr(t, "udp"))
	require.NoError(t, err, "the UDP address can be listened on")
	assert.NoError(t, c.Close())
}

func TestFreePortRefusesOtherNetworks(t *testing.T) {
	_, err := FreePort("unix")
	assert.ErrorContains(t, err, `"unix" is neither tcp nor udp`)
}

func TestLoggedStop(t *testing.T) {
	sh := shell(t)
	tests := []struct {
		name    string
		script  string
		grace   time.Duration
		wantErr string
	}{
		{name: "graceful on SIGTERM", script: `trap 'exit 0' TERM; echo up; while :; do sleep 0.01; done`, grace: guard},
		{name: "dies on SIGTERM", script: `echo up; exec sleep 60`, grace: guard, wantErr: "signal: terminated"},
		{name: "already failed", script: `echo up; exit 3`, grace: guard, wantErr: "exit status 3"},
		{name: "ignores SIGTERM", script: `trap '' TERM; echo up; while :; do sleep 0.01; done`,
			grace: 100 * time.Millisecond, wantErr: "did not stop within 100ms of terminated and was killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "out.log")
			p, err := StartLogged(sh, log, nil, "-c", tt.script)
			require.NoError(t, err)
			t.Cleanup(p.Kill) // for a failed require; Kill after Stop does nothing
			require.Eventually(t, func() bool { return strings.Contains(p.LogTail(1), "up") },
				guard, 10*time.Millisecond, "the program starts")
			assert.Equal(t, log, p.Log())
			assert.Positive(t, p.PID())
			err = p.Stop(syscall.SIGTERM, tt.grace)
			if tt.wantErr == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tt.wantErr)
			}
			assert.Equal(t, err, p.Stop(syscall.SIGTERM, tt.grace), "Stop is idempotent")
			exited, _ := p.Exited()
			assert.True(t, exited)
			select {
			case <-p.Done():
			default:
				t.Error("Done is closed once the program has exited")
			}
		})
	}
}

func TestLoggedAppendsAndReportsStartFailure(t *testing.T) {
	log := filepath.Join(t.TempDir(), "out.log")
	require.NoError(t, os.WriteFile(log, []byte("before\n"), 0o644))
	p, err := StartLogged(shell(t), log, nil, "-c", "echo after")
	require.NoError(t, err)
	<-p.Done()
	assert.Equal(t, "before\nafter", p.LogTail(5), "the log is appended to")
	assert.NoError(t, p.Stop(syscall.SIGTERM, guard), "a program that exited 0 stopped cleanly")

	_, err = StartLogged("/nonexistent/program", log, nil)
	assert.ErrorContains(t, err, "start program")
}

func TestStartAnnounced(t *testing.T) {
	log := filepath.Join(t.TempDir(), "out.log")
	lines := make(chan string, 2)
	p, err := StartAnnounced(shell(t), log, nil, lines, "-c", `echo one; echo two; echo three; echo oops >&2`)
	require.NoError(t, err)
	<-p.Done()
	assert.Equal(t, "one", <-lines)
	assert.Equal(t, "two", <-lines, "what does not fit in lines goes to the log only")
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	for _, want := range []string{"one\n", "two\n", "three\n", "oops\n"} {
		assert.Contains(t, string(b), want, "standard output and error are in the log")
	}
	assert.NoError(t, p.Stop(syscall.SIGTERM, guard))
}

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
		Args: []string{"-c", `trap 'rm -f ` + marker + `; exit 0' TERM; echo serving; touch ` + marker + `; while :; do sleep 0.01; done`},
		Ready: func(context.Context) error {
			_, err := os.Stat(marker)
			return err
		},
	})
	assert.False(t, d.Running(), "not started by NewDaemon")
	d.Start(t)
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

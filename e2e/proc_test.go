package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// guard bounds every single wait (a process starting, a command, a publish). It only turns
// a hang into a failure: no test asserts how fast anything happens. It is generous because
// the processes under test may be race-detector builds sharing two cores.
const guard = 30 * time.Second

// drainGuard bounds the wait for a whole backlog to reach the cloud.
const drainGuard = 90 * time.Second

// proc is a daemon under test (ph-agent run, ph-cloud serve) that a test starts, kills and
// starts again as often as it likes. Its output over all its lives goes to one log file,
// shown when the test fails and checked for race reports and panics at the end. It is used
// from the test goroutine only.
type proc struct {
	name  string
	bin   string
	args  []string
	log   string
	ready func(ctx context.Context) error // nil when the process answers

	starts  int
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd has been waited for
	waitErr error         // valid after exited is closed
}

// newProc prepares a process; it is killed at the end of the test if it still runs.
func newProc(t *testing.T, name, log, bin string, args []string, ready func(context.Context) error) *proc {
	t.Helper()
	p := &proc{name: name, bin: bin, args: args, log: log, ready: ready}
	t.Cleanup(func() {
		if p.running() {
			p.kill(t)
		}
		p.checkLog(t)
		if t.Failed() {
			t.Logf("%s log (last 8 KiB):\n%s", p.name, p.logTail(8<<10))
		}
	})
	return p
}

func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// start starts the process and waits until it is ready.
func (p *proc) start(t *testing.T) {
	t.Helper()
	p.launch(t)
	p.waitReady(t)
}

// launch starts the process and returns at once.
func (p *proc) launch(t *testing.T) {
	t.Helper()
	require.False(t, p.running(), "%s already running", p.name)
	p.starts++
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	fmt.Fprintf(f, "=== e2e: start %d at %s\n", p.starts, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = procEnv()
	cmd.Stdout, cmd.Stderr = f, f
	// Should the test binary die without its cleanups, the process goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	require.NoError(t, f.Close()) // the child has its own descriptor
	require.NoError(t, err, "start %s", p.name)
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	go func() {
		p.waitErr = cmd.Wait()
		close(exited)
	}()
}

// waitReady polls p.ready until it succeeds, failing if the process exits first.
func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(guard)
	var err error
	for {
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready (%v); log:\n%s", p.name, p.waitErr, p.logTail(4<<10))
		default:
		}
		if p.ready == nil {
			return
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err = p.ready(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v: %v; log:\n%s", p.name, guard, err, p.logTail(4<<10))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	p.wait(t)
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	p.wait(t)
	require.NoError(t, p.waitErr, "%s should exit 0 on SIGTERM", p.name)
}

func (p *proc) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(guard):
		t.Fatalf("%s did not exit within %v", p.name, guard)
	}
}

// checkLog fails the test if the process reported a data race or panicked.
func (p *proc) checkLog(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if errors.Is(err, os.ErrNotExist) {
		return // never started
	}
	if err != nil {
		t.Errorf("read %s log: %v", p.name, err)
		return
	}
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if i := bytes.Index(b, []byte(bad)); i >= 0 {
			t.Errorf("%s log contains %q:\n%s", p.name, bad, b[i:min(len(b), i+4<<10)])
		}
	}
}

func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b[max(0, len(b)-n):])
}

// cmdResult is what one command printed and how it exited.
type cmdResult struct {
	Stdout, Stderr string
	Code           int
}

// runCmd runs a one-shot command (a CLI call) and returns its output.
func runCmd(t *testing.T, bin string, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	cmd := execCommand(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cmdResult{Stdout: stdout.String(), Stderr: stderr.String()}
	if exitErr, ok := errors.AsType[*exec.ExitError](err); ok {
		res.Code = exitErr.ExitCode()
	} else {
		require.NoError(t, err, "run %s %v", bin, args)
	}
	return res
}

// mustCmd runs a command and requires it to succeed.
func mustCmd(t *testing.T, bin string, args ...string) string {
	t.Helper()
	res := runCmd(t, bin, args...)
	require.Equal(t, 0, res.Code, "%s %v exited %d; stderr: %s", bin, args, res.Code, res.Stderr)
	return res.Stdout
}

// execCommand prepares a command with the environment of the processes under test.
func execCommand(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = procEnv()
	return cmd
}

package testproc

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// DaemonOptions describe a service under test.
type DaemonOptions struct {
	Name string   // in messages, such as "ph-agent"
	Path string   // the program
	Args []string // its arguments, the same for every start
	Env  []string // its environment; nil means Env()
	// Log receives the standard output and error of every start, appended, each start
	// headed by a line "=== start N at TIME".
	Log string
	// Ready answers nil once the service is ready (it answers on its API, its port accepts
	// connections). nil means ready once started.
	Ready func(ctx context.Context) error
	// Guard bounds every wait: for readiness, for an exit. Zero means 30 seconds.
	Guard time.Duration
}

// Daemon is a service under test that a test starts, kills and starts again as often as
// it likes. Its methods are for the test's goroutine only.
type Daemon struct {
	o      DaemonOptions
	starts int
	p      *Logged // the latest start
}

// NewDaemon prepares a service; it does not start it. When the test ends the service is
// killed if it still runs, the test fails if the log holds a race report or a panic, and
// a failed test shows the end of the log.
func NewDaemon(t testing.TB, o DaemonOptions) *Daemon {
	t.Helper()
	o.Guard = cmp.Or(o.Guard, 30*time.Second)
	if o.Env == nil {
		o.Env = Env()
	}
	d := &Daemon{o: o}
	t.Cleanup(func() {
		if d.Running() {
			d.Kill(t)
		}
		d.CheckLog(t)
		if t.Failed() {
			t.Logf("%s log (last 8 KiB):\n%s", o.Name, d.LogTail(8<<10))
		}
	})
	return d
}

// Running reports whether the service has been started and has not exited since.
func (d *Daemon) Running() bool {
	if d.p == nil {
		return false
	}
	exited, _ := d.p.Exited()
	return !exited
}

// Starts is how many times the service has been started.
func (d *Daemon) Starts() int { return d.starts }

// Start starts the service and waits until it is ready.
func (d *Daemon) Start(t testing.TB) {
	t.Helper()
	d.Launch(t)
	d.WaitReady(t)
}

// Launch starts the service and returns at once.
func (d *Daemon) Launch(t testing.TB) {
	t.Helper()
	if d.Running() {
		t.Fatalf("%s already running", d.o.Name)
	}
	d.starts++
	f, err := os.OpenFile(d.o.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("open %s log: %v", d.o.Name, err)
	}
	_, err = fmt.Fprintf(f, "=== start %d at %s\n", d.starts, time.Now().UTC().Format(time.RFC3339Nano))
	if err = errors.Join(err, f.Close()); err != nil {
		t.Fatalf("write %s log: %v", d.o.Name, err)
	}
	if d.p, err = StartLogged(d.o.Path, d.o.Log, d.o.Env, d.o.Args...); err != nil {
		t.Fatal(err)
	}
}

// WaitReady polls Ready until it answers nil, failing t if the service exits first or is
// not ready within the guard.
func (d *Daemon) WaitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(d.o.Guard)
	for {
		if exited, err := d.p.Exited(); exited {
			t.Fatalf("%s exited before it was ready (%v); log:\n%s", d.o.Name, err, d.LogTail(4<<10))
		}
		if d.o.Ready == nil {
			return
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := d.o.Ready(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v: %v; log:\n%s", d.o.Name, d.o.Guard, err, d.LogTail(4<<10))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits until the service is gone.
func (d *Daemon) Kill(t testing.TB) {
	t.Helper()
	d.p.Kill()
}

// Signal sends sig to the running service (SIGHUP to reload, say) without waiting for
// anything; it fails t if the service is not running.
func (d *Daemon) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if !d.Running() {
		t.Fatalf("%s is not running: cannot send %v", d.o.Name, sig)
	}
	if err := d.p.Signal(sig); err != nil {
		t.Fatalf("send %v to %s: %v", sig, d.o.Name, err)
	}
}

// Stop sends SIGTERM and requires a clean exit (status 0) within the guard.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if err := d.p.Stop(syscall.SIGTERM, d.o.Guard); err != nil {
		t.Fatalf("%s should exit 0 on SIGTERM: %v", d.o.Name, err)
	}
}

// CheckLog fails t if the log holds a race report ("WARNING: DATA RACE"), a panic or a
// fatal runtime error, quoting it. A service never started has no log, which is fine.
func (d *Daemon) CheckLog(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile(d.o.Log)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Errorf("read %s log: %v", d.o.Name, err)
		return
	}
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if i := bytes.Index(b, []byte(bad)); i >= 0 {
			t.Errorf("%s log contains %q:\n%s", d.o.Name, bad, b[i:min(len(b), i+4<<10)])
		}
	}
}

// LogTail returns the last n bytes of the log, or why there are none.
func (d *Daemon) LogTail(n int) string {
	b, err := os.ReadFile(d.o.Log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b[max(0, len(b)-n):])
}

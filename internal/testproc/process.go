package testproc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// cleanupGrace is how long the cleanup of Start waits for a process to exit on SIGINT
// before it kills it.
const cleanupGrace = 5 * time.Second

// Process is a program under test started by Start: a simulator or a tool that says on
// standard output when it is serving. Its methods are safe for concurrent use; Line and
// the test helpers must be called from the test's goroutine.
type Process struct {
	name string
	cmd  *exec.Cmd

	mu    sync.Mutex
	lines []string      // standard output, line by line, kept until read
	eof   bool          // standard output has ended
	more  chan struct{} // signalled (without blocking) after each line and at the end
	ended bool          // Stop or Kill ended the process

	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // valid after exited is closed
}

// Start runs the program at path with args and returns at once. Its standard error goes
// to the test log; its standard output is read line by line for Line. Whatever still runs
// when the test ends is sent SIGINT and, if it has not exited 5 seconds later, SIGKILL; how
// it exits then is only logged (call Stop to check it).
func Start(t testing.TB, path string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = Env()
	cmd.Stderr = logWriter{t}
	DieWithParent(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	p := &Process{name: filepath.Base(path), cmd: cmd, more: make(chan struct{}, 1), exited: make(chan struct{})}
	go p.read(stdout)
	t.Cleanup(func() {
		if err := p.Stop(os.Interrupt, cleanupGrace); err != nil {
			t.Logf("%s at the end of the test: %v", p.name, err)
		}
	})
	return p
}

// read collects standard output until it ends, then reaps the process. It owns the only
// goroutine of a Process; it ends when the process has exited.
func (p *Process) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		p.mu.Unlock()
		p.signal()
	}
	// A line too long for the scanner ends the reading, not the process: keep draining
	// so that the process never blocks on a full pipe.
	io.Copy(io.Discard, stdout) //nolint:errcheck // the pipe closing is the expected end
	p.mu.Lock()
	p.eof = true
	p.mu.Unlock()
	p.signal()
	p.waitErr = p.cmd.Wait()
	close(p.exited)
}

func (p *Process) signal() {
	select {
	case p.more <- struct{}{}:
	default:
	}
}

// Line returns the next line the process printed, waiting up to timeout for it. It fails
// t if the process ends its output first or prints nothing in time.
func (p *Process) Line(t testing.TB, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		if len(p.lines) > 0 {
			l := p.lines[0]
			p.lines = p.lines[1:]
			p.mu.Unlock()
			return l
		}
		eof := p.eof
		p.mu.Unlock()
		if eof {
			<-p.exited
			t.Fatalf("%s ended before printing the line awaited (%v)", p.name, p.waitErr)
		}
		select {
		case <-p.more:
		case <-deadline:
			t.Fatalf("%s printed no line within %v", p.name, timeout)
		}
	}
}

// Signal sends sig to the process (SIGSTOP to freeze it, SIGCONT to resume it).
func (p *Process) Signal(sig os.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// Stop sends sig and waits up to grace for the process to exit, then kills it. It returns
// nil when the process exited with status 0, the exit error when it exited otherwise, and
// an error saying it was killed when it did not exit within grace. A process that ended
// by itself before Stop reports how it ended. Stop and Kill are idempotent: once one of
// them has ended the process, Stop returns nil.
func (p *Process) Stop(sig os.Signal, grace time.Duration) error {
	if p.markEnded() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", p.name, err)
	}
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(grace):
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	<-p.exited
	return fmt.Errorf("%s did not exit within %v of %v: killed", p.name, grace, sig)
}

// Kill ends the process with SIGKILL, as a power cut would, and waits until it is gone.
func (p *Process) Kill() error {
	if p.markEnded() {
		return nil
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	<-p.exited
	return nil
}

// markEnded records that Stop or Kill ends the process, and reports whether one already
// did.
func (p *Process) markEnded() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	was := p.ended
	p.ended = true
	return was
}

// logWriter sends a process's output to the test log, line by line.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// Package harness starts, queries and stops the programs a benchmark measures: the station
// agent (bin/ph-agent run, queried through `ph-agent status --json` and `queue --json` like
// a technician would), the cloud (bin/ph-cloud, migrated and given stations through its
// CLI, watched through /health), a throwaway PostgreSQL, Mosquitto as a reference broker,
// and the MQTT load generator (bin/ph-sim mqtt), whose JSON report it reads; Publish sends
// bulk MQTT messages of its own making.
//
// Every started program is a *Proc owned by the caller, who must call Stop (idempotent) on
// every path; on Linux the programs are also killed if the benchmark process dies, so no
// agent outlives a crashed run. Each program writes its output to a log file in the
// directory it was given, for the post-mortem of a failed run.
package harness

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StopGrace is how long Stop waits after SIGTERM before it kills the process.
const StopGrace = 15 * time.Second

// Proc is a started program. Its methods are safe for concurrent use.
type Proc struct {
	name string
	cmd  *exec.Cmd
	log  string

	done     chan struct{} // closed when the process has exited and err is set
	err      error
	stopOnce sync.Once
	killed   bool
}

// start runs name with args, its stdout and stderr going to logPath. The goroutine that
// waits for the process ends when the process does; Stop ends the process.
func start(name, logPath string, args ...string) (*Proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log for %s: %w", name, err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("start %s: %w", name, err), logf.Close())
	}
	p := &Proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.err = errors.Join(err, logf.Close())
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Log is the path of the file holding the program's output.
func (p *Proc) Log() string { return p.log }

// Done is closed once the process has exited, for whatever reason.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and how (nil: status 0).
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to StopGrace for the process to exit, then kills it. It
// returns how the process ended: nil for exit status 0 after SIGTERM (a graceful
// shutdown), an error for anything else, including a process that had already died.
// Calling it again returns the same result.
func (p *Proc) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.kill()
			return
		}
		t := time.NewTimer(StopGrace)
		defer t.Stop()
		select {
		case <-p.done:
		case <-t.C:
			p.kill()
		}
	})
	<-p.done
	if p.killed {
		return fmt.Errorf("%s (pid %d) did not stop within %s of SIGTERM and was killed", p.name, p.PID(), StopGrace)
	}
	if p.err != nil {
		return fmt.Errorf("%s (pid %d): %w", p.name, p.PID(), p.err)
	}
	return nil
}

func (p *Proc) kill() {
	p.killed = true
	// An error means it is already gone; Wait reports how.
	_ = p.cmd.Process.Kill()
	<-p.done
}

// LogTail returns the last n lines of the program's output, for an error message.
func (p *Proc) LogTail(n int) string { return tail(p.log, n) }

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort returns a TCP address on 127.0.0.1 that was free a moment ago.
func FreePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	return addr, nil
}

// lastLine returns the last non-empty line of b.
func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, "\r\n ")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return bytes.TrimSpace(b)
}

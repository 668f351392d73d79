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
	"time"
)

// Logged is a program started by StartLogged, its output going to a log file: a service
// under test (Daemon), or a program the benchmark driver measures, which runs outside
// any test. Its methods are safe for concurrent use.
type Logged struct {
	name string
	cmd  *exec.Cmd
	log  string

	done chan struct{} // closed when the process has exited and err is set
	err  error

	stopOnce sync.Once
	stopErr  error
}

// StartLogged runs the program at path with args, its standard output and error appended
// to logPath, and returns at once. env nil means this process's environment. On Linux
// the program is killed should this process die without stopping it. A goroutine waits
// for the program and ends when it exits; Stop or Kill ends it.
func StartLogged(path, logPath string, env []string, args ...string) (*Logged, error) {
	return startLogged(path, logPath, env, nil, args)
}

// StartAnnounced is StartLogged for a program that announces itself on standard output
// (a simulator printing the endpoints it serves): every line of its standard output goes
// to the log and, while lines has room, to lines. The program's standard output is read
// to its end whatever lines holds, so the program never blocks on it.
func StartAnnounced(path, logPath string, env []string, lines chan<- string, args ...string) (*Logged, error) {
	return startLogged(path, logPath, env, lines, args)
}

func startLogged(path, logPath string, env []string, lines chan<- string, args []string) (*Logged, error) {
	name := filepath.Base(path)
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open the log of %s: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stderr = f
	var stdout io.Reader
	if lines == nil {
		cmd.Stdout = f
	} else {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			return nil, errors.Join(fmt.Errorf("start %s: %w", name, err), f.Close())
		}
	}
	DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("start %s: %w", name, err), f.Close())
	}
	p := &Logged{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	if stdout == nil {
		err = f.Close() // the child has its own descriptor
	}
	go func() {
		if stdout != nil {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				// The log is for the post-mortem: a write error loses only it.
				fmt.Fprintln(f, sc.Text()) //nolint:errcheck
				select {
				case lines <- sc.Text():
				default:
				}
			}
			io.Copy(f, stdout) //nolint:errcheck // a line too long for the scanner: keep draining
		}
		werr := cmd.Wait()
		if stdout != nil {
			werr = errors.Join(werr, f.Close())
		}
		p.err = werr
		close(p.done)
	}()
	if err != nil {
		p.Kill()
		return nil, fmt.Errorf("start %s: close its log: %w", name, err)
	}
	return p, nil
}

// PID is the process id.
func (p *Logged) PID() int { return p.cmd.Process.Pid }

// Log is the path of the file holding the program's output.
func (p *Logged) Log() string { return p.log }

// Done is closed once the process has exited, for whatever reason.
func (p *Logged) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and how (nil: status 0).
func (p *Logged) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends sig, waits up to grace for the process to exit, then kills it. It returns how
// the process ended: nil for exit status 0 (a graceful shutdown), an error for anything
// else, including a process that had already ended by itself. Calling it again returns
// the same.
func (p *Logged) Stop(sig os.Signal, grace time.Duration) error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
		default:
			if err := p.cmd.Process.Signal(sig); err == nil {
				t := time.NewTimer(grace)
				defer t.Stop()
				select {
				case <-p.done:
				case <-t.C:
				}
			}
			select {
			case <-p.done:
			default:
				p.Kill()
				p.stopErr = fmt.Errorf("%s (pid %d) did not stop within %s of %v and was killed", p.name, p.PID(), grace, sig)
				return
			}
		}
		if p.err != nil {
			p.stopErr = fmt.Errorf("%s (pid %d): %w", p.name, p.PID(), p.err)
		}
	})
	return p.stopErr
}

// Signal sends sig to the process (SIGHUP, say) and returns at once; an error means the
// process is gone.
func (p *Logged) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill ends the process with SIGKILL, as a power cut would, and waits until it is gone.
func (p *Logged) Kill() {
	// Kill fails only for a process that is already gone, and Wait reports how it ended.
	p.cmd.Process.Kill() //nolint:errcheck
	<-p.done
}

// LogTail returns the last n lines of the program's output, for an error message.
func (p *Logged) LogTail(n int) string { return Tail(p.log, n) }

// Tail returns the last n lines of the file at path, or why there are none.
func Tail(path string, n int) string {
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

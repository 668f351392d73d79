// Package sdnotify tells systemd how the agent is doing, over the notification socket of a
// Type=notify service (the sd_notify(3) protocol, spoken directly: one datagram of
// newline-separated KEY=VALUE assignments to the unix socket named by $NOTIFY_SOCKET).
//
// Run sends READY=1 once the service takes input, WATCHDOG=1 at half the watchdog interval
// while it runs (WatchdogSec= in the unit, passed as $WATCHDOG_USEC), and STOPPING=1 when
// shutdown begins, so that systemd starts dependent units only when the broker listens,
// restarts an agent that has hung, and tells a slow shutdown from a hung one.
//
// Outside systemd (no $NOTIFY_SOCKET: a shell, a container, a test) everything here does
// nothing. Every datagram goes on a socket of its own, as libsystemd does, so a restarted
// systemd (daemon-reexec recreates the socket) keeps hearing from us.
package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// The environment variables systemd sets for a Type=notify service.
const (
	EnvSocket      = "NOTIFY_SOCKET"
	EnvWatchdogUS  = "WATCHDOG_USEC"
	EnvWatchdogPID = "WATCHDOG_PID"
)

// The states Run sends.
const (
	Ready    = "READY=1"
	Watchdog = "WATCHDOG=1"
	Stopping = "STOPPING=1"
)

// sendTimeout bounds one datagram: a socket whose queue is full (systemd stalled) must not
// stall the caller.
const sendTimeout = time.Second

// ErrEnv marks a notification environment that cannot be used.
var ErrEnv = errors.New("bad systemd notification environment")

// Notifier sends states to systemd. A nil *Notifier (no $NOTIFY_SOCKET) sends nothing.
// It is safe for concurrent use.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration
}

// FromEnv reads the notification socket and the watchdog interval from getenv. pid is this
// process's id: a watchdog meant for another process (WATCHDOG_PID) is ignored. It returns
// nil and no error when $NOTIFY_SOCKET is unset.
func FromEnv(getenv func(string) string, pid int) (*Notifier, error) {
	path := getenv(EnvSocket)
	if path == "" {
		return nil, nil
	}
	// systemd passes a filesystem path or, with a leading '@', a name in the abstract
	// namespace (which the net package maps to the leading NUL byte). Newer systemd can also
	// name a vsock address: a unit the agent never runs under.
	if path[0] != '/' && path[0] != '@' {
		return nil, fmt.Errorf("%w: %s=%q is neither an absolute path nor an abstract socket (@name)",
			ErrEnv, EnvSocket, path)
	}
	n := &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
	us := getenv(EnvWatchdogUS)
	if us == "" {
		return n, nil
	}
	if p := getenv(EnvWatchdogPID); p != "" {
		wpid, err := strconv.Atoi(p)
		if err != nil || wpid <= 0 {
			return nil, fmt.Errorf("%w: %s=%q is not a process id", ErrEnv, EnvWatchdogPID, p)
		}
		if wpid != pid {
			return n, nil
		}
	}
	v, err := strconv.ParseUint(us, 10, 63)
	if err != nil || v == 0 || v > uint64(time.Duration(1<<62)/time.Microsecond) {
		return nil, fmt.Errorf("%w: %s=%q is not a positive number of microseconds", ErrEnv, EnvWatchdogUS, us)
	}
	n.watchdog = time.Duration(v) * time.Microsecond
	return n, nil
}

// Watchdog returns the interval within which systemd expects WATCHDOG=1, or 0 when no
// watchdog is armed for this process.
func (n *Notifier) Watchdog() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Send sends the given assignments (such as Ready, or "STATUS=...") in one datagram.
func (n *Notifier) Send(states ...string) error {
	if n == nil || len(states) == 0 {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notify systemd at %s: %w", n.addr.Name, err)
	}
	err = c.SetWriteDeadline(time.Now().Add(sendTimeout))
	if err == nil {
		_, err = c.Write([]byte(strings.Join(states, "\n")))
	}
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("notify systemd at %s: %w", n.addr.Name, err)
	}
	return nil
}

// Run notifies systemd for the life of the service: READY=1 once ready is closed, then
// WATCHDOG=1 at half the watchdog interval, and STOPPING=1 when ctx ends, before it returns.
// If ctx ends before ready is closed, it sends STOPPING=1 only. Without $NOTIFY_SOCKET it
// waits for ctx and sends nothing.
//
// A notification that cannot be sent is logged (once until one gets through again), not
// returned: the agent serves its station whether or not systemd hears about it. An
// unusable environment is returned as an error at once, so that a unit whose notifications
// could never arrive fails visibly instead of timing out.
func Run(ctx context.Context, ready <-chan struct{}, log *slog.Logger) error {
	n, err := FromEnv(os.Getenv, os.Getpid())
	if err != nil {
		return err
	}
	return n.Run(ctx, ready, log)
}

// Run is the package-level Run with this Notifier.
func (n *Notifier) Run(ctx context.Context, ready <-chan struct{}, log *slog.Logger) error {
	if n == nil {
		<-ctx.Done()
		return nil
	}
	failing := false
	send := func(state string) {
		err := n.Send(state)
		switch {
		case err != nil && !failing:
			log.Warn("systemd notification failed", "state", state, "err", err)
		case err == nil && failing:
			log.Info("systemd notifications get through again", "state", state)
		}
		failing = err != nil
	}
	defer send(Stopping)

	select {
	case <-ctx.Done():
		return nil
	case <-ready:
	}
	send(Ready)
	if n.watchdog == 0 {
		<-ctx.Done()
		return nil
	}
	log.Debug("systemd watchdog armed", "interval", n.watchdog)
	tick := time.NewTicker(n.watchdog / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			send(Watchdog)
		}
	}
}

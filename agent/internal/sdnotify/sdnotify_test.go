package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds every wait for a datagram; it only turns a hang into a failure.
const guard = 10 * time.Second

// listen binds a real datagram socket where systemd's would be and returns its name for
// NOTIFY_SOCKET. A path lives in a short temporary directory: sun_path holds 108 bytes and
// t.TempDir embeds the test's name.
func listen(t *testing.T, abstract bool) (*net.UnixConn, string) {
	t.Helper()
	var name string
	if abstract {
		name = fmt.Sprintf("@ph-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	} else {
		dir, err := os.MkdirTemp("", "sd")
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, os.RemoveAll(dir)) })
		name = filepath.Join(dir, "notify")
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := c.Close(); !errors.Is(err, net.ErrClosed) {
			assert.NoError(t, err)
		}
	})
	return c, name
}

// next reads one datagram, failing the test after the guard.
func next(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(guard)))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	require.NoError(t, err, "expected a notification within %v", guard)
	return string(buf[:n])
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestRunLifecycle(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run("abstract="+strconv.FormatBool(abstract), func(t *testing.T) {
			conn, name := listen(t, abstract)
			n, err := FromEnv(env(map[string]string{
				EnvSocket: name, EnvWatchdogUS: "60000", EnvWatchdogPID: strconv.Itoa(os.Getpid()),
			}), os.Getpid())
			require.NoError(t, err)
			require.Equal(t, 60*time.Millisecond, n.Watchdog())

			ctx, cancel := context.WithCancel(t.Context())
			ready := make(chan struct{})
			done := make(chan error, 1)
			go func() { done <- n.Run(ctx, ready, slog.New(slog.DiscardHandler)) }()

			// Several watchdog periods pass before the service is ready: still the first
			// thing systemd hears is READY=1.
			time.Sleep(200 * time.Millisecond)
			close(ready)
			assert.Equal(t, Ready, next(t, conn), "first notification")
			for i := range 3 {
				assert.Equal(t, Watchdog, next(t, conn), "watchdog ping %d", i+1)
			}
			cancel()
			require.NoError(t, <-done)
			// Pings may have been queued between the last read and the cancel; STOPPING=1
			// comes after them and is the last datagram.
			var last string
			for last = next(t, conn); last == Watchdog; last = next(t, conn) {
			}
			assert.Equal(t, Stopping, last)
		})
	}
}

func TestRunStoppedBeforeReady(t *testing.T) {
	conn, name := listen(t, false)
	n, err := FromEnv(env(map[string]string{EnvSocket: name, EnvWatchdogUS: "1000000"}), os.Getpid())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, n.Run(ctx, make(chan struct{}), slog.New(slog.DiscardHandler)))
	assert.Equal(t, Stopping, next(t, conn), "a service that never got ready only says it stops")
}

func TestRunWithoutWatchdog(t *testing.T) {
	conn, name := listen(t, false)
	n, err := FromEnv(env(map[string]string{EnvSocket: name}), os.Getpid())
	require.NoError(t, err)
	assert.Zero(t, n.Watchdog())
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan struct{})
	close(ready)
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, ready, slog.New(slog.DiscardHandler)) }()
	assert.Equal(t, Ready, next(t, conn))
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, Stopping, next(t, conn), "no watchdog pings without WATCHDOG_USEC")
}

func TestRunOutsideSystemd(t *testing.T) {
	t.Setenv(EnvSocket, "")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.NoError(t, Run(ctx, make(chan struct{}), slog.New(slog.DiscardHandler)))
	var n *Notifier
	assert.NoError(t, n.Send(Ready), "a nil Notifier sends nothing")
	assert.Zero(t, n.Watchdog())
}

func TestRunRefusesBadEnvironment(t *testing.T) {
	t.Setenv(EnvSocket, "relative/notify")
	err := Run(t.Context(), make(chan struct{}), slog.New(slog.DiscardHandler))
	require.ErrorIs(t, err, ErrEnv)
	assert.Contains(t, err.Error(), "NOTIFY_SOCKET")
}

// A socket nobody listens on any more (systemd gone) is logged, not fatal: the agent keeps
// serving and keeps trying.
func TestRunSurvivesLostSocket(t *testing.T) {
	conn, name := listen(t, false)
	n, err := FromEnv(env(map[string]string{EnvSocket: name, EnvWatchdogUS: "20000"}), os.Getpid())
	require.NoError(t, err)
	ready := make(chan struct{})
	close(ready)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, ready, slog.New(slog.DiscardHandler)) }()
	assert.Equal(t, Ready, next(t, conn))
	require.NoError(t, conn.Close())
	require.NoError(t, os.Remove(name))
	err = n.Send(Watchdog)
	require.Error(t, err, "nobody listens at %s", name)
	assert.Contains(t, err.Error(), name, "the error names the socket")

	conn2, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	require.NoError(t, err)
	defer conn2.Close()
	assert.Equal(t, Watchdog, next(t, conn2), "pings resume on a recreated socket")
	cancel()
	require.NoError(t, <-done)
}

func TestFromEnv(t *testing.T) {
	const pid = 4242
	tests := []struct {
		name     string
		vars     map[string]string
		nilNote  bool
		watchdog time.Duration
		err      string
	}{
		{name: "no socket", vars: nil, nilNote: true},
		{name: "path", vars: map[string]string{EnvSocket: "/run/systemd/notify"}},
		{name: "abstract", vars: map[string]string{EnvSocket: "@/org/freedesktop/systemd1/notify/123"}},
		{name: "watchdog", vars: map[string]string{EnvSocket: "/run/n", EnvWatchdogUS: "30000000"},
			watchdog: 30 * time.Second},
		{name: "watchdog for this pid", vars: map[string]string{EnvSocket: "/run/n", EnvWatchdogUS: "5000000",
			EnvWatchdogPID: "4242"}, watchdog: 5 * time.Second},
		{name: "watchdog for another pid", vars: map[string]string{EnvSocket: "/run/n", EnvWatchdogUS: "5000000",
			EnvWatchdogPID: "1"}},
		{name: "relative path", vars: map[string]string{EnvSocket: "notify"}, err: "NOTIFY_SOCKET"},
		{name: "vsock", vars: map[string]string{EnvSocket: "vsock:2:1234"}, err: "NOTIFY_SOCKET"},
		{name: "watchdog not a number", vars: map[string]string{EnvSocket: "/run/n", EnvWatchdogUS: "30s"},
			err: "WATCHDOG_USEC"},
		{name: "watchdog zero", vars: map[string]string{EnvSocket: "/run/n", EnvWatchdogUS: "0"},
			err: "WATCHDOG_USEC"},
		{name: "watchdog negative", vars: map[string]string{EnvSocket: "/run/n", EnvWatchdogUS: "-5"},
			err: "WATCHDOG_USEC"},
		{name: "watchdog overflows", vars: map[string]string{EnvSocket: "/run/n", EnvWatchdogUS: "9223372036854775807"},
			err: "WATCHDOG_USEC"},
		{name: "watchdog pid not a number", vars: map[string]string{EnvSocket: "/run/n", EnvWatchdogUS: "1",
			EnvWatchdogPID: "me"}, err: "WATCHDOG_PID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := FromEnv(env(tt.vars), pid)
			if tt.err != "" {
				require.ErrorIs(t, err, ErrEnv)
				assert.Contains(t, err.Error(), tt.err, "the error names the variable")
				return
			}
			require.NoError(t, err)
			if tt.nilNote {
				assert.Nil(t, n)
				return
			}
			require.NotNil(t, n)
			assert.Equal(t, tt.watchdog, n.Watchdog())
		})
	}
}

// FuzzFromEnv: whatever the environment holds, FromEnv returns a usable Notifier, nil, or an
// ErrEnv, and never a negative interval.
func FuzzFromEnv(f *testing.F) {
	f.Add("/run/systemd/notify", "30000000", "1")
	f.Add("@abstract", "", "")
	f.Add("x", "-1", "0")
	f.Fuzz(func(t *testing.T, sock, us, pid string) {
		n, err := FromEnv(env(map[string]string{EnvSocket: sock, EnvWatchdogUS: us, EnvWatchdogPID: pid}), 1)
		if err != nil {
			if !errors.Is(err, ErrEnv) {
				t.Fatalf("error %v is not ErrEnv", err)
			}
			return
		}
		if n.Watchdog() < 0 {
			t.Fatalf("negative watchdog %v", n.Watchdog())
		}
	})
}

package ezo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/purehealth/purehealth/shared/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds every wait; it turns a hang into a failure and asserts nothing about speed.
const guard = 10 * time.Second

// running is an Emulator serving in the background.
type running struct {
	em    *Emulator
	paths chan string
	trace *syncBuffer
	link  string
}

// start serves a device on a pseudo-terminal until the test ends.
func start(t *testing.T, cfg Config, opts Options) *running {
	t.Helper()
	dev := newDevice(t, cfg)
	r := &running{paths: make(chan string, 8), trace: &syncBuffer{}}
	if opts.Link == "" {
		opts.Link = filepath.Join(t.TempDir(), "probe")
	}
	r.link = opts.Link
	if opts.Speed == 0 {
		opts.Speed = 100
	}
	opts.Trace = r.trace
	opts.OnAttach = func(path string) error { r.paths <- path; return nil }
	em, err := New(dev, opts)
	require.NoError(t, err)
	r.em = em
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- em.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err, "a stop is not an error")
		case <-time.After(guard):
			t.Error("emulator did not stop")
		}
		_, err := os.Lstat(r.link)
		assert.True(t, errors.Is(err, os.ErrNotExist), "link removed on stop: %v", err)
	})
	return r
}

func (r *running) nextPath(t *testing.T) string {
	t.Helper()
	select {
	case p := <-r.paths:
		return p
	case <-time.After(guard):
		t.Fatal("no device path reported")
		return ""
	}
}

// client is the other end of the terminal, as a driver would open it.
type client struct {
	f   *os.File
	buf []byte
}

func dialDevice(t *testing.T, path string) *client {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return &client{f: f}
}

// ask sends cmd and reads until the reply ends with end.
func (c *client) ask(t *testing.T, cmd, end string) string {
	t.Helper()
	_, err := c.f.Write([]byte(cmd + "\r"))
	require.NoError(t, err)
	return c.until(t, end)
}

func (c *client) until(t *testing.T, end string) string {
	t.Helper()
	require.NoError(t, c.f.SetReadDeadline(time.Now().Add(guard)))
	b := make([]byte, 4096)
	for !strings.HasSuffix(string(c.buf), end) {
		n, err := c.f.Read(b)
		require.NoError(t, err, "read so far: %q", c.buf)
		c.buf = append(c.buf, b[:n]...)
	}
	out := string(c.buf)
	c.buf = nil
	return out
}

func TestEmulatorOnAPseudoTerminal(t *testing.T) {
	r := start(t, Config{Param: telemetry.PH}, Options{})
	path := r.nextPath(t)
	target, err := os.Readlink(r.link)
	require.NoError(t, err)
	assert.Equal(t, path, target, "the link points at the device")
	assert.True(t, strings.HasPrefix(path, "/dev/pts/"), path)

	c := dialDevice(t, r.link)
	assert.Equal(t, "?i,pH,2.16\r*OK\r", c.ask(t, "i", "*OK\r"))
	ph := c.ask(t, "R", "*OK\r")
	assert.Regexp(t, `^\d+\.\d{3}\r\*OK\r$`, ph)
	// Terminals end lines with CR LF; the LF is ignored.
	assert.Equal(t, "?Cal,0\r*OK\r", c.ask(t, "Cal,?\n", "*OK\r"))
	assert.Equal(t, "*ER\r", c.ask(t, "Bogus", "*ER\r"))

	assert.Contains(t, r.trace.String(), `> "i\r"`+"\n"+`< "?i,pH,2.16\r*OK\r"`, "the transcript")
}

func TestEmulatorContinuousMode(t *testing.T) {
	r := start(t, Config{Param: telemetry.DO, Continuous: true}, Options{Speed: 50})
	c := dialDevice(t, r.nextPath(t))
	// Unsolicited readings arrive, one per (scaled) second, without *OK.
	got := c.until(t, "\r")
	assert.Regexp(t, `^\d+\.\d{2}\r$`, got)
	got = c.ask(t, "C,0", "*OK\r")
	assert.True(t, strings.HasSuffix(got, "*OK\r"), got)
	time.Sleep(100 * time.Millisecond) // five periods at this speed
	assert.Equal(t, "?C,0\r*OK\r", c.ask(t, "C,?", "*OK\r"), "no readings once it is off")
}

func TestEmulatorUnplug(t *testing.T) {
	r := start(t, Config{Param: telemetry.PH}, Options{UnplugFor: 50 * time.Millisecond})
	first := r.nextPath(t)
	c := dialDevice(t, r.link)
	c.ask(t, "i", "*OK\r")

	r.em.Unplug()
	// The open terminal hangs up.
	require.NoError(t, c.f.SetReadDeadline(time.Now().Add(guard)))
	_, err := c.f.Read(make([]byte, 16))
	require.Error(t, err, "a hang-up ends reads")
	assert.False(t, errors.Is(err, os.ErrDeadlineExceeded), "hang-up, not a timeout: %v", err)

	second := r.nextPath(t)
	target, err := os.Readlink(r.link)
	require.NoError(t, err)
	assert.Equal(t, second, target, "the link follows the probe to its new terminal")
	c2 := dialDevice(t, r.link)
	// The circuit boots on the new terminal (*RE) before the client flushes; it answers.
	assert.Contains(t, c2.ask(t, "i", "?i,pH,2.16\r*OK\r"), "?i,pH,2.16")
	t.Logf("replugged from %s to %s", first, second)
}

func TestEmulatorUnplugFault(t *testing.T) {
	r := start(t, Config{Param: telemetry.PH, Faults: []Fault{FaultUnplug}},
		Options{UnplugEvery: 50 * time.Millisecond, UnplugFor: 20 * time.Millisecond})
	for range 3 {
		r.nextPath(t)
	}
}

func TestEmulatorFloodDoesNotStall(t *testing.T) {
	r := start(t, Config{Param: telemetry.PH, Faults: []Fault{FaultFlood}, FaultEvery: 1}, Options{})
	c := dialDevice(t, r.nextPath(t))
	got := c.ask(t, "R", "*OK\r")
	assert.Len(t, got, FloodBytes+len("\r7.620\r*OK\r"), "a megabyte, then the reading")
	assert.Contains(t, r.trace.String(), "+1048320\n", "the transcript cuts long frames")
}

func TestEmulatorWithoutReaderDropsReplies(t *testing.T) {
	// Nobody opens the terminal: continuous readings pile up and are lost like bytes on a
	// wire nobody listens to, and the emulator still stops promptly.
	start(t, Config{Param: telemetry.PH, Continuous: true}, Options{Speed: 1000})
	time.Sleep(200 * time.Millisecond)
}

func TestNewRejects(t *testing.T) {
	dev := newDevice(t, Config{Param: telemetry.PH, Faults: []Fault{FaultUnplug}})
	_, err := New(dev, Options{})
	assert.ErrorContains(t, err, "needs a link")
	_, err = New(newDevice(t, Config{Param: telemetry.PH}), Options{Speed: -1})
	assert.ErrorContains(t, err, "speed")
	_, err = New(nil, Options{})
	assert.Error(t, err)
}

func TestLinkRefusesToReplaceAFile(t *testing.T) {
	link := filepath.Join(t.TempDir(), "probe")
	require.NoError(t, os.WriteFile(link, []byte("precious"), 0o600))
	em, err := New(newDevice(t, Config{Param: telemetry.PH}), Options{Link: link})
	require.NoError(t, err)
	err = em.Run(t.Context())
	assert.ErrorContains(t, err, "is not a symlink")
	b, err := os.ReadFile(link)
	require.NoError(t, err)
	assert.Equal(t, "precious", string(b))
}

func TestWriteFrame(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteFrame(&b, '<', []byte("7.62\r\x00\xff")))
	require.NoError(t, WriteFrame(&b, '>', bytes.Repeat([]byte("x"), 300)))
	assert.Equal(t, `< "7.62\r\x00\xff"`+"\n"+`> "`+strings.Repeat("x", 256)+`" +44`+"\n", b.String())
	assert.Error(t, WriteFrame(failingWriter{}, '<', []byte("x")))
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

package cli

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// `ph-sim serial` prints the device path as its first line, keeps --link pointing at it,
// answers EZO commands there, and removes the link when interrupted.
func TestSerialPrintsPathFirstAndKeepsLink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "ph-probe")
	trace := filepath.Join(dir, "trace.txt")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Run(ctx, []string{"serial", "--param", "pH", "--link", link, "--speed", "50",
			"--time", "2025-03-01T06:30:00Z", "--trace", trace, "--log-level", "warn"}, w, io.Discard)
		w.Close()
		done <- err
	}()

	lines := bufio.NewScanner(stdout)
	require.True(t, lines.Scan(), "a first line on stdout")
	path := lines.Text()
	assert.Regexp(t, `^/dev/pts/\d+$`, path)
	target, err := os.Readlink(link)
	require.NoError(t, err)
	assert.Equal(t, path, target)

	f, err := os.OpenFile(link, os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Write([]byte("i\r"))
	require.NoError(t, err)
	require.NoError(t, f.SetReadDeadline(time.Now().Add(10*time.Second)))
	var got []byte
	buf := make([]byte, 64)
	for !strings.HasSuffix(string(got), "*OK\r") {
		n, err := f.Read(buf)
		require.NoError(t, err)
		got = append(got, buf[:n]...)
	}
	assert.Equal(t, "?i,pH,2.16\r*OK\r", string(got))

	cancel()
	go io.Copy(io.Discard, stdout) // nothing more is expected; do not block the command
	select {
	case err := <-done:
		require.NoError(t, err, "an interrupt is a clean stop")
	case <-time.After(10 * time.Second):
		t.Fatal("ph-sim serial did not stop")
	}
	_, err = os.Lstat(link)
	assert.True(t, errors.Is(err, os.ErrNotExist), "link removed: %v", err)
	tr, err := os.ReadFile(trace)
	require.NoError(t, err)
	assert.Equal(t, `> "i\r"`+"\n"+`< "?i,pH,2.16\r*OK\r"`+"\n", string(tr))
}

func TestSerialBadCommandLines(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no param", []string{"serial"}, []string{"--param is required"}},
		{"not an EZO parameter", []string{"serial", "--param", "turbidity"}, []string{
			"invalid param turbidity: no EZO circuit measures it (want ph, do, conductivity, tds, temp)"}},
		{"unknown parameter", []string{"serial", "--param", "salinity"}, []string{`unknown parameter: "salinity"`}},
		{"everything at once", []string{"serial", "--param", "ph", "--fault", "noise,drift,fire,unplug",
			"--time", "yesterday", "--speed", "0", "--fault-every", "0"}, []string{
			"one probe fault at a time", `unknown fault "fire"`, `invalid time "yesterday"`,
			"invalid speed 0", "invalid fault-every 0", "fault unplug needs --link"}},
		{"stray argument", []string{"serial", "--param", "ph", "extra"}, []string{`unknown command "extra" for "ph-sim serial"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runCLI(t.Context(), tt.args...)
			require.Error(t, err)
			assert.Equal(t, ExitUsage, ExitCode(err), "%v", err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "\n", "one line")
			assert.Empty(t, out, "nothing on stdout")
		})
	}
}

func TestSerialHelp(t *testing.T) {
	out, _, err := runCLI(t.Context(), "serial", "--help")
	require.NoError(t, err)
	for _, flag := range []string{"--param", "--link", "--station", "--seed", "--time", "--speed",
		"--fault", "--fault-every", "--unplug-every", "--unplug-for", "--ok", "--continuous", "--trace"} {
		assert.Contains(t, out, flag)
	}
}

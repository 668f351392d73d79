package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/firmware-sim/internal/brokertest"
)

// buildBinary compiles ph-sim into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "ph-sim")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// The real process: SIGINT and SIGTERM stop an endless run cleanly, exit 0, with the report
// as the last line; a refused connection exits 3 with one line on stderr; bad flags exit 2.
func TestProcess(t *testing.T) {
	bin := buildBinary(t)

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			b := brokertest.Start(t, brokertest.Options{})
			cmd := exec.CommandContext(t.Context(), bin, "mqtt", "--broker", b.Addr,
				"--station", "MH-KOLHAPUR-001", "--sensors", "2", "--rate", "50",
				"--report", "json", "--log-level", "error")
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			wait, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			require.NoError(t, b.WaitFor(wait, 10))
			require.NoError(t, cmd.Process.Signal(sig))

			var last string
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				last = sc.Text()
			}
			require.NoError(t, cmd.Wait(), "a signal is a clean stop")
			var rep struct{ Sent, Acked, Failed int64 }
			require.NoError(t, json.Unmarshal([]byte(last), &rep), "last line: %q", last)
			assert.GreaterOrEqual(t, rep.Acked, int64(10))
			assert.Equal(t, rep.Sent, rep.Acked+rep.Failed)
		})
	}

	t.Run("exit codes", func(t *testing.T) {
		tests := []struct {
			args   []string
			code   int
			stderr string
		}{
			{[]string{"mqtt", "--broker", "127.0.0.1:1", "--station", "S"}, 3,
				"ph-sim: connect 127.0.0.1:1: connection refused\n"},
			{[]string{"mqtt", "--station", "S"}, 2,
				"ph-sim: broker is required (host:port) (see 'ph-sim mqtt --help')\n"},
			{[]string{"--help"}, 0, ""},
		}
		for _, tt := range tests {
			t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
				cmd := exec.CommandContext(t.Context(), bin, tt.args...)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				err := cmd.Run()
				if tt.code == 0 {
					require.NoError(t, err)
				} else {
					var exitErr *exec.ExitError
					require.ErrorAs(t, err, &exitErr)
					assert.Equal(t, tt.code, exitErr.ExitCode())
				}
				assert.Equal(t, tt.stderr, stderr.String())
			})
		}
	})
}

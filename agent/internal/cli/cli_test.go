package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/internal/exitcode"
)

// run drives the real command tree like main does.
func run(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRoot(&env{now: func() time.Time { return now }})
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(stdin))
	err = root.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

func TestWQICalcJSONContract(t *testing.T) {
	out, _, err := run(t, "", "wqi", "calc", "--ph", "7.5", "--do", "7", "--bod", "2", "--fc", "100", "--json")
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	for _, key := range []string{"wqi", "class", "category", "sub_indices", "do_saturation_pct", "partial", "missing"} {
		assert.Contains(t, got, key)
	}
	assert.Equal(t, "A", got["class"])
	assert.Equal(t, false, got["partial"])
	assert.Equal(t, []any{}, got["missing"])
	subs := got["sub_indices"].(map[string]any)
	assert.Len(t, subs, 4)
}

func TestWQICalcOptions(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want func(t *testing.T, r map[string]any)
	}{
		{"partial", []string{"--ph", "7.5", "--do", "7"}, func(t *testing.T, r map[string]any) {
			assert.Equal(t, true, r["partial"])
			assert.Equal(t, []any{"fc", "bod"}, r["missing"])
		}},
		{"mpcb method", []string{"--do", "6.5", "--do-method", "mpcb"}, func(t *testing.T, r map[string]any) {
			assert.Equal(t, 100.0, r["do_saturation_pct"])
			assert.Equal(t, "mpcb", r["do_method"])
		}},
		{"elevation lowers saturation", []string{"--do", "7.7093", "--temp", "25", "--elevation", "560"}, func(t *testing.T, r map[string]any) {
			assert.InDelta(t, 100.0, r["do_saturation_pct"], 0.15)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := run(t, "", append([]string{"wqi", "calc", "--json"}, tt.args...)...)
			require.NoError(t, err)
			var r map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &r))
			tt.want(t, r)
		})
	}
}

func TestWQICalcHuman(t *testing.T) {
	out, _, err := run(t, "", "wqi", "calc", "--ph", "7.5", "--do", "7", "--bod", "2", "--fc", "100")
	require.NoError(t, err)
	assert.Contains(t, out, "class A")
	assert.Contains(t, out, "% sat")
}

func TestWQICalcErrors(t *testing.T) {
	_, _, err := run(t, "", "wqi", "calc")
	assert.Error(t, err, "no parameters at all")
	_, _, err = run(t, "", "wqi", "calc", "--ph", "7", "--do-method", "guess")
	assert.ErrorContains(t, err, "guess")
	_, _, err = run(t, "", "wqi", "calc", "--ph", "7", "--elevation", "500", "--pressure", "0.9")
	assert.ErrorContains(t, err, "not both")
}

func TestQueryWithoutAgent(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("data_dir: "+dir+"\n"), 0o644))
	var stderr bytes.Buffer
	err := Run(t.Context(), []string{"status", "--config", cfg}, &bytes.Buffer{}, &stderr)
	require.Error(t, err)
	assert.Equal(t, exitcode.Runtime, ExitCode(err))
	line := stderr.String()
	assert.Equal(t, 1, strings.Count(line, "\n"), "one line: %q", line)
	assert.True(t, strings.HasPrefix(line, "ph-agent: agent not running: no socket at "+filepath.Join(dir, "admin.sock")), line)
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte(`station: {id: MH-PUNE-001, class: B}
data_dir: `+dir+`
mqtt: {allow_anonymous: true}
`), 0o644))
	out, _, err := run(t, "", "config", "check", good)
	require.NoError(t, err)
	assert.Contains(t, out, "ok (station MH-PUNE-001, class B")

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("station: {id: X, class: Z}\ndata_dir: x\nmqtt: {allow_anonymous: true}\nbogus: 1\n"), 0o644))
	_, _, err = run(t, "", "config", "check", bad)
	assert.ErrorContains(t, err, "line 4")

	var stderr bytes.Buffer
	err = Run(t.Context(), []string{"run", "--config", bad}, &bytes.Buffer{}, &stderr)
	assert.Equal(t, exitcode.Startup, ExitCode(err), "a bad config is a start-up failure")
}

func TestPasswd(t *testing.T) {
	out, _, err := run(t, "s3cret\n", "passwd")
	require.NoError(t, err)
	hash := strings.TrimSpace(out)
	assert.NoError(t, bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret")))
	_, _, err = run(t, "", "passwd")
	assert.ErrorContains(t, err, "empty password")
}

func TestVersion(t *testing.T) {
	out, _, err := run(t, "", "version")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "ph-agent "))
	flag, _, err := run(t, "", "--version")
	require.NoError(t, err)
	assert.Equal(t, out, flag, "--version prints what `version` prints")
}

// TestRunStartupFailures: what stops the daemon before it serves is a start-up failure
// (exit 2): an MQTT port in use, another agent on the admin socket. Each leaves the
// buffer closed for the next try. A mistyped flag exits 1, as other usage errors do.
func TestRunStartupFailures(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { busy.Close() })
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	write := func(listen string) string {
		path := filepath.Join(dir, "agent.yaml")
		require.NoError(t, os.WriteFile(path, []byte(`station: {id: MH-PUNE-001, class: B}
data_dir: `+filepath.Join(dir, "data")+`
admin_socket: `+sock+`
mqtt: {listen: "`+listen+`", allow_anonymous: true}
clock: {sync_check: none}
`), 0o600))
		return path
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // a daemon that did start stops
	defer cancel()

	var stderr bytes.Buffer
	err = Run(ctx, []string{"run", "--config", write(busy.Addr().String())}, &bytes.Buffer{}, &stderr)
	require.Error(t, err)
	assert.Equal(t, exitcode.Startup, ExitCode(err), "%v", err)
	assert.Contains(t, err.Error(), "address already in use")
	_, err = os.Stat(sock)
	assert.ErrorIs(t, err, os.ErrNotExist, "the admin socket bound before the port was released")

	other := admin.NewServer(sock, nil, nil)
	require.NoError(t, other.Listen())
	t.Cleanup(func() { require.NoError(t, other.Close()) })
	err = Run(ctx, []string{"run", "--config", write("127.0.0.1:0")}, &bytes.Buffer{}, &stderr)
	require.Error(t, err)
	assert.Equal(t, exitcode.Startup, ExitCode(err), "%v", err)
	assert.Contains(t, err.Error(), "is another ph-agent running?", "and not the buffer's lock: the first try closed it")

	err = Run(ctx, []string{"run", "--no-such-flag"}, &bytes.Buffer{}, &stderr)
	require.Error(t, err)
	assert.Equal(t, exitcode.Runtime, ExitCode(err))
}

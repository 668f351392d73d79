package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/cli"
	"github.com/purehealth/purehealth/cloud/internal/config"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/internal/exitcode"
	"github.com/purehealth/purehealth/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

type result struct {
	stdout, stderr string
	err            error
	code           int
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	err := cli.Run(t.Context(), args, &out, &errb)
	return result{stdout: out.String(), stderr: errb.String(), err: err, code: cli.ExitCode(err)}
}

func writeConfig(t *testing.T, dbURL string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cloud.yaml")
	require.NoError(t, os.WriteFile(path, []byte("database_url: \""+dbURL+"\"\nlog: {level: warn}\n"), 0o600))
	return path
}

var tokenLine = regexp.MustCompile(`^pht_[A-Za-z0-9_-]{43}\n$`)

func TestMigrateThenStations(t *testing.T) {
	url := pgtest.New(t)
	cfg := writeConfig(t, url)

	r := run(t, "serve", "--config", cfg)
	require.Error(t, r.err, "serve must refuse an unmigrated database")
	assert.Equal(t, exitcode.Startup, r.code)
	assert.Contains(t, r.stderr, "database is at schema 0, this ph-cloud needs")
	assert.Contains(t, r.stderr, "run ph-cloud migrate")

	r = run(t, "station", "list", "--config", cfg)
	assert.Equal(t, exitcode.Startup, r.code, "station commands need a migrated database too")

	r = run(t, "migrate", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	// The test server does not preload TimescaleDB, whether or not it is installed.
	assert.Regexp(t, `^storage: plain PostgreSQL \(native partitions\); the timescaledb extension is (not installed on the server|installed but not in the server's shared_preload_libraries)\n`+
		`schema: 0 -> `+strconv.Itoa(store.SchemaVersion())+`\n$`, r.stdout, "auto says why it chose plain PostgreSQL")
	r = run(t, "migrate", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	assert.Equal(t, "storage: plain PostgreSQL (native partitions)\nschema: "+strconv.Itoa(store.SchemaVersion())+", up to date\n", r.stdout)

	r = run(t, "station", "add", "MH-PUNE-001", "--name", "Mula-Mutha at Sangam", "--class", "B",
		"--lat", "18.5286", "--lon", "73.8567", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	assert.Regexp(t, tokenLine, r.stdout, "station add prints the token alone")
	token := strings.TrimSpace(r.stdout)

	st, err := store.Open(t.Context(), url, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	id, err := st.Authenticate(context.Background(), token)
	require.NoError(t, err)
	assert.Equal(t, "MH-PUNE-001", id)

	r = run(t, "station", "add", "MH-PUNE-001", "--name", "again", "--config", cfg)
	assert.ErrorIs(t, r.err, store.ErrExists)
	assert.Empty(t, r.stdout, "no token for a failed add")

	r = run(t, "station", "add", "MH-NASHIK-002", "--name", `Godavari "Ramkund" \ 'ghat'`, "--config", cfg)
	require.NoError(t, r.err, r.stderr)

	r = run(t, "station", "list", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 3)
	assert.Regexp(t, `^ID\s+NAME\s+CLASS`, lines[0])
	assert.Regexp(t, `^MH-NASHIK-002\s+Godavari "Ramkund" \\ 'ghat'\s+B\s+-\s+-\s+never`, lines[1])
	assert.Regexp(t, `^MH-PUNE-001\s+Mula-Mutha at Sangam\s+B\s+18\.5286\s+73\.8567\s+never`, lines[2])
	assert.NotContains(t, r.stdout, token)

	r = run(t, "station", "list", "--json", "--config", cfg)
	require.NoError(t, r.err)
	var list struct {
		Stations []store.Station `json:"stations"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list))
	require.Len(t, list.Stations, 2)
	assert.Equal(t, `Godavari "Ramkund" \ 'ghat'`, list.Stations[0].Name)

	r = run(t, "station", "rotate-token", "MH-PUNE-001", "--config", cfg)
	require.NoError(t, r.err, r.stderr)
	assert.Regexp(t, tokenLine, r.stdout)
	fresh := strings.TrimSpace(r.stdout)
	_, err = st.Authenticate(t.Context(), token)
	assert.ErrorIs(t, err, store.ErrNotFound, "the old token stops working at once")
	id, err = st.Authenticate(t.Context(), fresh)
	require.NoError(t, err)
	assert.Equal(t, "MH-PUNE-001", id)

	r = run(t, "station", "rotate-token", "MH-NONE-000", "--config", cfg)
	assert.ErrorIs(t, r.err, store.ErrNotFound)
	assert.Empty(t, r.stdout)
}

func TestUsageErrors(t *testing.T) {
	cfg := writeConfig(t, "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"lat without lon", []string{"station", "add", "X-1", "--name", "x", "--lat", "1", "--config", cfg}, "both --lat and --lon"},
		{"no name", []string{"station", "add", "X-1", "--config", cfg}, `"name" not set`},
		{"unknown flag", []string{"serve", "--colour", "blue"}, "unknown flag"},
		{"missing config", []string{"serve", "--config", filepath.Join(t.TempDir(), "none.yaml")}, "no such file"},
		{"database out of reach", []string{"serve", "--config", cfg}, "database"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.args...)
			require.Error(t, r.err)
			assert.Contains(t, r.stderr, tc.want)
			assert.True(t, strings.HasPrefix(r.stderr, "ph-cloud: "), "one clear line: %q", r.stderr)
			if tc.name != "no name" {
				assert.Equal(t, exitcode.Startup, r.code)
			}
			assert.Empty(t, r.stdout)
		})
	}
}

func TestConfigCheck(t *testing.T) {
	good := writeConfig(t, "postgres://u@h/db")
	r := run(t, "config", "check", good)
	require.NoError(t, r.err)
	assert.Equal(t, good+": ok\n", r.stdout)

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("database_url: postgres://u@h/db\nlisten: nowhere\nretention: {wqi: 1h}\n"), 0o600))
	r = run(t, "config", "check", "--config", bad)
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "listen:")
	assert.Contains(t, r.stderr, "retention.wqi")
}

func TestViewerToken(t *testing.T) {
	r := run(t, "viewer-token")
	require.NoError(t, r.err)
	assert.Regexp(t, `^phv_[A-Za-z0-9_-]{43}\n$`, r.stdout, "the token alone on stdout")
	token := strings.TrimSpace(r.stdout)
	assert.Contains(t, r.stderr, "viewer_tokens_sha256: ["+config.HashViewerToken(token)+"]")
	assert.NotContains(t, r.stderr, token, "the token is not repeated where logs may keep it")
	again := run(t, "viewer-token")
	assert.NotEqual(t, r.stdout, again.stdout)
}

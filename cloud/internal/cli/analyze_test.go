package cli_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/exitcode"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/analyze")

// golden compares got with testdata/analyze/name, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "analyze", name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "no golden file: go test -run Analyze -update")
	assert.Equal(t, string(want), got, "%s differs (go test -run Analyze -update rewrites it)", path)
}

func TestAnalyzeGolden(t *testing.T) {
	tests := []struct {
		file, param string
		model       string
		anomalies   []string // kinds flagged, in order of first appearance
	}{
		{"daily-cycle.csv", "do", "ets_ana", nil},
		{"gappy-irregular.csv", "DO", "ets_ana", []string{"deviation", "spike"}},
		{"short.csv", "ph", "none", nil},
	}
	for _, tt := range tests {
		name := strings.TrimSuffix(tt.file, ".csv")
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", "analyze", tt.file)
			r := run(t, "analyze", "--param", tt.param, path, "--json")
			require.NoError(t, r.err, r.stderr)
			golden(t, name+".json", r.stdout)

			var a map[string]any
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &a))
			keys := make([]string, 0, len(a))
			for k := range a {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			want := []string{"anomalies", "coverage80", "coverage95", "forecast", "mase", "model", "param", "points"}
			if tt.model == "none" {
				want = append(want[:6], "param", "points", "reason")
				assert.Nil(t, a["mase"], "no skill without a forecast")
				assert.Empty(t, a["forecast"])
				assert.Contains(t, a["reason"], "too little history")
			} else {
				require.Len(t, a["forecast"], 24, "24 hourly points")
				first := a["forecast"].([]any)[0].(map[string]any)
				assert.ElementsMatch(t, []string{"time", "value", "lo80", "hi80", "lo95", "hi95"}, mapKeys(first))
				assert.Less(t, a["mase"], 1.0, "beats seasonal naive")
			}
			assert.Equal(t, want, keys)
			assert.Equal(t, tt.model, a["model"])
			var kinds []string
			for _, f := range a["anomalies"].([]any) {
				m := f.(map[string]any)
				assert.ElementsMatch(t, []string{"time", "value", "score", "kind"}, mapKeys(m))
				if k := m["kind"].(string); len(kinds) == 0 || kinds[len(kinds)-1] != k {
					kinds = append(kinds, k)
				}
			}
			assert.Equal(t, tt.anomalies, kinds)

			r = run(t, "analyze", "--param", tt.param, path)
			require.NoError(t, r.err, r.stderr)
			golden(t, name+".txt", r.stdout)
		})
	}
}

func mapKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestAnalyzeErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	require.NoError(t, os.WriteFile(bad, []byte("time,value\n2026-01-01T00:00:00Z,7\n2026-01-01T01:00:00Z,high\n"), 0o600))
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"analyze", filepath.Join("testdata", "analyze", "short.csv")}, "--param is required"},
		{[]string{"analyze", "--param", "salinity", "x.csv"}, `--param: unknown parameter: "salinity"`},
		{[]string{"analyze", "--param", "do", filepath.Join(dir, "absent.csv")}, "no such file or directory"},
		{[]string{"analyze", "--param", "do", bad}, `bad.csv: row 3, column "value": "high" is not a number`},
		{[]string{"analyze", "--param", "do"}, "accepts 1 arg(s), received 0"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			r := run(t, tt.args...)
			require.Error(t, r.err)
			assert.Equal(t, exitcode.Startup, r.code)
			assert.Contains(t, r.stderr, tt.want)
			assert.Empty(t, r.stdout)
		})
	}
}

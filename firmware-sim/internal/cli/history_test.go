package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var riverScenarios = []string{
	filepath.Join("..", "scenario", "testdata", "valid", "river-upstream.yaml"),
	filepath.Join("..", "scenario", "testdata", "valid", "river-downstream.yaml"),
}

func TestHistory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "history")
	out, _, err := runCLI(t.Context(), "history", "--scenario", riverScenarios[0], "--scenario", riverScenarios[1],
		"--from", "2026-01-11T00:00:00Z", "--to", "2026-01-14T00:00:00Z", "--step", "10m", "--out", dir)
	require.NoError(t, err)
	assert.Equal(t, "9 series of 2 stations in "+dir+"\n", out)

	data, err := os.ReadFile(filepath.Join(dir, "truth.json"))
	require.NoError(t, err)
	var idx historyIndex
	require.NoError(t, json.Unmarshal(data, &idx))
	assert.Equal(t, "10m0s", idx.Step)
	require.Len(t, idx.Stations, 2)
	assert.Equal(t, "MH-PUNE-002", idx.Stations[1].Station)
	assert.Equal(t, 9.5, idx.Stations[1].RiverKm)
	var plumes int
	for _, st := range idx.Stations {
		for _, in := range st.Incidents {
			if in.Origin == "plume" {
				plumes++
			}
		}
	}
	assert.Equal(t, 2, plumes, "the plume passes both stations")
	require.Len(t, idx.Series, 9)
	s := idx.Series[0]
	assert.Equal(t, 3*24*6, s.Readings)
	csv, err := os.ReadFile(filepath.Join(dir, s.File))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(csv)), "\n")
	assert.Equal(t, "time,value", lines[0])
	assert.Len(t, lines, s.Readings+1)
	assert.True(t, strings.HasPrefix(lines[1], "2026-01-11T00:00:00Z,"), lines[1])
}

func TestHistoryBadCommandLines(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--from", "yesterday", "--to", "2026-01-02T00:00:00Z"}, `--from "yesterday": want an RFC 3339 time`},
		{[]string{"--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"}, "is not after --from"},
		{[]string{"--from", "2020-01-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z"}, "at most 8784h0m0s"},
		{[]string{"--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z", "--step", "10ms"}, "at most 1000000"},
		{[]string{"--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z"}, "--scenario and --out are required"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, _, err := runCLI(t.Context(), append([]string{"history"}, tt.args...)...)
			require.Error(t, err)
			assert.Equal(t, ExitUsage, ExitCode(err))
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

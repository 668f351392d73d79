package simhistory

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A history as `ph-sim history` writes it (firmware-sim/internal/cli tests the writer).
const truth = `{
  "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "step": "1h0m0s",
  "stations": [{"station": "MH-PUNE-001", "river": "Mula-Mutha", "river_km": 0.5,
    "incidents": [{"origin": "plume", "source_km": 0, "start": "2026-01-01T02:16:40Z",
      "end": "2026-01-01T06:16:40Z", "effect_end": "2026-01-01T10:46:40Z", "severity": 0.8,
      "params": ["do", "ph"]}],
    "faults": [{"probe": "ph-1", "params": ["ph"], "fault": "drift", "from": "2026-01-01T12:00:00Z"}]}],
  "series": [
    {"station": "MH-PUNE-001", "probe": "sonde-1", "param": "do", "file": "MH-PUNE-001/sonde-1.do.csv", "readings": 2},
    {"station": "MH-PUNE-001", "probe": "ph-1", "param": "ph", "file": "MH-PUNE-001/ph-1.ph.csv", "readings": 1}]
}`

func write(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "MH-PUNE-001"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "truth.json"), []byte(truth), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "MH-PUNE-001", "sonde-1.do.csv"),
		[]byte("time,value\n2026-01-01T00:00:00Z,3.3\n2026-01-01T01:00:00Z,3.1\n"), 0o644))
	return dir
}

func TestOpen(t *testing.T) {
	dir := write(t)
	idx, err := Open(dir)
	require.NoError(t, err)
	require.Len(t, idx.Stations, 1)
	assert.Equal(t, 0.5, idx.Stations[0].RiverKm)
	assert.Equal(t, time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), idx.Stations[0].Faults[0].From)
	pts, err := idx.Points(idx.Series[0])
	require.NoError(t, err)
	assert.Len(t, pts, 2)
	assert.Equal(t, 3.1, pts[1].Value)
	assert.False(t, idx.Faulty(idx.Series[0]))
	assert.True(t, idx.Faulty(idx.Series[1]))
	_, err = idx.Points(idx.Series[1])
	assert.ErrorIs(t, err, os.ErrNotExist)

	all, err := OpenAll(dir + string(os.PathListSeparator) + dir)
	require.NoError(t, err)
	assert.Len(t, all, 2)
	_, err = OpenAll("")
	assert.EqualError(t, err, `no history directory in ""`)
	_, err = Open(t.TempDir())
	assert.ErrorIs(t, err, os.ErrNotExist)
}

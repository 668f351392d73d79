package readingcsv_test

import (
	"bytes"
	"encoding/csv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/readingcsv"
	"github.com/purehealth/purehealth/cloud/internal/store"
)

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	w, err := readingcsv.NewWriter(&buf, "MH-PUNE-001")
	require.NoError(t, err)
	at := time.Date(2025, 11, 13, 12, 0, 0, 500_000_000, time.FixedZone("IST", 19800))
	cur := false
	tenth := 0.1
	scene := time.Date(2025, 3, 13, 5, 30, 0, 0, time.UTC)
	require.NoError(t, w.Write(store.Reading{Seq: 7, Time: at, Param: "ph", Value: 7.25, Unit: "pH", Quality: "suspect",
		Source: "sensor", Sensor: "ph-1, left bank", Flags: []string{"spike", "future"}}))
	require.NoError(t, w.Write(store.Reading{Time: at, Param: "turbidity", Value: tenth + 0.2, Unit: "NTU", Quality: "good",
		Source: "satellite", Sensor: "sentinel-2-l2a", Provenance: store.Provenance{Origin: "copernicus",
			Collection: "sentinel-2-l2a", SceneDate: &scene, Scenes: 2, Pixels: 412, Revision: 1, Current: &cur}}))
	require.NoError(t, w.Flush())

	rows, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 3)
	assert.Equal(t, []string{"time", "station_id", "param", "value", "unit", "quality", "source", "sensor"}, rows[0][:8],
		"the contract's columns come first")
	assert.Equal(t, []string{"2025-11-13T06:30:00.5Z", "MH-PUNE-001", "ph", "7.25", "pH", "suspect", "sensor",
		"ph-1, left bank", "spike;future", "", "", "", "", "", "", "", "", "", "", "", ""}, rows[1])
	assert.Equal(t, "0.30000000000000004", rows[2][3], "values read back exactly")
	assert.Equal(t, []string{"copernicus", "", "", "sentinel-2-l2a", "2025-03-13T05:30:00Z", "2", "412", "", "", "", "1", "false"},
		rows[2][9:])
}

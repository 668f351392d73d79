package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/firmware-sim/internal/brokertest"
	"github.com/purehealth/purehealth/firmware-sim/internal/scenario"
)

// `ph-sim station --backfill` publishes the history `ph-sim history` would write, in time
// order, acknowledged, with the live sensors' names, before the probes go live.
func TestStationCommandBackfills(t *testing.T) {
	broker := brokertest.Start(t, brokertest.Options{})
	path := writeScenario(t, fmt.Sprintf(`station: MH-PUNE-001
seed: 3
plumes:
  - {source_km: 0, start: 1h, duration: 2h, severity: 0.8, speed: 0.5}
probes:
  - {name: sonde-1, kind: mqtt, broker: %q, params: [do, ph], sensors: 2, rate: 0.01}
`, broker.Addr))
	lines := startServing(t, 2, "station", "--scenario", path, "--backfill", "3h", "--backfill-step", "10m", "--log-level", "error")
	assert.Regexp(t, `^backfilled 36 readings of 1 mqtt probes from \S+ to \S+ in \S+$`, lines[0])
	assert.Equal(t, "sonde-1 mqtt do,ph mqtt://"+broker.Addr, lines[1], "then live")
	from, err := time.Parse(time.RFC3339, strings.Fields(lines[0])[8])
	require.NoError(t, err)
	to, err := time.Parse(time.RFC3339, strings.Fields(lines[0])[10])
	require.NoError(t, err)
	assert.Equal(t, 3*time.Hour, to.Sub(from).Round(time.Second))

	type item struct {
		Param     string  `json:"param"`
		Value     float64 `json:"value"`
		Unit      string  `json:"unit"`
		Timestamp string  `json:"timestamp"`
		Sensor    string  `json:"sensor"`
	}
	var got []item
	for _, m := range broker.Messages() {
		if m.ClientID != "MH-PUNE-001-replay" {
			continue
		}
		assert.Equal(t, "purehealth/MH-PUNE-001/readings", m.Topic)
		assert.Equal(t, byte(1), m.QoS)
		var batch []item
		require.NoError(t, json.Unmarshal(m.Payload, &batch))
		got = append(got, batch...)
	}
	require.Len(t, got, 36)
	last := ""
	for _, r := range got {
		assert.GreaterOrEqual(t, r.Timestamp, last, "in time order")
		last = r.Timestamp
		assert.Contains(t, []string{"do-0", "ph-1"}, r.Sensor, "sensor j measures parameter j, named as live")
	}

	// The values are the history's: the same river, plume and probes.
	sc, err := scenario.Load(path)
	require.NoError(t, err)
	want := map[string]float64{}
	require.NoError(t, sc.Record(from, from, to, 10*time.Minute, func(r scenario.Reading) error {
		want[string(r.Param)+"@"+r.Time.UTC().Format("2006-01-02T15:04:05.000Z")] = r.Value
		return nil
	}))
	for _, r := range got {
		v, ok := want[r.Param+"@"+r.Timestamp]
		require.True(t, ok, "%s at %s is in the history", r.Param, r.Timestamp)
		assert.Equal(t, v, r.Value)
	}
}

func TestStationBackfillFlags(t *testing.T) {
	path := writeScenario(t, "station: MH-PUNE-001\nprobes:\n  - {name: s, kind: mqtt, broker: \"127.0.0.1:1\", params: [do]}\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--backfill", "-1h"}, "--backfill -1h0m0s must be 0..8784h0m0s"},
		{[]string{"--backfill", "1h", "--backfill-step", "0s"}, "--backfill-step 0s must be positive"},
		{[]string{"--backfill", "8000h", "--backfill-step", "1ms"}, "readings per series; at most 1000000"},
	} {
		_, _, err := runCLI(t.Context(), append([]string{"station", "--scenario", path}, tc.args...)...)
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
		assert.Equal(t, ExitUsage, ExitCode(err))
	}
}

package scenario

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/shared/telemetry"
)

var (
	riverFrom  = time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	riverTo    = riverFrom.Add(5 * 24 * time.Hour)
	plumeStart = time.Date(2026, 1, 12, 2, 0, 0, 0, time.UTC)
)

func plumeAt(t *testing.T, tr Truth) Incident {
	t.Helper()
	for _, in := range tr.Incidents {
		if in.Origin == "plume" {
			return in
		}
	}
	t.Fatalf("no plume in the truth of %s: %+v", tr.Station, tr.Incidents)
	return Incident{}
}

func TestRiverTruth(t *testing.T) {
	up, err := Load("testdata/valid/river-upstream.yaml")
	require.NoError(t, err)
	down, err := Load("testdata/valid/river-downstream.yaml")
	require.NoError(t, err)
	tu, err := up.Truth(riverFrom, riverFrom, riverTo)
	require.NoError(t, err)
	td, err := down.Truth(riverFrom, riverFrom, riverTo)
	require.NoError(t, err)

	assert.Equal(t, "Mula-Mutha", tu.River)
	assert.Equal(t, 0.5, tu.RiverKm)
	assert.Equal(t, 9.5, td.RiverKm)
	// The plume enters at km 0 at 02:00 and moves at 0.5 m/s: 1000 s to Sangam, 19000 s
	// to Mundhwa, nine kilometres (5 h) apart.
	pu, pd := plumeAt(t, tu), plumeAt(t, td)
	assert.Equal(t, plumeStart.Add(1000*time.Second), pu.Start)
	assert.Equal(t, plumeStart.Add(19000*time.Second), pd.Start)
	assert.Equal(t, 4*time.Hour, pd.End.Sub(pd.Start))
	assert.Less(t, pd.Severity, pu.Severity, "weaker downstream")
	assert.Equal(t, device.EventParams(), pd.Params)

	// Sangam's own discharges reach Mundhwa too; Mundhwa's never go up.
	var fromUpstream int
	for _, in := range td.Incidents {
		if in.Origin == "MH-PUNE-001" {
			fromUpstream++
		}
	}
	var own int
	for _, in := range tu.Incidents {
		assert.NotEqual(t, "MH-PUNE-002", in.Origin)
		if in.Origin == "own" {
			own++
		}
	}
	assert.Equal(t, own, fromUpstream, "each of Sangam's own discharges in the period arrives downstream")

	require.Len(t, tu.Faults, 1)
	assert.Equal(t, FaultTruth{Probe: "ph-2", Params: []telemetry.Param{telemetry.PH}, Fault: device.FaultDrift,
		From: time.Date(2026, 1, 13, 6, 0, 0, 0, time.UTC)}, tu.Faults[0])
	assert.Empty(t, td.Faults)
}

func TestRecord(t *testing.T) {
	up, err := Load("testdata/valid/river-upstream.yaml")
	require.NoError(t, err)
	down, err := Load("testdata/valid/river-downstream.yaml")
	require.NoError(t, err)
	byKey := func(sc *Scenario) map[string][]Reading {
		out := map[string][]Reading{}
		require.NoError(t, sc.Record(riverFrom, riverFrom, riverTo, 5*time.Minute, func(r Reading) error {
			k := r.Probe + "/" + string(r.Param)
			if n := len(out[k]); n > 0 {
				require.True(t, out[k][n-1].Time.Before(r.Time), "readings in time order")
			}
			out[k] = append(out[k], r)
			return nil
		}))
		return out
	}
	ru, rd := byKey(up), byKey(down)
	assert.Len(t, ru, 5, "four parameters of the sonde and the drifting pH probe")
	assert.Len(t, ru["sonde-1/do"], 5*24*12, "every 5 minutes, nothing dropped")

	// The drifting probe agrees with the sonde's pH (within calibration) before its fault
	// and walks off after: 0.1 pH an hour.
	at := func(rs []Reading, tm time.Time) float64 {
		for _, r := range rs {
			if r.Time.Equal(tm) {
				return r.Value
			}
		}
		t.Fatalf("no reading at %s", tm)
		return 0
	}
	onset := time.Date(2026, 1, 13, 6, 0, 0, 0, time.UTC)
	before, after := onset.Add(-time.Hour), onset.Add(10*time.Hour)
	assert.InDelta(t, at(ru["sonde-1/ph"], before), at(ru["ph-2/ph"], before), 0.15)
	assert.InDelta(t, at(ru["sonde-1/ph"], after)+1, at(ru["ph-2/ph"], after), 0.15)

	// DO at Mundhwa while the plume passes is well below the same scenario without it.
	var plain Scenario
	require.NoError(t, yaml.Unmarshal([]byte("station: MH-PUNE-002\nseed: 7\nprobes:\n  - {name: sonde-1, kind: mqtt, broker: \"127.0.0.1:1883\", params: [do, ph, bod, turbidity], rate: 0.2, batch: true}\n"), &plain))
	rp := byKey(&plain)
	mid := plumeStart.Add(19000*time.Second + 2*time.Hour).Truncate(5 * time.Minute)
	assert.Less(t, at(rd["sonde-1/do"], mid), 0.75*at(rp["sonde-1/do"], mid))
	early := plumeStart.Add(-time.Hour)
	assert.Equal(t, at(rp["sonde-1/do"], early), at(rd["sonde-1/do"], early))
}

func TestStationResolvesRelativeTimes(t *testing.T) {
	sc, err := Parse([]byte(`station: MH-PUNE-002
plumes:
  - {source_km: 0, start: 2h, duration: 1h, severity: 0.5}
probes:
  - {name: a, kind: mqtt, broker: "127.0.0.1:1883", params: [do], faults: [drift], fault_at: 30m}
  - {name: b, kind: http, listen: "127.0.0.1:0", params: [do]}
`))
	require.NoError(t, err)
	start := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	tr, err := sc.Truth(start, start, start.Add(24*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, start.Add(2*time.Hour+time.Duration(9500/device.DefaultPlumeSpeed*float64(time.Second))), plumeAt(t, tr).Start)
	require.Len(t, tr.Faults, 1)
	assert.Equal(t, start.Add(30*time.Minute), tr.Faults[0].From)

	st, err := NewStation(sc, Options{Start: start})
	require.NoError(t, err)
	assert.Len(t, st.units, 2)
}

func TestChannelsAreTheSimulatorsSeries(t *testing.T) {
	sc, err := Parse([]byte(`station: MH-PUNE-001
probes:
  - {name: a, kind: mqtt, broker: "127.0.0.1:1883", params: [do, ph]}
  - {name: b, kind: mqtt, broker: "127.0.0.1:1883", params: [do, ph], sensors: 3}
  - {name: c, kind: mqtt, broker: "127.0.0.1:1883", params: [do, ph], batch: true}
  - {name: d, kind: http, listen: "127.0.0.1:0", params: [do, ph]}
  - {name: e, kind: serial, param: conductivity}
`))
	require.NoError(t, err)
	plans := mustPlans(t, sc)
	want := [][]channel{
		{{param: telemetry.DO, index: 0}}, // one sensor measures the first parameter only
		{{telemetry.DO, 0, "do-0"}, {telemetry.PH, 1, "ph-1"}, {telemetry.DO, 2, "do-2"}},
		{{param: telemetry.DO}, {param: telemetry.PH}},
		{{param: telemetry.DO}, {param: telemetry.PH, index: 1}},
		{{param: telemetry.Conductivity}},
	}
	for i, pl := range plans {
		assert.Equal(t, want[i], channels(pl), pl.probe.Name)
	}
}

package anomalyjob_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/anomaly"
	"github.com/purehealth/purehealth/cloud/internal/anomalyjob"
	"github.com/purehealth/purehealth/cloud/internal/simhistory"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
)

var simDir string

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if simDir != "" {
		os.RemoveAll(simDir)
	}
	os.Exit(code)
}

// history writes, with the real ph-sim, the two weeks up to end of the scenarios in
// testdata: a plume that passes both stations of the Mula-Mutha, and a drifting pH probe
// at the upper one.
func history(t *testing.T, end time.Time) *simhistory.Index {
	t.Helper()
	if simDir == "" {
		dir, err := os.MkdirTemp("", "ph-sim-bin-")
		require.NoError(t, err)
		simDir = dir
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "ph-sim"),
			"github.com/purehealth/purehealth/firmware-sim").CombinedOutput()
		require.NoError(t, err, "go build ph-sim: %s", out)
	}
	out := t.TempDir()
	from := end.Add(-14 * 24 * time.Hour)
	cmd := exec.Command(filepath.Join(simDir, "ph-sim"), "history", "--scenario", "testdata/sangam.yaml",
		"--scenario", "testdata/mundhwa.yaml", "--from", from.Format(time.RFC3339), "--to", end.Format(time.RFC3339),
		"--step", "10m", "--out", out)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "ph-sim history: %s", b)
	idx, err := simhistory.Open(out)
	require.NoError(t, err)
	return idx
}

// load registers the history's stations on their river and stores their readings as
// their agents would have sent them.
func load(t *testing.T, s *store.Store, idx *simhistory.Index) {
	t.Helper()
	for _, tr := range idx.Stations {
		_, err := s.AddStation(t.Context(), store.NewStation{ID: tr.Station, Name: tr.Station,
			River: &store.River{Name: tr.River, Km: tr.RiverKm}})
		require.NoError(t, err)
	}
	seq := map[string]uint64{}
	for _, sr := range idx.Series {
		pts, err := idx.Points(sr)
		require.NoError(t, err)
		info, ok := telemetry.Info(telemetry.Param(sr.Param))
		require.True(t, ok, sr.Param)
		var rs []wire.Reading
		for _, p := range pts {
			seq[sr.Station]++
			rs = append(rs, wire.Reading{Seq: seq[sr.Station], Time: p.Time, Sensor: sr.Probe + "-" + sr.Param,
				Param: sr.Param, Value: p.Value, Unit: info.Unit, Quality: "good", Source: "sensor"})
		}
		for len(rs) > 0 {
			n := min(len(rs), 2000)
			_, err := s.Ingest(t.Context(), sr.Station, storetest.Batch(sr.Station, rs[:n]))
			require.NoError(t, err)
			rs = rs[n:]
		}
	}
}

func cloudAlerts(t *testing.T, s *store.Store) []store.Alert {
	t.Helper()
	list, err := s.Alerts(t.Context(), store.AlertQuery{Limit: 1000})
	require.NoError(t, err)
	var out []store.Alert
	for _, a := range list {
		if a.Origin == store.OriginCloud {
			out = append(out, a)
		}
	}
	return out
}

// TestPlumeAndFaultyProbeToldApart: two weeks of two simulated stations of one river go
// into the database; the round finds the plume as a pollution_event that names both
// stations (over already: on record, resolved) and the drifting pH probe as a
// suspect_sensor (open), with their evidence; rounds after that keep them, and once the
// data is out of the window the open one resolves.
func TestPlumeAndFaultyProbeToldApart(t *testing.T) {
	// A fixed fortnight (the dry season, as the benchmark's), so that the river's daily
	// cycle meets the plume at the same hour on every run; the job's clock follows it.
	end := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	idx := history(t, end)
	s, _ := storetest.Open(t, store.Options{})
	load(t, s, idx)
	_, mark, err := s.EventBounds(t.Context())
	require.NoError(t, err)

	clock := end.Add(10 * time.Minute)
	r := anomalyjob.New(s, anomalyjob.Options{Now: func() time.Time { return clock }})
	rep, err := r.Round(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Rivers)
	assert.Equal(t, 2, rep.Stations)
	assert.Equal(t, 16, rep.Series)
	t.Logf("findings: %v, open %d, transitions %d, took %s", rep.Findings, rep.Open, rep.Changes, rep.Took)

	require.Equal(t, "MH-PUNE-001", idx.Stations[0].Station)
	var plume simhistory.Incident
	for _, in := range idx.Stations[0].Incidents {
		if in.Origin == "plume" {
			plume = in
		}
	}
	require.False(t, plume.Start.IsZero(), "the scenario's plume passed Sangam: %+v", idx.Stations[0].Incidents)
	var event, probe *store.Alert
	alerts := cloudAlerts(t, s)
	for i, a := range alerts {
		var f anomaly.Finding
		require.NoError(t, json.Unmarshal(a.Evidence, &f), "evidence of %s", a.Key)
		switch {
		case a.Rule == store.RulePollutionEvent && f.Start.After(plume.Start.Add(-3*time.Hour)) &&
			f.Start.Before(plume.End):
			event = &alerts[i]
			require.Len(t, f.Path, 2, "it travelled through both stations")
			assert.Equal(t, "MH-PUNE-002", f.Path[1].Station)
			assert.Greater(t, f.Path[1].DelayH, 0.0)
		case a.Rule == store.RuleSuspectSensor && a.Param == "ph":
			probe = &alerts[i]
			assert.Equal(t, anomaly.KindDrift, f.Kind)
			require.NotEmpty(t, f.Evidence)
			peak := f.Evidence[0].Peak
			assert.NotZero(t, peak.Baseline, "values, baselines and scores are in the evidence")
			assert.Greater(t, abs(peak.Score), 3.0)
		}
	}
	require.NotNil(t, event, "the plume as a pollution_event: %+v", keys(alerts))
	assert.Equal(t, "MH-PUNE-001", event.Station, "where it was first seen")
	assert.Equal(t, alert.Critical, event.Severity)
	assert.Contains(t, event.Message, "MH-PUNE-002")
	assert.Contains(t, event.Message, "pollution event travelling downstream")
	assert.Equal(t, alert.Resolved, event.State, "over before anybody saw it: on record")
	require.NotNil(t, probe, "the drifting probe as a suspect_sensor: %+v", keys(alerts))
	assert.Equal(t, "MH-PUNE-001", probe.Station)
	assert.Equal(t, alert.Warning, probe.Severity)
	assert.Equal(t, alert.Active, probe.State)
	for _, a := range alerts {
		if a.Rule == store.RuleSuspectSensor {
			assert.NotEqual(t, "MH-PUNE-002", a.Station, "Mundhwa's probes are healthy: %s", a.Message)
		}
	}

	evs, err := s.Events(t.Context(), store.EventQuery{After: mark, Limit: 1000})
	require.NoError(t, err)
	assert.Len(t, evs, rep.Changes, "every transition is a live alert event")

	// The next round finds the same: nothing changes.
	clock = end.Add(20 * time.Minute)
	rep, err = r.Round(t.Context())
	require.NoError(t, err)
	assert.Zero(t, rep.Changes, "findings that persist keep their alerts")
	assert.Len(t, cloudAlerts(t, s), len(alerts))

	// Weeks later, with no data since: the probe's alert resolves; nothing new opens.
	clock = end.Add(20 * 24 * time.Hour)
	_, err = r.Round(t.Context())
	require.NoError(t, err)
	after := cloudAlerts(t, s)
	assert.Len(t, after, len(alerts))
	for _, a := range after {
		assert.Equal(t, alert.Resolved, a.State, "%s", a.Key)
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func keys(as []store.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s %s %s %s", a.Station, a.Key, a.State, strings.SplitN(a.Message, ":", 2)[0]))
	}
	return out
}

// finding is a detector finding over [start, end).
func finding(v anomaly.Verdict, station string, params []string, start, end time.Time, ongoing bool) anomaly.Finding {
	return anomaly.Finding{Verdict: v, Station: station, Params: params, Start: start, End: end, Ongoing: ongoing,
		Explanation: fmt.Sprintf("%s at %s", v, station)}
}

func known(t *testing.T, f anomaly.Finding, key string, state alert.State) store.Alert {
	t.Helper()
	ev, err := json.Marshal(f)
	require.NoError(t, err)
	var a store.Alert
	a.Station, a.Rule, a.Key, a.State, a.Evidence, a.Severity = f.Station, string(f.Verdict), key, state, ev, alert.Warning
	a.Message = f.Explanation
	return a
}

// TestWant: the alerts a river should have, from findings and what is known.
func TestWant(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	drift := finding(anomaly.SuspectSensor, "A", []string{"ph"}, h(10), h(40), true)
	tests := []struct {
		name     string
		findings []anomaly.Finding
		known    []store.Alert
		want     []string // key, Over
	}{
		{"a new finding opens", []anomaly.Finding{drift}, nil, []string{"suspect_sensor/ph/20260301T10 open"}},
		{"pending and unconfirmed raise nothing", []anomaly.Finding{
			finding(anomaly.Pending, "A", []string{"do"}, h(1), h(2), true),
			finding(anomaly.Unconfirmed, "B", []string{"do"}, h(1), h(2), true)}, nil, nil},
		{"a finding whose start the window cut keeps its alert",
			[]anomaly.Finding{finding(anomaly.SuspectSensor, "A", []string{"ph"}, h(20), h(41), true)},
			[]store.Alert{known(t, drift, "suspect_sensor/ph/old", alert.Active)}, []string{"suspect_sensor/ph/old open"}},
		{"another rule is another alert",
			[]anomaly.Finding{finding(anomaly.LocalEvent, "A", []string{"ph", "do"}, h(20), h(41), true)},
			[]store.Alert{known(t, drift, "suspect_sensor/ph/old", alert.Active)}, []string{"local_event/ph+do/20260301T20 open"}},
		{"an ended finding is over", []anomaly.Finding{finding(anomaly.PollutionEvent, "A", []string{"do", "bod"}, h(3), h(9), false)},
			nil, []string{"pollution_event/do+bod/20260301T03 over"}},
		{"an open alert whose finding turned unconfirmed stays",
			[]anomaly.Finding{finding(anomaly.Unconfirmed, "A", []string{"ph"}, h(12), h(41), true)},
			[]store.Alert{known(t, drift, "suspect_sensor/ph/old", alert.Active)}, []string{"suspect_sensor/ph/old open"}},
		{"an open alert with no finding goes", nil, []store.Alert{known(t, drift, "suspect_sensor/ph/old", alert.Active)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := anomalyjob.Want(tt.findings, tt.known, 3*time.Hour)
			require.NoError(t, err)
			var keys []string
			for _, w := range got {
				state := "open"
				if w.Over {
					state = "over"
				}
				keys = append(keys, w.Key+" "+state)
				assert.NotEmpty(t, w.Message)
			}
			assert.Equal(t, tt.want, keys)
		})
	}
}

func TestRivers(t *testing.T) {
	name := "Mula-Mutha"
	rivers := anomalyjob.Rivers([]store.Station{
		{ID: "DOWN", River: &name, RiverKm: ptr(9.5)}, {ID: "ALONE"}, {ID: "UP", River: &name, RiverKm: ptr(0.5)},
	})
	require.Len(t, rivers, 2)
	assert.Equal(t, "Mula-Mutha", rivers[0].Name)
	assert.Equal(t, []anomaly.Station{{ID: "DOWN", Km: 9.5}, {ID: "UP", Km: 0.5}}, rivers[0].Stations)
	assert.Equal(t, []anomaly.Station{{ID: "ALONE"}}, rivers[1].Stations)
}

func ptr[T any](v T) *T { return &v }

package anomaly

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const day = 24.0

// dip returns a change of size for hours [from, from+hours).
func dip(from, hours, size float64) func(float64) float64 {
	return func(h float64) float64 {
		if h >= from && h < from+hours {
			return size
		}
		return 0
	}
}

type station struct {
	id     string
	params map[string]river
}

func series(sts ...station) []Series {
	var out []Series
	for _, st := range sts {
		for p, r := range st.params {
			out = append(out, Series{Station: st.id, Param: p, Points: r.points()})
		}
	}
	return out
}

var twoStations = River{Name: "Mula-Mutha", Stations: []Station{{ID: "B", Km: 9}, {ID: "A", Km: 0}}}

func clean(seed uint64) map[string]river {
	return map[string]river{"do": {days: 12, seed: seed}, "bod": {days: 12, seed: seed + 100, mean: 8}}
}

func TestPollutionEventTravels(t *testing.T) {
	at := 10*day + 4
	a := station{"A", map[string]river{
		"do":  {days: 12, seed: 1, change: dip(at, 4, -2)},
		"bod": {days: 12, seed: 2, mean: 8, change: dip(at, 4, 6)},
	}}
	b := station{"B", map[string]river{ // six hours later, a little weaker
		"do":  {days: 12, seed: 3, change: dip(at+6, 4, -1.6)},
		"bod": {days: 12, seed: 4, mean: 8, change: dip(at+6, 4, 5)},
	}}
	fs := Analyze(twoStations, series(a, b), Options{})
	require.Len(t, fs, 1, "%+v", verdicts(fs))
	f := fs[0]
	assert.Equal(t, PollutionEvent, f.Verdict)
	assert.Equal(t, "A", f.Station, "first seen upstream")
	assert.ElementsMatch(t, []string{"do", "bod"}, f.Params)
	assert.Equal(t, t0.Add(10*24*time.Hour+4*time.Hour), f.Start)
	require.Len(t, f.Path, 2)
	assert.Equal(t, "B", f.Path[1].Station)
	assert.Equal(t, 9.0, f.Path[1].Km)
	assert.Equal(t, 6.0, f.Path[1].DelayH)
	assert.InDelta(t, 9000.0/(6*3600), f.Path[1].SpeedMS, 0.01)
	assert.Len(t, f.Evidence, 4, "both parameters at both stations")
	assert.Contains(t, f.Explanation, "reached B (km 9) 6 h later, about 0.42 m/s")
	for _, e := range f.Evidence {
		assert.NotZero(t, e.Peak.Score)
		assert.NotEmpty(t, e.Hours)
	}
	_, err := json.Marshal(fs)
	require.NoError(t, err, "findings serialise (no NaN in the evidence)")
}

func TestTooLateIsNotTheSameEvent(t *testing.T) {
	// 9 km in 40 h is 0.06 m/s: slower than any river that carries a plume.
	at := 8*day + 4
	a := station{"A", map[string]river{"do": {days: 12, seed: 1, change: dip(at, 4, -2)}, "bod": {days: 12, seed: 2, mean: 8, change: dip(at, 4, 6)}}}
	b := station{"B", map[string]river{"do": {days: 12, seed: 3, change: dip(at+40, 4, -2)}, "bod": {days: 12, seed: 4, mean: 8, change: dip(at+40, 4, 6)}}}
	fs := Analyze(twoStations, series(a, b), Options{})
	assert.Equal(t, []Verdict{LocalEvent, LocalEvent}, verdicts(fs))
}

func TestDriftAtOneStationIsASuspectSensor(t *testing.T) {
	a := station{"A", map[string]river{
		"do":  {days: 12, seed: 1, change: func(h float64) float64 { return min(0, -0.1*(h-10*day)) }},
		"bod": {days: 12, seed: 2, mean: 8},
	}}
	b := station{"B", clean(3)}
	fs := Analyze(twoStations, series(a, b), Options{})
	require.Len(t, fs, 1, "%+v", verdicts(fs))
	f := fs[0]
	assert.Equal(t, SuspectSensor, f.Verdict)
	assert.Equal(t, KindDrift, f.Kind)
	assert.Equal(t, "A", f.Station)
	assert.Equal(t, []string{"do"}, f.Params)
	assert.Contains(t, f.Explanation, "B downstream normal")
}

func TestSeveralParametersAtTheLastStationAreALocalEvent(t *testing.T) {
	at := 10*day + 4
	b := station{"B", map[string]river{
		"do":  {days: 12, seed: 3, change: dip(at, 5, -2)},
		"bod": {days: 12, seed: 4, mean: 8, change: dip(at, 5, 6)},
	}}
	fs := Analyze(twoStations, series(station{"A", clean(1)}, b), Options{})
	require.Len(t, fs, 1, "%+v", verdicts(fs))
	assert.Equal(t, LocalEvent, fs[0].Verdict)
	assert.Equal(t, "B", fs[0].Station)
	assert.Contains(t, fs[0].Explanation, "A upstream normal")
	assert.Contains(t, fs[0].Explanation, "no station downstream")
}

func TestPendingUntilTheNextStationCouldHaveSeenIt(t *testing.T) {
	// A's DO drops in the last hours of its data; B's data ends with A's, before a plume
	// could have reached it.
	a := station{"A", map[string]river{"do": {days: 12, seed: 1, change: dip(12*day-5, 5, -2)}}}
	b := station{"B", map[string]river{"do": {days: 12, seed: 3}}}
	fs := Analyze(twoStations, series(a, b), Options{})
	require.Len(t, fs, 1, "%+v", verdicts(fs))
	assert.Equal(t, Pending, fs[0].Verdict)
	assert.True(t, fs[0].Ongoing)
}

func TestAloneOnItsRiverIsUnconfirmed(t *testing.T) {
	a := station{"A", map[string]river{"do": {days: 12, seed: 1, change: dip(10*day, 5, -2)}}}
	fs := Analyze(River{Stations: []Station{{ID: "A"}}}, series(a), Options{})
	require.Len(t, fs, 1)
	assert.Equal(t, Unconfirmed, fs[0].Verdict)
	assert.Contains(t, fs[0].Explanation, "no station upstream; no station downstream")
}

func TestStuckIsASuspectSensorWhateverTheNeighbours(t *testing.T) {
	b := station{"B", map[string]river{"do": {days: 12, seed: 3, read: func(i int, h, v float64) (float64, bool) {
		if h >= 10*day && h < 10*day+5 {
			return 5.55, true
		}
		return v, true
	}}}}
	fs := Analyze(twoStations, series(station{"A", clean(1)}, b), Options{})
	require.Len(t, fs, 1, "%+v", verdicts(fs))
	assert.Equal(t, SuspectSensor, fs[0].Verdict)
	assert.Equal(t, KindStuck, fs[0].Kind)
	assert.Contains(t, fs[0].Explanation, "repeats the same reading")
}

func verdicts(fs []Finding) []Verdict {
	var out []Verdict
	for _, f := range fs {
		out = append(out, f.Verdict)
	}
	return out
}

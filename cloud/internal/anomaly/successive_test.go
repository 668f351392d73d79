package anomaly

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// release is a discharge at its source: from at for hours, at size (a share of the full
// effect).
type release struct {
	At    float64 `yaml:"at"`
	Hours float64 `yaml:"hours"`
	Size  float64 `yaml:"size"`
}

// passage is how a station sees the releases: delay hours later, spread by dispersion
// (the sd, hours, of the Gaussian the release is convolved with) and diluted.
type passage struct {
	Delay    float64 `yaml:"delay"`
	Spread   float64 `yaml:"spread"`
	Dilution float64 `yaml:"dilution"`
}

// share is the releases' effect at the station h hours after start, as a share of the
// full effect. A rectangular release carried at the flow speed and spread by
// longitudinal dispersion arrives as the difference of two error functions (the
// advection–dispersion equation for a release long against the dispersion time; Fischer
// et al. 1979, "Mixing in Inland and Coastal Waters", ch. 4); releases add (the equation
// is linear).
func (p passage) share(rs []release, start, h float64) float64 {
	var v float64
	for _, r := range rs {
		t := h - start - p.Delay - r.At
		s := math.Sqrt2 * p.Spread
		v += r.Size / 2 * (math.Erf(t/s) - math.Erf((t-r.Hours)/s))
	}
	return p.Dilution * v
}

// TestSuccessiveDischargesAreTwoEvents: a second discharge that reaches the stations
// while the first is still washing out of the river is an event of its own at both,
// however flow speed, dispersion and dilution shape the two downstream; one discharge
// whose strength merely sags stays one event.
func TestSuccessiveDischargesAreTwoEvents(t *testing.T) {
	data, err := os.ReadFile("testdata/successive_discharges.yaml")
	require.NoError(t, err)
	var cases []struct {
		Name       string      `yaml:"name"`
		Discharges []release   `yaml:"discharges"`
		A          passage     `yaml:"a"`
		B          passage     `yaml:"b"`
		Events     [][]float64 `yaml:"events"`
	}
	require.NoError(t, yaml.Unmarshal(data, &cases))
	require.NotEmpty(t, cases)
	start := 10*day + 4
	for i, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			seed := uint64(10 * i)
			st := func(id string, p passage, seed uint64) station {
				return station{id, map[string]river{
					"do":  {days: 12, seed: seed, change: func(h float64) float64 { return -3 * p.share(tc.Discharges, start, h) }},
					"bod": {days: 12, seed: seed + 1, mean: 8, change: func(h float64) float64 { return 12 * p.share(tc.Discharges, start, h) }},
				}}
			}
			fs := Analyze(twoStations, series(st("A", tc.A, seed+1), st("B", tc.B, seed+3)), Options{})
			var events []Finding
			for _, f := range fs {
				if f.Verdict == PollutionEvent {
					events = append(events, f)
				}
			}
			require.Equal(t, len(tc.Events), len(events), "pollution events among %v", describe(fs))
			for k, want := range tc.Events {
				f := events[k]
				require.Len(t, f.Path, 2, "event %d names both stations", k)
				assert.Equal(t, []string{"A", "B"}, []string{f.Path[0].Station, f.Path[1].Station})
				assert.ElementsMatch(t, []string{"do", "bod"}, f.Params, "event %d", k)
				for j, h := range want {
					at := t0.Add(time.Duration((start + h) * float64(time.Hour)))
					assert.WithinDuration(t, at, f.Path[j].Start, time.Hour, "event %d at %s", k, f.Path[j].Station)
				}
			}
		})
	}
}

func describe(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		where := []string{f.Station + " " + f.Start.Format("01-02 15:04")}
		if len(f.Path) > 0 {
			where = where[:0]
			for _, p := range f.Path {
				where = append(where, p.Station+" "+p.Start.Format("01-02 15:04"))
			}
		}
		out = append(out, string(f.Verdict)+" "+strings.Join(where, " → "))
	}
	return out
}

// TestTrackerSplitsByDeparture: the tracker starts a second episode when the water's
// departure from the river before the first (shape) falls to half its crest and climbs
// back, whatever the channel's scores do, and only then: scores that jump when the
// expected value starts following an old episode's river are no second arrival.
func TestTrackerSplitsByDeparture(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name     string
		z, shape []float64
		want     [][2]int // first and last hour of each episode
	}{
		{"second climb out of a trough at half the crest",
			[]float64{0, 10, 10, 9, 4, 4, 8, 8, 0, 0},
			[]float64{0, 10, 10, 9, 4, 4, 8, 8, 0, 0},
			[][2]int{{1, 4}, {5, 7}}},
		{"scores jump while the water keeps washing out",
			[]float64{0, 10, 10, 9, 4, 4, 8, 8, 0, 0},
			[]float64{0, 10, 10, 9, 4, 3, 2, 1, 0, 0},
			[][2]int{{1, 7}}},
		{"a sag to more than half the crest is the same hump",
			[]float64{0, 10, 10, 6, 6, 9, 9, 0, 0, 0},
			[]float64{0, 10, 10, 6, 6, 9, 9, 0, 0, 0},
			[][2]int{{1, 6}}},
		{"an unjudged hour in the trough is stepped over",
			[]float64{0, 10, 10, 4, nan, 9, 9, 0, 0, 0},
			[]float64{0, 10, 10, 4, nan, 9, 9, 0, 0, 0},
			[][2]int{{1, 3}, {5, 6}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &tracker{openAt: 5, contAt: 3, maxGap: 1, z: tc.z, shape: tc.shape,
				keep: func(episode, float64) bool { return true }}
			for i := range tc.z {
				tr.step(i, !math.IsNaN(tc.z[i]))
			}
			tr.close(true)
			var got [][2]int
			for _, e := range tr.out {
				got = append(got, [2]int{e.first, e.last})
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

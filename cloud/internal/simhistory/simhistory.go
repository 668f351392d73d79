// Package simhistory reads what `ph-sim history` writes — the readings a simulated
// station's probes would have reported over a period, and the ground truth of what really
// happened — so benchmarks can score the forecaster and the detectors against it. The
// simulator's packages cannot be imported from the cloud's, so the files are the
// interface: truth.json and one CSV per probe and parameter.
package simhistory

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/hourly"
	"github.com/purehealth/purehealth/cloud/internal/seriescsv"
)

// Index is truth.json.
type Index struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Step     string    `json:"step"`
	Stations []Truth   `json:"stations"`
	Series   []Series  `json:"series"`
	dir      string
}

// Truth is one station's ground truth.
type Truth struct {
	Station   string     `json:"station"`
	River     string     `json:"river"`
	RiverKm   float64    `json:"river_km"`
	Incidents []Incident `json:"incidents"`
	Faults    []Fault    `json:"faults"`
}

// Incident is a pollution event as the station saw it. Origin is "own", "plume" or the
// id of the station upstream where it was discharged.
type Incident struct {
	Origin    string    `json:"origin"`
	SourceKm  float64   `json:"source_km"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	EffectEnd time.Time `json:"effect_end"`
	Severity  float64   `json:"severity"`
	Params    []string  `json:"params"`
}

// Fault is a probe's fault and when it set in.
type Fault struct {
	Probe  string    `json:"probe"`
	Params []string  `json:"params"`
	Fault  string    `json:"fault"`
	From   time.Time `json:"from"`
}

// Series is one probe's readings of one parameter.
type Series struct {
	Station  string `json:"station"`
	Probe    string `json:"probe"`
	Param    string `json:"param"`
	File     string `json:"file"`
	Readings int    `json:"readings"`
}

// Open reads dir/truth.json.
func Open(dir string) (*Index, error) {
	data, err := os.ReadFile(filepath.Join(dir, "truth.json"))
	if err != nil {
		return nil, err
	}
	var idx Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "truth.json"), err)
	}
	idx.dir = dir
	return &idx, nil
}

// Env names the directories of the histories a benchmark is scored on, in the form of
// $PATH (make bench sets it).
const Env = "PH_BENCH_HISTORY"

// ForBenchmark opens the histories Env names, skipping the benchmark when it names none.
func ForBenchmark(tb testing.TB) []*Index {
	tb.Helper()
	list := os.Getenv(Env)
	if list == "" {
		tb.Skip(Env + " names no ph-sim history directory (make bench sets it)")
	}
	idxs, err := OpenAll(list)
	if err != nil {
		tb.Fatal(err)
	}
	return idxs
}

// OpenAll opens every directory of a list in the form of $PATH (several histories, say of
// different seeds, to pool).
func OpenAll(list string) ([]*Index, error) {
	var out []*Index
	for _, dir := range filepath.SplitList(list) {
		if dir == "" {
			continue
		}
		idx, err := Open(dir)
		if err != nil {
			return nil, err
		}
		out = append(out, idx)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no history directory in %q", list)
	}
	return out, nil
}

// Points reads a series' readings.
func (idx *Index) Points(s Series) ([]hourly.Point, error) {
	f, err := os.Open(filepath.Join(idx.dir, s.File))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cs, err := seriescsv.Read(f, seriescsv.Limits{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.File, err)
	}
	return cs.Points, nil
}

// Faulty reports whether the series' probe has a fault.
func (idx *Index) Faulty(s Series) bool {
	for _, t := range idx.Stations {
		if t.Station != s.Station {
			continue
		}
		for _, f := range t.Faults {
			if f.Probe == s.Probe {
				return true
			}
		}
	}
	return false
}

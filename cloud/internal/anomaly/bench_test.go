package anomaly

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/simhistory"
)

// event is a discharge as the stations it reached saw it.
type event struct {
	at map[string]simhistory.Incident // by station
}

func (e event) travels() bool { return len(e.at) > 1 }

// events groups the incidents of every station into discharges: an incident downstream
// whose origin is a station upstream (or a scenario plume) is the same discharge as the
// latest own (or plume) incident there that began within a day before it.
func events(idx *simhistory.Index) []*event {
	var out []*event
	byStation := map[string]simhistory.Truth{}
	for _, t := range idx.Stations {
		byStation[t.Station] = t
	}
	stations := slices.Clone(idx.Stations)
	slices.SortFunc(stations, func(a, b simhistory.Truth) int {
		return strings.Compare(a.River, b.River)*2 + cmpFloat(a.RiverKm, b.RiverKm)
	})
	seen := map[string]map[time.Time]*event{} // station → incident start → its event
	for _, t := range stations {
		seen[t.Station] = map[time.Time]*event{}
		for _, in := range t.Incidents {
			var found *event
			if in.Origin != "own" {
				// Look for it at the stations above on the same river.
				for _, up := range stations {
					if up.River != t.River || up.RiverKm >= t.RiverKm || (in.Origin != "plume" && in.Origin != up.Station) {
						continue
					}
					for _, ui := range up.Incidents {
						if (ui.Origin == "own" || ui.Origin == in.Origin) && !ui.Start.After(in.Start) && in.Start.Sub(ui.Start) < 24*time.Hour {
							if e := seen[up.Station][ui.Start]; e != nil {
								found = e
							}
						}
					}
				}
			}
			if found == nil {
				found = &event{at: map[string]simhistory.Incident{}}
				out = append(out, found)
			}
			found.at[t.Station] = in
			seen[t.Station][in.Start] = found
		}
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// slack widens the truth's windows for the hour resolution of the detector.
const slack = 2 * time.Hour

func overlaps(in simhistory.Incident, from, to time.Time) bool {
	return from.Before(in.EffectEnd.Add(slack)) && in.Start.Add(-slack).Before(to)
}

// detectionScore is the benchmark's tally.
type detectionScore struct {
	findings, tp          int
	items, found          int
	plumes, plumesBoth    int
	drifts, driftsSuspect int
	pending, unconfirmed  int
	lines                 []string
}

func (s *detectionScore) logf(format string, args ...any) {
	s.lines = append(s.lines, fmt.Sprintf(format, args...))
}

// scoreDetection runs the detector over every river of a history and adds to sc.
func scoreDetection(idx *simhistory.Index, sc *detectionScore) error {
	rivers := map[string]*River{}
	var names []string
	for _, t := range idx.Stations {
		name := t.River
		if name == "" || name == "simulated" {
			name = "station " + t.Station
		}
		r, ok := rivers[name]
		if !ok {
			r = &River{Name: name}
			rivers[name] = r
			names = append(names, name)
		}
		r.Stations = append(r.Stations, Station{ID: t.Station, Km: t.RiverKm})
	}
	span := int(idx.To.Sub(idx.From)/time.Hour) + 1
	opts := Options{MaxHours: span}
	var findings []Finding
	for _, name := range names {
		r := rivers[name]
		var series []Series
		for _, s := range idx.Series {
			if !slices.ContainsFunc(r.Stations, func(st Station) bool { return st.ID == s.Station }) {
				continue
			}
			pts, err := idx.Points(s)
			if err != nil {
				return err
			}
			series = append(series, Series{Station: s.Station, Param: s.Param, Points: pts})
		}
		findings = append(findings, Analyze(*r, series, opts)...)
	}

	evs := events(idx)
	faults := map[string]simhistory.Fault{} // station/probe
	faultStation := map[string]string{}
	for _, t := range idx.Stations {
		for _, f := range t.Faults {
			faults[t.Station+"/"+f.Probe] = f
			faultStation[t.Station+"/"+f.Probe] = t.Station
		}
	}
	detected := map[*event]bool{}
	faultFound := map[string]bool{}
	for _, f := range findings {
		switch f.Verdict {
		case Pending:
			sc.pending++
			continue
		case Unconfirmed:
			sc.unconfirmed++
			continue
		}
		sc.findings++
		ok := false
		switch f.Verdict {
		case PollutionEvent:
			for _, e := range evs {
				match := len(f.Path) > 1
				for _, p := range f.Path {
					in, reached := e.at[p.Station]
					match = match && reached && overlaps(in, p.Start, p.Start.Add(time.Hour))
				}
				if match {
					ok = true
					detected[e] = true
				}
			}
		case LocalEvent:
			for _, e := range evs {
				if in, reached := e.at[f.Station]; reached && overlaps(in, f.Start, f.End) {
					ok = true
					if !e.travels() {
						detected[e] = true
					}
				}
			}
		case SuspectSensor:
			for key, ft := range faults {
				if faultStation[key] == f.Station && slices.ContainsFunc(ft.Params, func(p string) bool {
					return slices.Contains(f.Params, p)
				}) && f.End.After(ft.From.Add(-time.Hour)) {
					ok = true
					faultFound[key] = true
					if ft.Fault == "drift" && f.Kind == KindDrift {
						sc.logf("drift of %s flagged as a suspect sensor (%s) from %s", key, f.Kind, f.Start.Format(time.RFC3339))
					}
				}
			}
		}
		if ok {
			sc.tp++
		} else {
			var path []string
			for _, p := range f.Path {
				path = append(path, p.Station+" "+p.Start.Format("01-02 15:04"))
			}
			sc.logf("false: %s at %s %v %s–%s %v: %s", f.Verdict, f.Station, f.Params, f.Start.Format("01-02 15:04"),
				f.End.Format("01-02 15:04"), path, f.Explanation)
		}
	}
	// The detector judges nothing before it has a baseline and a spread: about
	// MinBaselineDays + 2 days. What happened before is not asked of it.
	judgedFrom := idx.From.Add(time.Duration(Options{}.withDefaults().MinBaselineDays+2) * 24 * time.Hour)
	for _, e := range evs {
		early := true
		for _, in := range e.at {
			early = early && in.EffectEnd.Before(judgedFrom)
		}
		if early {
			continue
		}
		sc.items++
		var plume bool
		var where []string
		for st, in := range e.at {
			plume = plume || in.Origin == "plume"
			where = append(where, fmt.Sprintf("%s %s (%.2f)", st, in.Start.Format("01-02 15:04"), in.Severity))
		}
		slices.Sort(where)
		if plume {
			sc.plumes++
		}
		if detected[e] {
			sc.found++
			if plume && e.travels() {
				sc.plumesBoth++
			}
		} else {
			sc.logf("missed: discharge seen at %s", strings.Join(where, ", "))
		}
	}
	for key, ft := range faults {
		sc.items++
		if ft.Fault == "drift" {
			sc.drifts++
		}
		if faultFound[key] {
			sc.found++
			if ft.Fault == "drift" {
				sc.driftsSuspect++
			}
		} else {
			sc.logf("missed: %s fault of %s from %s", ft.Fault, key, ft.From.Format(time.RFC3339))
		}
	}
	return nil
}

// BenchmarkDetection scores the cross-station detector against the simulator's ground
// truth: every discharge (a station's own, one carried down from a station upstream, a
// scenario's plume) and every probe fault. A pollution_event finding is right when each
// station on its path saw that discharge then; a local_event when a discharge was passing
// its station; a suspect_sensor when that station has a faulty probe of that parameter.
// Recall asks of a discharge that reached two stations a pollution_event with both, of
// one seen at one station a local or pollution event there, and of a fault a
// suspect_sensor. Pending and unconfirmed findings open no alert and count neither way.
func BenchmarkDetection(b *testing.B) {
	idxs := simhistory.ForBenchmark(b)
	var sc *detectionScore
	for b.Loop() {
		sc = &detectionScore{}
		for _, idx := range idxs {
			if err := scoreDetection(idx, sc); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, l := range sc.lines {
		b.Log(l)
	}
	ratio := func(n, d int) float64 {
		if d == 0 {
			return 0
		}
		return float64(n) / float64(d)
	}
	b.ReportMetric(ratio(sc.tp, sc.findings), "precision")
	b.ReportMetric(ratio(sc.found, sc.items), "recall")
	b.ReportMetric(float64(sc.findings), "findings")
	b.ReportMetric(float64(sc.items), "truths")
	b.ReportMetric(ratio(sc.plumesBoth, sc.plumes), "plumes_both")
	b.ReportMetric(ratio(sc.driftsSuspect, sc.drifts), "drift_suspect")
	b.ReportMetric(float64(sc.pending+sc.unconfirmed), "undecided")
}

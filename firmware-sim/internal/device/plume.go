package device

import (
	"math"
	"slices"
	"time"
)

// Plume is a discharge into a river that the current carries downstream: every station
// below SourceKm on River sees it as a pollution event, later the further away it is and
// a little weaker. This is arithmetic, not hydraulics: the plume keeps its shape (no
// dispersion) and loses strength exponentially with distance (dilution and decay, an
// e-folding length of plumeFadeKm).
type Plume struct {
	River    string
	SourceKm float64       // where it enters (the river's km)
	Start    time.Time     // when the discharge starts at the source
	Duration time.Duration // how long it discharges (at most 10 h, as a station's own events)
	Severity float64       // 0–1: the share of the full effect at the source
	// Speed is the flow speed carrying it, m/s (0: DefaultPlumeSpeed).
	Speed float64
}

const (
	// DefaultPlumeSpeed is a dry-season flow speed of a Deccan river through a city:
	// slow water behind weirs, faster in the channels.
	DefaultPlumeSpeed = 0.4 // m/s
	plumeFadeKm       = 40
	maxPlumeDuration  = 10 * time.Hour
)

func (p Plume) speed() float64 {
	if p.Speed > 0 {
		return p.Speed
	}
	return DefaultPlumeSpeed
}

// At is the plume as station st sees it, and whether it reaches st at all.
func (p Plume) At(st Station) (Event, bool) {
	if p.River == "" || st.River != p.River || st.RiverKm < p.SourceKm || p.Severity <= 0 {
		return Event{}, false
	}
	km := st.RiverKm - p.SourceKm
	delay := time.Duration(km * 1000 / p.speed() * float64(time.Second))
	dur := min(max(p.Duration, 0), maxPlumeDuration)
	return Event{Start: p.Start.Add(delay), End: p.Start.Add(delay + dur),
		Severity: math.Min(p.Severity, 1) * math.Exp(-km/plumeFadeKm)}, true
}

// TravelTime is how long the plume takes from its source to st (0 if it never gets
// there).
func (p Plume) TravelTime(st Station) time.Duration {
	e, ok := p.At(st)
	if !ok {
		return 0
	}
	return e.Start.Sub(p.Start)
}

// Incident is a pollution event as one station sees it: ground truth for scoring a
// detector.
type Incident struct {
	Event
	// Origin is where it came from: "" for the station's own discharge, the id of the
	// station upstream whose discharge it is, or "plume" for one given to WithPlumes.
	Origin string
	// SourceKm is where it entered the river (the station's own km for its own).
	SourceKm float64
}

// Effect is the span in which the incident changes the water noticeably: from the start
// of the discharge until its wash-out is below 5 % of its peak (three decay times).
func (in Incident) Effect() (from, to time.Time) { return in.Start, in.End.Add(3 * eventDecay) }

// Incidents returns every pollution event whose discharge at this station overlaps
// [from, to), in time order: its own events and the plumes that reach it (those given
// to WithPlumes and the own events of the modelled stations upstream on its river).
func (m *Model) Incidents(from, to time.Time) []Incident {
	var out []Incident
	for _, e := range m.Events(from, to) {
		out = append(out, Incident{Event: e, SourceKm: m.station.RiverKm})
	}
	out = append(out, m.passages(from, to)...)
	slices.SortStableFunc(out, func(a, b Incident) int { return a.Start.Compare(b.Start) })
	return out
}

// passages are the plumes whose discharge at this station overlaps [from, to).
func (m *Model) passages(from, to time.Time) []Incident {
	st := m.station
	var out []Incident
	add := func(p Plume, origin string) {
		if e, ok := p.At(st); ok && e.End.After(from) && e.Start.Before(to) {
			out = append(out, Incident{Event: e, Origin: origin, SourceKm: p.SourceKm})
		}
	}
	for _, p := range m.plumes {
		add(p, "plume")
	}
	if st.River == "" {
		return out
	}
	for _, up := range stations {
		if up.River != st.River || up.RiverKm >= st.RiverKm || up.ID == st.ID {
			continue
		}
		// Its events that could be passing here in [from, to): started within the travel
		// time plus the longest event before.
		probe := Plume{River: st.River, SourceKm: up.RiverKm}
		travel := probe.TravelTime(st)
		um := New(up, m.seed) // without plumes: what enters below it is not its own
		for _, e := range um.Events(from.Add(-travel-maxPlumeDuration), to.Add(-travel)) {
			add(Plume{River: st.River, SourceKm: up.RiverKm, Start: e.Start, Duration: e.End.Sub(e.Start),
				Severity: e.Severity}, up.ID)
		}
	}
	return out
}

package anomaly

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Station is a station's place on its river.
type Station struct {
	ID string
	// Km is the distance along the river, growing downstream.
	Km float64
}

// River is the stations of one river, in any order. A station with no river is a River
// of its own with one station.
type River struct {
	Name     string
	Stations []Station
}

// Verdict is what Assess makes of a deviation.
type Verdict string

// The verdicts. The first two are cloud alert rules (design §5a).
const (
	// PollutionEvent: seen at a station and then downstream with a plausible delay.
	PollutionEvent Verdict = "pollution_event"
	// SuspectSensor: a stuck or spiking probe, or a deviation of one parameter at one
	// station while its neighbours are normal.
	SuspectSensor Verdict = "suspect_sensor"
	// LocalEvent: several parameters changed together at one station and nowhere else
	// (yet): the water changed there, between stations or at the last one.
	LocalEvent Verdict = "local_event"
	// Pending: one parameter at one station; the next station downstream could still see
	// it arrive.
	Pending Verdict = "pending"
	// Unconfirmed: one parameter at one station with no neighbour able to say more.
	Unconfirmed Verdict = "unconfirmed"
)

// Passage is a pollution event at one station on its way.
type Passage struct {
	Station string    `json:"station"`
	Km      float64   `json:"km"`
	Start   time.Time `json:"start"`
	// DelayH is the hours since it was first seen upstream; SpeedMS the speed from the
	// previous station, m/s (0 at the first).
	DelayH  float64  `json:"delay_h"`
	SpeedMS float64  `json:"speed_ms"`
	Params  []string `json:"params"`
}

// Finding is one verdict with its evidence.
type Finding struct {
	Verdict Verdict `json:"verdict"`
	River   string  `json:"river,omitempty"`
	// Station is where it was first seen.
	Station string   `json:"station"`
	Params  []string `json:"params"`
	// Kind is the shape at the first station (for a suspect sensor, the fault's shape).
	Kind    Kind      `json:"kind"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Ongoing bool      `json:"ongoing"`
	// Path is a pollution event's stations in river order.
	Path        []Passage `json:"path,omitempty"`
	Explanation string    `json:"explanation"`
	// Evidence is every episode behind the finding.
	Evidence []Episode `json:"evidence"`
}

// Analyze scans every series and assesses them along the river: the whole detector in
// one call. series may hold any stations and parameters; those of stations not on r are
// judged alone.
func Analyze(r River, series []Series, opts Options) []Finding {
	scans := make([]Scan, 0, len(series))
	for _, s := range series {
		scans = append(scans, ScanSeries(s, opts))
	}
	return Assess(r, scans, opts)
}

// item is an episode under assessment.
type item struct {
	ep      Episode
	pos     int // station's index in river order; -1 when not on the river
	used    bool
	chained bool // part of a chain of stations, not merely attached to one
}

// assessor holds one river's scans.
type assessor struct {
	opts     Options
	river    River
	stations []Station // by km
	pos      map[string]int
	scans    map[[2]string]*Scan // station, param
	items    []*item
}

// Assess turns the scans of one river's stations into findings (see the package
// comment), ordered by start.
func Assess(r River, scans []Scan, opts Options) []Finding {
	opts = opts.withDefaults()
	a := &assessor{opts: opts, river: r, pos: map[string]int{}, scans: map[[2]string]*Scan{}}
	a.stations = slices.Clone(r.Stations)
	slices.SortStableFunc(a.stations, func(x, y Station) int { return cmp.Compare(x.Km, y.Km) })
	for i, s := range a.stations {
		a.pos[s.ID] = i
	}
	for i := range scans {
		s := &scans[i]
		a.scans[[2]string{s.Station, s.Param}] = s
		p, ok := a.pos[s.Station]
		if !ok {
			p = -1
		}
		for _, e := range s.Episodes {
			a.items = append(a.items, &item{ep: e, pos: p})
		}
	}
	slices.SortStableFunc(a.items, func(x, y *item) int { return x.ep.Start.Compare(y.ep.Start) })

	var out []Finding
	out = append(out, a.events()...)
	out = append(out, a.rest()...)
	slices.SortStableFunc(out, func(x, y Finding) int {
		return cmp.Or(x.Start.Compare(y.Start), cmp.Compare(x.Station, y.Station))
	})
	return out
}

// travels reports whether an episode's shape can be a change of the water: stuck values
// and spikes are a sensor's.
func travels(k Kind) bool { return k != KindStuck && k != KindSpike }

// window is when a change seen at from at t can show at to (downstream: to after from),
// given the plausible speeds.
func (a *assessor) window(from, to int, t time.Time) (time.Time, time.Time) {
	metres := math.Abs(a.stations[to].Km-a.stations[from].Km) * 1000
	fast := time.Duration(metres / a.opts.MaxSpeed * float64(time.Second))
	slow := time.Duration(metres / a.opts.MinSpeed * float64(time.Second))
	if to > from {
		return t.Add(fast - a.opts.Tolerance), t.Add(slow + a.opts.Tolerance)
	}
	return t.Add(-slow - a.opts.Tolerance), t.Add(-fast + a.opts.Tolerance)
}

// chain follows e downstream: at each station below, the earliest unused episode of the
// same parameter and direction that starts within the travel window. A station that was
// watching and saw nothing ends the chain (the change did not get past it); one without
// data is stepped over.
func (a *assessor) chain(e *item) []*item {
	out := []*item{e}
	cur := e
	for j := cur.pos + 1; j < len(a.stations); j++ {
		from, to := a.window(cur.pos, j, cur.ep.Start)
		var next *item
		for _, o := range a.items {
			if o.used || o == cur || o.pos != j || o.ep.Param != e.ep.Param || o.ep.Sign != e.ep.Sign ||
				!travels(o.ep.Kind) || o.ep.Start.Before(from) || o.ep.Start.After(to) {
				continue
			}
			next = o
			break
		}
		if next == nil {
			if a.state(j, e.ep.Param, from, to) == stateNormal {
				break
			}
			continue
		}
		out = append(out, next)
		cur = next
	}
	return out
}

// events finds the pollution events: chains of two stations or more, grouped across
// parameters when they start at the same station within Overlap. A group must hold in at
// least two independent measurements (one where the stations share only one; TDS and
// conductivity count as one, see sameMeasurement): a plume changes the water
// in several ways at once, while one parameter that happens to move at two stations a
// plausible time apart is the coincidence a river's natural wandering offers every few
// days. Every other episode that starts within Overlap of a member, at its station, is
// attached as part of the same water.
func (a *assessor) events() []Finding {
	var chains [][]*item
	for _, it := range a.items {
		if it.used || it.pos < 0 || !travels(it.ep.Kind) {
			continue
		}
		if c := a.chain(it); len(c) > 1 {
			for _, o := range c {
				o.used, o.chained = true, true
			}
			chains = append(chains, c)
		}
	}
	var out []Finding
	for i := 0; i < len(chains); i++ {
		if chains[i] == nil {
			continue
		}
		members := slices.Clone(chains[i])
		first := chains[i][0]
		params := []string{first.ep.Param}
		for j := i + 1; j < len(chains); j++ {
			if c := chains[j]; c != nil && c[0].pos == first.pos && absDur(c[0].ep.Start.Sub(first.ep.Start)) <= a.opts.Overlap {
				members = append(members, c...)
				params = addParam(params, c[0].ep.Param)
				chains[j] = nil
			}
		}
		if measurements(params) < min(2, a.shared(first.pos, chains[i][1].pos)) {
			for _, m := range members {
				m.used, m.chained = false, false // judged alone
			}
			continue
		}
		for _, it := range a.items {
			if it.used || !travels(it.ep.Kind) {
				continue
			}
			for _, m := range members {
				if it.pos == m.pos && absDur(it.ep.Start.Sub(m.ep.Start)) <= a.opts.Overlap {
					it.used = true
					members = append(members, it)
					break
				}
			}
		}
		out = append(out, a.event(members))
	}
	return out
}

// shared counts the measurements both stations were scanned for.
func (a *assessor) shared(i, j int) int {
	var ps []string
	for k := range a.scans {
		if k[0] == a.stations[i].ID {
			if _, ok := a.scans[[2]string{a.stations[j].ID, k[1]}]; ok {
				ps = append(ps, k[1])
			}
		}
	}
	return measurements(ps)
}

// sameMeasurement maps parameters that one sensor derives from one measurement to that
// measurement: a conductivity circuit reports TDS as conductivity times a factor (Atlas
// Scientific EZO-EC, `O,TDS,1`; science §5), so the two moving together says nothing
// that one of them did not.
var sameMeasurement = map[string]string{"tds": "conductivity"}

// measurements counts the independent measurements among params.
func measurements(params []string) int {
	seen := map[string]bool{}
	for _, p := range params {
		if m, ok := sameMeasurement[p]; ok {
			p = m
		}
		seen[p] = true
	}
	return len(seen)
}

// event describes a pollution event from its episodes.
func (a *assessor) event(members []*item) Finding {
	slices.SortStableFunc(members, func(x, y *item) int {
		return cmp.Or(cmp.Compare(x.pos, y.pos), x.ep.Start.Compare(y.ep.Start))
	})
	first := members[0]
	f := Finding{Verdict: PollutionEvent, River: a.river.Name, Station: first.ep.Station, Kind: first.ep.Kind,
		Start: first.ep.Start, End: first.ep.End}
	for _, m := range members {
		f.Evidence = append(f.Evidence, m.ep)
		f.Params = addParam(f.Params, m.ep.Param)
		f.End = maxTime(f.End, m.ep.End)
		f.Ongoing = f.Ongoing || m.ep.Ongoing
		if n := len(f.Path); n == 0 || f.Path[n-1].Station != m.ep.Station {
			f.Path = append(f.Path, Passage{Station: m.ep.Station, Km: a.stations[m.pos].Km, Start: m.ep.Start})
		}
		p := &f.Path[len(f.Path)-1]
		if m.chained {
			// Only the episodes that made the chain say when it arrived: those merely
			// overlapping it may have begun earlier for reasons of their own.
			p.Start = minTime(p.Start, m.ep.Start)
		}
		p.Params = addParam(p.Params, m.ep.Param)
	}
	f.Start = f.Path[0].Start
	for i := range f.Path {
		p := &f.Path[i]
		p.DelayH = p.Start.Sub(f.Path[0].Start).Hours()
		if i > 0 {
			prev := f.Path[i-1]
			if dt := p.Start.Sub(prev.Start).Seconds(); dt > 0 {
				p.SpeedMS = math.Round((p.Km-prev.Km)*1000/dt*100) / 100
			}
		}
	}
	var legs []string
	for _, p := range f.Path[1:] {
		leg := fmt.Sprintf("%s (km %s) %s later", p.Station, km(p.Km), hoursText(p.DelayH))
		if p.SpeedMS > 0 {
			leg += fmt.Sprintf(", about %.2f m/s", p.SpeedMS)
		}
		legs = append(legs, leg)
	}
	f.Explanation = fmt.Sprintf("%s changed at %s (km %s) from %s and the change reached %s: "+
		"a pollution event travelling downstream.", strings.Join(f.Params, ", "), f.Station, km(f.Path[0].Km),
		f.Path[0].Start.UTC().Format("2006-01-02 15:04 UTC"), strings.Join(legs, ", then "))
	return f
}

// rest judges the episodes no event took: sensor-shaped ones are suspect; changes of
// several parameters at once at one station are local events; a single parameter is asked
// of the neighbours.
func (a *assessor) rest() []Finding {
	var out []Finding
	for _, it := range a.items {
		if it.used || travels(it.ep.Kind) {
			continue
		}
		it.used = true
		out = append(out, Finding{Verdict: SuspectSensor, River: a.river.Name, Station: it.ep.Station,
			Params: []string{it.ep.Param}, Kind: it.ep.Kind, Start: it.ep.Start, End: it.ep.End,
			Ongoing: it.ep.Ongoing, Evidence: []Episode{it.ep},
			Explanation: fmt.Sprintf("%s at %s %s: a sensor fault, whatever the river does.",
				it.ep.Param, it.ep.Station, describeFault(it.ep))})
	}
	for _, it := range a.items {
		if it.used {
			continue
		}
		it.used = true
		group := []*item{it}
		for _, o := range a.items {
			if !o.used && o.ep.Station == it.ep.Station && o.ep.Param != it.ep.Param &&
				absDur(o.ep.Start.Sub(it.ep.Start)) <= a.opts.Overlap {
				o.used = true
				group = append(group, o)
			}
		}
		out = append(out, a.single(group))
	}
	return out
}

// single judges the episodes of one station that started together.
func (a *assessor) single(group []*item) Finding {
	it := group[0]
	f := Finding{River: a.river.Name, Station: it.ep.Station, Kind: it.ep.Kind, Start: it.ep.Start, End: it.ep.End}
	for _, g := range group {
		f.Params = addParam(f.Params, g.ep.Param)
		f.Evidence = append(f.Evidence, g.ep)
		f.Start = minTime(f.Start, g.ep.Start)
		f.End = maxTime(f.End, g.ep.End)
		f.Ongoing = f.Ongoing || g.ep.Ongoing
	}
	up, down, upName, downName := stateNone, stateNone, "", ""
	if it.pos >= 0 {
		up, upName = a.neighbour(it, -1)
		down, downName = a.neighbour(it, +1)
	}
	around := neighbourText(upName, up, "upstream") + "; " + neighbourText(downName, down, "downstream")
	what := fmt.Sprintf("%s at %s %s", it.ep.Param, it.ep.Station, describeShape(it.ep))
	switch {
	case measurements(f.Params) > 1:
		f.Verdict = LocalEvent
		f.Explanation = fmt.Sprintf("%s changed together at %s from %s (%s): several probes agree, so the water "+
			"changed there.", strings.Join(f.Params, ", "), f.Station, f.Start.UTC().Format("2006-01-02 15:04 UTC"), around)
	case down == statePending:
		f.Verdict = Pending
		f.Explanation = fmt.Sprintf("%s (%s): waiting to see whether it arrives downstream.", what, around)
	case (up == stateNormal || down == stateNormal) && up != stateAbnormal && down != stateAbnormal:
		f.Verdict = SuspectSensor
		f.Explanation = fmt.Sprintf("%s while its neighbours stay normal (%s) and no other parameter there "+
			"changed with it: a suspect sensor.", what, around)
	default:
		f.Verdict = Unconfirmed
		f.Explanation = fmt.Sprintf("%s (%s): no neighbour can confirm or rule out a change of the water.", what, around)
	}
	return f
}

// neighbourState is what a neighbour saw while a change could have shown there.
type neighbourState int

const (
	stateNone     neighbourState = iota // no station that side
	stateUnknown                        // no data or no baseline there then
	statePending                        // downstream, and the window has not passed
	stateNormal                         // watching, and nothing of that parameter
	stateAbnormal                       // a change there that did not match
)

// neighbour finds the nearest station on side dir (−1 upstream, +1 downstream) with data
// for the parameter and says what it saw in the travel window.
func (a *assessor) neighbour(it *item, dir int) (neighbourState, string) {
	for j := it.pos + dir; j >= 0 && j < len(a.stations); j += dir {
		from, to := a.window(it.pos, j, it.ep.Start)
		st := a.state(j, it.ep.Param, from, to)
		if st == stateUnknown {
			if _, ok := a.scans[[2]string{a.stations[j].ID, it.ep.Param}]; !ok {
				continue // that station does not measure it: ask the next
			}
		}
		return st, a.stations[j].ID
	}
	return stateNone, ""
}

// state says what station j saw of param in [from, to): pending when its data ends before
// to, abnormal with any episode of param then (even the other way: a neighbour that is
// itself unsettled cannot vouch for the river), normal when it judged at least half of
// the hours and had no episode of param, unknown otherwise.
func (a *assessor) state(j int, param string, from, to time.Time) neighbourState {
	s, ok := a.scans[[2]string{a.stations[j].ID, param}]
	if !ok {
		return stateUnknown
	}
	for _, e := range s.Episodes {
		if e.Start.Before(to) && from.Before(e.End) {
			return stateAbnormal
		}
	}
	if s.End().Before(to) {
		return statePending
	}
	judged, hours := s.Judged(from, to)
	if hours > 0 && 2*judged >= hours {
		return stateNormal
	}
	return stateUnknown
}

func neighbourText(name string, st neighbourState, side string) string {
	switch st {
	case stateNone:
		return "no station " + side
	case stateUnknown:
		return name + " " + side + " has no data then"
	case statePending:
		return name + " " + side + " has not had the time to see it yet"
	case stateNormal:
		return name + " " + side + " normal"
	}
	return name + " " + side + " changed differently"
}

func describeShape(e Episode) string {
	dir := "above"
	if e.Sign < 0 {
		dir = "below"
	}
	switch e.Kind {
	case KindDrift:
		return fmt.Sprintf("drifts %s its baseline from %s (score %.1f at %s)", dir, hhmm(e.Start), e.Peak.Score, hhmm(e.Peak.Time))
	case KindLevelShift:
		return fmt.Sprintf("shifted %s its baseline at %s and stays there (score %.1f)", dir, hhmm(e.Start), e.Peak.Score)
	}
	return fmt.Sprintf("went %s its baseline from %s to %s (peak %s, score %.1f, baseline %s)", dir, hhmm(e.Start),
		hhmm(e.End), num(e.Peak.Value), e.Peak.Score, num(e.Peak.Baseline))
}

func describeFault(e Episode) string {
	switch e.Kind {
	case KindStuck:
		return fmt.Sprintf("repeats the same reading from %s to %s", hhmm(e.Start), hhmm(e.End))
	case KindSpike:
		return fmt.Sprintf("jumped away from its neighbours %d times between %s and %s (largest score %.1f)",
			e.Spikes, hhmm(e.Start), hhmm(e.End), e.Peak.Score)
	}
	return describeShape(e)
}

func hhmm(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

func num(v float64) string { return fmt.Sprintf("%.4g", v) }

func km(v float64) string { return fmt.Sprintf("%g", v) }

func hoursText(h float64) string {
	if h == math.Trunc(h) {
		return fmt.Sprintf("%.0f h", h)
	}
	return fmt.Sprintf("%.1f h", h)
}

func addParam(ps []string, p string) []string {
	if slices.Contains(ps, p) {
		return ps
	}
	return append(ps, p)
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

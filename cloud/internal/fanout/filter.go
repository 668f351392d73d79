package fanout

import (
	"maps"
	"slices"
)

// filter is a connection's subscription: the stations it named, and "*" kept apart from
// them (unsubscribing "*" leaves the named ones). Its zero value wants nothing. A filter
// belongs to one goroutine; the hub routes with a copy (see Hub.change).
type filter struct {
	all      bool
	stations map[string]struct{}
}

// apply adds a subscribe's stations or takes an unsubscribe's away.
func (f *filter) apply(r request) {
	if f.stations == nil {
		f.stations = map[string]struct{}{}
	}
	if r.subscribe {
		f.all = f.all || r.all
		for _, s := range r.stations {
			f.stations[s] = struct{}{}
		}
		return
	}
	if r.all {
		f.all = false
	}
	for _, s := range r.stations {
		delete(f.stations, s)
	}
}

// namedAfter is how many stations f would name after applying r.
func (f *filter) namedAfter(r request) int {
	if !r.subscribe {
		return len(f.stations)
	}
	return len(f.stations) + len(f.newIn(r))
}

// newIn returns the stations r names that f does not have yet.
func (f *filter) newIn(r request) []string {
	var out []string
	for _, s := range r.stations {
		if _, ok := f.stations[s]; !ok {
			out = append(out, s)
		}
	}
	return out
}

func (f *filter) wants(station string) bool {
	if f.all {
		return true
	}
	_, ok := f.stations[station]
	return ok
}

// list is the subscription as the acknowledgement shows it: "*" first, then the named
// stations in order.
func (f *filter) list() []string {
	out := make([]string, 0, len(f.stations)+1)
	if f.all {
		out = append(out, allStations)
	}
	return append(out, slices.Sorted(maps.Keys(f.stations))...)
}

// named is the stations a query for f selects: nil (every station) for "*", empty (not
// nil) when f wants nothing.
func (f *filter) named() []string {
	if f.all {
		return nil
	}
	return slices.AppendSeq(make([]string, 0, len(f.stations)), maps.Keys(f.stations))
}

func (f *filter) clone() filter {
	return filter{all: f.all, stations: maps.Clone(f.stations)}
}

// Package alertrule turns a stream of verdicts about a condition into alert transitions,
// with hysteresis so a value hovering at a limit does not flap.
//
// A condition is named by a key ("threshold:do:cpcb-class-B:min", "offline:ph-1"). Each
// evaluation yields a Verdict: Violating (beyond the limit), Holding (back inside the limit
// but not yet by the deadband margin), or Clear (inside by the margin). A condition opens
// after OpenAfter consecutive Violating verdicts and resolves after ClearAfter consecutive
// Clear verdicts; a Holding verdict keeps an open condition open and resets both counts.
// One open condition is one alert, however many readings confirm it.
//
// Tracker is pure state: no clock, no I/O. It is not safe for concurrent use; its owner
// serializes access.
package alertrule

import "fmt"

// Verdict is one evaluation of a condition.
type Verdict int

// The verdicts.
const (
	Clear Verdict = iota
	Holding
	Violating
)

func (v Verdict) String() string {
	switch v {
	case Clear:
		return "clear"
	case Holding:
		return "holding"
	case Violating:
		return "violating"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// Transition is what an observation changed.
type Transition int

// The transitions.
const (
	None Transition = iota
	Open
	Resolve
)

func (t Transition) String() string {
	switch t {
	case None:
		return "none"
	case Open:
		return "open"
	case Resolve:
		return "resolve"
	}
	return fmt.Sprintf("transition(%d)", int(t))
}

// Policy sets how many consecutive verdicts a transition needs. Zero fields mean 1.
type Policy struct {
	OpenAfter  int
	ClearAfter int
}

type state struct {
	open       bool
	violations int
	clears     int
}

// Tracker holds the hysteresis state of every condition it has seen.
type Tracker struct {
	states map[string]*state
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker { return &Tracker{states: make(map[string]*state)} }

// Observe records one verdict for key and reports the transition it causes.
func (t *Tracker) Observe(key string, v Verdict, p Policy) Transition {
	openAfter, clearAfter := max(p.OpenAfter, 1), max(p.ClearAfter, 1)
	s := t.states[key]
	if s == nil {
		if v == Clear {
			return None // nothing to remember about a condition that never fired
		}
		s = &state{}
		t.states[key] = s
	}
	switch v {
	case Violating:
		s.clears = 0
		s.violations++
		if !s.open && s.violations >= openAfter {
			s.open = true
			return Open
		}
	case Holding:
		s.clears = 0
		if !s.open {
			s.violations = 0
		}
	case Clear:
		s.violations = 0
		if !s.open {
			delete(t.states, key)
			return None
		}
		s.clears++
		if s.clears >= clearAfter {
			delete(t.states, key)
			return Resolve
		}
	}
	return None
}

// IsOpen reports whether key is currently open.
func (t *Tracker) IsOpen(key string) bool {
	s := t.states[key]
	return s != nil && s.open
}

// Tracks reports whether the tracker holds anything for key: a Clear verdict for a key
// it does not track changes nothing (Observe returns None and remembers nothing).
func (t *Tracker) Tracks(key string) bool {
	_, ok := t.states[key]
	return ok
}

// Restore marks key open, e.g. for alerts reloaded from disk after a restart, so that they
// resolve by the same hysteresis instead of opening a second time.
func (t *Tracker) Restore(key string) { t.states[key] = &state{open: true} }

// Forget drops key without a transition (the alert was closed another way).
func (t *Tracker) Forget(key string) { delete(t.states, key) }

// Band classifies v against a limit with a deadband, for limits of either direction.
// For a maximum (v must stay ≤ limit): v > limit is Violating, v ≤ limit − margin is
// Clear, in between Holding. For a minimum the mirror image. margin is absolute.
func Band(v, limit, margin float64, isMax bool) Verdict {
	if isMax {
		switch {
		case v > limit:
			return Violating
		case v <= limit-margin:
			return Clear
		}
		return Holding
	}
	switch {
	case v < limit:
		return Violating
	case v >= limit+margin:
		return Clear
	}
	return Holding
}

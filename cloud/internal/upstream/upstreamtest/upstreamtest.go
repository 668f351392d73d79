// Package upstreamtest helps test upstream clients: a Sink and Cursors kept in memory
// (small real implementations of the interfaces the Collector consumes, applying
// upstream.Classify the way a database store does), and the ph-sim upstream simulators
// run as real processes on 127.0.0.1.
//
// Use Main from TestMain so the simulator's build is removed after the tests:
//
//	func TestMain(m *testing.M) { os.Exit(upstreamtest.Main(m)) }
package upstreamtest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/internal/testproc"
)

var sims testproc.Builder

// Main runs the tests and removes the simulator build afterwards (testproc.Main).
func Main(m *testing.M) int { return testproc.Main(&sims, m.Run) }

// Wrap is Main for a test binary that has another such wrapper (pgtest.Main): run runs the
// tests, and the simulator build is removed afterwards.
func Wrap(run func() int) int { return testproc.Main(&sims, run) }

// Sim is a running ph-sim upstream simulator.
type Sim struct {
	// URLs are the lines it printed on stdout once listening (for ogd the resource URLs,
	// for stats the API base URL then the token URL).
	URLs []string
	proc *testproc.Process
}

// StartSim runs `ph-sim KIND --listen 127.0.0.1:0 ARGS...` and waits for lines lines on
// its stdout. It is stopped when the test ends.
func StartSim(t testing.TB, kind string, lines int, args ...string) *Sim {
	t.Helper()
	bin := sims.Binary(t, "ph-sim", "github.com/purehealth/purehealth/firmware-sim", false)
	p := testproc.Start(t, bin, append([]string{kind, "--listen", "127.0.0.1:0", "--log-level", "warn"}, args...)...)
	s := &Sim{proc: p}
	for range lines {
		s.URLs = append(s.URLs, strings.TrimSpace(p.Line(t, 30*time.Second)))
	}
	return s
}

// Sink stores upstream readings in memory by key, keeping every revision, and classifies
// each delivered reading with upstream.Classify. Safe for concurrent use.
type Sink struct {
	mu      sync.Mutex
	current map[upstream.Key]upstream.Reading
	history map[upstream.Key][]upstream.Reading // every stored value, oldest first
	calls   int
}

// StoreUpstream implements upstream.Sink.
func (s *Sink) StoreUpstream(_ context.Context, rs []upstream.Reading) (upstream.Stored, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		s.current = map[upstream.Key]upstream.Reading{}
		s.history = map[upstream.Key][]upstream.Reading{}
	}
	s.calls++
	var st upstream.Stored
	for _, r := range rs {
		k := r.Key()
		cur, ok := s.current[k]
		switch upstream.Classify(r, cur.Value, ok) {
		case upstream.New:
			st.New++
		case upstream.Revised:
			st.Revised++
		case upstream.Unchanged:
			st.Unchanged++
			continue
		}
		s.current[k] = r
		s.history[k] = append(s.history[k], r)
	}
	return st, nil
}

// Current returns the current readings.
func (s *Sink) Current() []upstream.Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]upstream.Reading, 0, len(s.current))
	for _, r := range s.current {
		out = append(out, r)
	}
	return out
}

// History returns every value stored under k, oldest first.
func (s *Sink) History(k upstream.Key) []upstream.Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]upstream.Reading(nil), s.history[k]...)
}

// Revised returns the keys that hold more than one value.
func (s *Sink) Revised() []upstream.Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []upstream.Key
	for k, h := range s.history {
		if len(h) > 1 {
			out = append(out, k)
		}
	}
	return out
}

// Cursors keeps cursors in memory. Safe for concurrent use.
type Cursors struct {
	mu sync.Mutex
	m  map[string]string
}

// Cursor implements upstream.Cursors.
func (c *Cursors) Cursor(_ context.Context, source string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[source], nil
}

// SetCursor implements upstream.Cursors.
func (c *Cursors) SetCursor(_ context.Context, source, cursor string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]string{}
	}
	c.m[source] = cursor
	return nil
}

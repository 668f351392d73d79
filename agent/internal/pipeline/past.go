package pipeline

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wqi"
)

// lateQuiet is how long no late reading must have arrived before the index at the newest
// one is stored: the parameters of one instant arrive as separate messages, and an index
// computed between them would be missing some.
const lateQuiet = 10 * time.Second

// lateBatch is how many late points are stored together: a logger's burst of days makes
// one point per instant, and a commit each would cost an fsync each (tens of seconds
// for two weeks on an SD card).
const lateBatch = 256

// lateIndex is the station's WQI history for readings that arrive too old to feed the
// current index: older, on arrival, than their parameter's freshness. A sonde that
// empties its own logger after the link to the gateway was down, or the simulator's
// backfill, delivers days of readings in a burst; the current index ignores them, so
// without this the station's WQI history would have a hole exactly where its readings
// have none. The readings are taken in their order of arrival (a logger sends its
// oldest first): each one later than every late reading before it closes the instant
// of the previous one, whose index is stored by the rule of the live history (the
// first point, a change of class or of the missing inputs, or a change of the value a
// history interval after the last point). The points are history only: not published
// as the current index, and not fed to the alert rules (the water is no longer so).
// Only late readings feed it: a parameter that was measured live meanwhile (another probe
// whose link stayed up) is in the live history of those hours, not in these points.
// They are stored lateBatch at a time, and the rest once the burst is over: the points
// still pending when the agent stops are lost, like the index state they came from,
// while the readings themselves are durable.
type lateIndex struct {
	mu       sync.Mutex
	past     *state.Past // nil until the first late reading
	newest   time.Time   // the time of the newest late reading
	computed time.Time   // the instant the index was last computed at
	arrived  time.Time   // when the last late reading arrived
	stored   time.Time   // the instant of the last point stored
	last     wqi.Result  // that point's index
	haveLast bool
	pending  [][]byte // points not stored yet
}

// observeLate feeds the late readings among rs, received at now, to the late index.
func (p *Pipeline) observeLate(ctx context.Context, rs []telemetry.Reading, now time.Time) {
	l := &p.late
	locked := false
	for i := range rs {
		r := &rs[i]
		if !feedsWQI(r.Param) || now.Sub(r.Time) <= p.deps.State.FreshnessOf(r.Param, r.Source) {
			continue
		}
		if !locked {
			l.mu.Lock()
			defer l.mu.Unlock()
			locked = true
			if l.past == nil {
				l.past = p.deps.State.Past()
			}
		}
		if r.Source == telemetry.SourceManual {
			// A lab result is old by nature: it feeds the points of later late readings
			// but makes none of its own, which would be an index of it alone.
			l.past.Observe(*r)
			continue
		}
		l.arrived = now
		if r.Time.After(l.newest) {
			if !l.newest.IsZero() {
				p.latePoint(l.newest)
			}
			l.newest = r.Time
		}
		l.past.Observe(*r)
	}
	if locked && len(l.pending) >= lateBatch {
		p.storeLate(ctx)
	}
}

// flushLate, once late readings have stopped arriving for lateQuiet, queues the index at
// the newest of them and stores what is pending.
func (p *Pipeline) flushLate(ctx context.Context, now time.Time) {
	l := &p.late
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.past == nil || now.Sub(l.arrived) < lateQuiet {
		return
	}
	if l.newest.After(l.computed) {
		p.latePoint(l.newest)
	}
	p.storeLate(ctx)
}

// storeLate stores the pending points. Callers hold late.mu.
func (p *Pipeline) storeLate(ctx context.Context) {
	l := &p.late
	if len(l.pending) == 0 {
		return
	}
	if err := p.deps.Store.AppendWQI(ctx, l.pending...); err != nil {
		p.log.Warn("store past WQI history", "points", len(l.pending), "err", err)
	}
	clear(l.pending)
	l.pending = l.pending[:0]
}

// latePoint computes the index at the instant at and queues it as history if the live
// history's rule would have stored it. Callers hold late.mu.
func (p *Pipeline) latePoint(at time.Time) {
	l := &p.late
	if !at.After(l.computed) {
		return
	}
	l.computed = at
	res, inputs, err := l.past.WQI(at)
	if err != nil {
		return // no fresh input then (or one outside the index's domain): a gap, as it was
	}
	if l.haveLast && l.last.Class == res.Class && slices.Equal(l.last.Missing, res.Missing) &&
		(math.Abs(l.last.WQI-res.WQI) < 0.005 || at.Sub(l.stored) < p.opts.HistoryInterval) {
		return
	}
	payload, err := json.Marshal(WQIMessage{Station: p.opts.Station, Time: at.UTC(), Inputs: inputs, Result: &res})
	if err != nil {
		p.log.Error("encode past WQI", "err", err)
		return
	}
	l.pending = append(l.pending, payload)
	l.last, l.haveLast, l.stored = res, true, at
}

package uplink

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/internal/testclock"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
)

// appended is what the cloud stored at the agent while it held one request.
type appended struct {
	request int      // the request (from 0) the cloud held
	before  int      // batches the cloud had accepted by then
	seqs    []uint64 // readings, in seq order
	alert   bool     // an alert event was stored too
}

// midDrain is the log of what was stored at the station during a drain.
type midDrain struct {
	mu  sync.Mutex
	log []appended
}

func (m *midDrain) events() []appended {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.log)
}

type drainPlan struct {
	readings func(i int) int  // readings to store while the cloud holds request i
	poison   func(i int) bool // a reading the cloud refuses goes first
	alert    func(i int) bool // an alert opens (one event)
}

// planDuring makes the cloud, while it holds each of its next n requests and before it
// answers, store at the station what p says for that request, and returns the log of what
// was stored. The uplink builds its next batch after the answer, so whatever was stored
// is there for it to take.
func planDuring(t *testing.T, c *fakeCloud, s *spool.Spool, alerts *alerting.Manager, n int, p drainPlan) *midDrain {
	t.Helper()
	m := &midDrain{}
	for i := range n {
		c.push(func(http.ResponseWriter, *http.Request) bool {
			var rs []telemetry.Reading
			if p.poison != nil && p.poison(i) {
				rs = append(rs, telemetry.Reading{Station: station, Sensor: "probe-x", Param: "salinity", Unit: "psu",
					Value: 3, Time: t0, Source: telemetry.SourceSensor, Quality: telemetry.Good})
			}
			for k := range p.readings(i) {
				rs = append(rs, telemetry.Reading{Station: station, Sensor: "probe-live", Param: telemetry.PH, Unit: "pH",
					Value: 7 + float64(k%10)/10, Time: t0.Add(time.Duration(i) * time.Hour), Source: telemetry.SourceSensor,
					Quality: telemetry.Good})
			}
			// Counted before the readings are stored: the batches accepted from then on
			// are the only ones that can hold them.
			c.mu.Lock()
			ev := appended{request: i, before: len(c.batches)}
			c.mu.Unlock()
			if len(rs) > 0 {
				got, err := s.AppendReadings(context.Background(), rs)
				if !assert.NoError(t, err, "store readings during request %d", i) {
					return false
				}
				for _, r := range got {
					ev.seqs = append(ev.seqs, r.Seq)
				}
			}
			if p.alert != nil && p.alert(i) {
				alerts.Set(context.Background(), alerting.Condition{Key: "mid-drain", Rule: alerting.RuleThreshold,
					Param: "do", Severity: alerting.Warning, Message: "oxygen low during the drain"}, true)
				ev.alert = true
			}
			if len(ev.seqs) == 0 && !ev.alert {
				return false
			}
			m.mu.Lock()
			m.log = append(m.log, ev)
			m.mu.Unlock()
			return false // the contract answers
		})
	}
	return m
}

// arrivedIn returns, for each record, the index of the first accepted batch holding it.
func arrivedIn(batches [][]recKey) map[recKey]int {
	at := map[recKey]int{}
	for i, b := range batches {
		for _, k := range b {
			if _, ok := at[k]; !ok {
				at[k] = i
			}
		}
	}
	return at
}

// Readings stored while a long backlog drains reach the cloud with the next batch, not
// after the backlog: each batch of the drain carries, besides the next backlog readings
// in seq order, the readings stored since the previous batch was built (the newest
// LiveReadings of them, and at most half the batch); with batches in flight together,
// those go in a batch of their own just ahead of the backlog's. Nothing is lost or sent twice, the
// backlog stays in seq order, and the cursor ends at the last reading with nothing left
// acknowledged ahead of it.
func TestReadingsDuringDrainGoNext(t *testing.T) {
	every := func(k int, n int) func(int) int {
		return func(i int) int {
			if i > 0 && i%k == 0 {
				return n
			}
			return 0
		}
	}
	at := func(req int) func(int) bool { return func(i int) bool { return i == req } }
	tests := []drainCase{
		{
			name: "a reading now and then", backlog: 50000, opts: Options{BatchMax: 500},
			requests: 40, plan: drainPlan{readings: every(3, 1)}, maxLag: 1, live: DefaultLiveReadings,
		},
		{
			name: "a few at once, and an alert", backlog: 20000, opts: Options{BatchMax: 400},
			requests: 30, plan: drainPlan{readings: every(4, 8), alert: at(9)}, maxLag: 1, live: DefaultLiveReadings,
		},
		{
			// The backlog runs out while readings keep coming: at its end the backlog
			// reads the newest readings itself, and none goes twice.
			name: "readings during every batch, past the end of the backlog", backlog: 5000, opts: Options{BatchMax: 400},
			requests: 30, plan: drainPlan{readings: every(1, 2)}, maxLag: 1, live: DefaultLiveReadings,
		},
		{
			name: "more than the live lane takes", backlog: 20000, opts: Options{BatchMax: 400, LiveReadings: 50},
			requests: 20, plan: drainPlan{readings: every(7, 333)}, maxLag: 1, live: 50,
		},
		{
			name: "more than half a batch", backlog: 20000, opts: Options{BatchMax: 60},
			requests: 60, plan: drainPlan{readings: every(10, 45)}, maxLag: 1, live: 30,
		},
		{
			// A stored batch of 300 is refused; 150, then 75 go: the batches the drain
			// builds are split, their pieces mixing the two lanes.
			name: "the cloud halves the batches", backlog: 20000, opts: Options{BatchMax: 300}, maxRecords: 100,
			requests: 60, plan: drainPlan{readings: every(5, 3)}, maxLag: 4, live: DefaultLiveReadings,
		},
		{
			name: "a poison reading arrives, the cloud names it", backlog: 20000, opts: Options{BatchMax: 400},
			requests: 30, plan: drainPlan{readings: every(6, 4), poison: at(12)}, maxLag: 2, live: DefaultLiveReadings,
		},
		{
			name: "a poison reading arrives, the cloud names none", backlog: 20000, opts: Options{BatchMax: 400}, omitField: true,
			requests: 30, plan: drainPlan{readings: every(6, 4), poison: at(12)}, maxLag: 20, live: DefaultLiveReadings,
		},
	}
	for _, tt := range tests {
		for _, inFlight := range []int{1, DefaultInFlight} {
			t.Run(fmt.Sprintf("%s/in_flight=%d", tt.name, inFlight), func(t *testing.T) {
				tt.opts.InFlight = inFlight
				// Behind a batch in flight the next one is built already: what is stored
				// while the cloud holds a batch waits one more, and when the cloud
				// refuses a batch, the batch behind it lands between its pieces. The
				// new readings then travel in a batch of their own beside the backlog's:
				// each step of the drain is two requests, in either order at the cloud.
				tt.maxLag += inFlight - 1
				if inFlight > 1 {
					tt.maxLag += inFlight
				}
				if tt.maxRecords > 0 || tt.plan.poison != nil {
					tt.maxLag += inFlight - 1
				}
				testReadingsDuringDrain(t, tt)
			})
		}
	}
}

// drainCase is a case of TestReadingsDuringDrainGoNext.
type drainCase struct {
	name       string
	backlog    int
	opts       Options
	maxRecords int  // > 0: the cloud answers 413 above it
	omitField  bool // 400 answers name no record
	requests   int  // how many requests the plan covers
	plan       drainPlan
	// maxLag: a stored reading arrives at most this many accepted batches after the one
	// the cloud held (1: the very next one).
	maxLag int
	// live: of the readings stored at once, how many go in the live lane (the newest); the
	// rest are left to the backlog.
	live int
}

func testReadingsDuringDrain(t *testing.T, tt drainCase) {
	s := openStore(t, "")
	cloud := newCloud(t, nil)
	cloud.maxRecords, cloud.omitField = tt.maxRecords, tt.omitField
	alerts := newAlerts(t, s)
	initial := addReadings(t, s, tt.backlog)
	n := initial[len(initial)-1].Seq
	drain := planDuring(t, cloud, s, alerts, tt.requests, tt.plan)
	u := newUplink(t, s, cloud, alerts, tt.opts)
	start(t, u)
	require.NoError(t, flush(t, u))

	batches := cloud.batchLog()
	arrival := arrivedIn(batches)
	events := drain.events()
	require.NotEmpty(t, events)
	live := map[uint64]bool{} // readings that went in the live lane
	for seq := n - uint64(u.opts.LiveReadings) + 1; seq <= n; seq++ {
		live[seq] = true // the newest at the start of the pass
	}
	// isBacklog: a reading of the initial backlog (not the live lane's).
	isBacklog := func(k recKey) bool { return k.stream == "readings" && k.seq <= n && !live[k.seq] }
	lastBacklog := -1 // the last batch with readings of the initial backlog
	for i, b := range batches {
		if slices.ContainsFunc(b, isBacklog) {
			lastBacklog = i
		}
	}
	var poisons, stored []uint64
	for _, ev := range events {
		seqs := ev.seqs
		if tt.plan.poison != nil && tt.plan.poison(ev.request) {
			poisons, seqs = append(poisons, seqs[0]), seqs[1:]
		}
		stored = append(stored, seqs...)
		newest := seqs[max(0, len(seqs)-tt.live):]
		for _, seq := range newest {
			live[seq] = true
			got, ok := arrival[recKey{"readings", seq}]
			if !assert.True(t, ok, "reading %d (stored during request %d) reached the cloud", seq, ev.request) {
				continue
			}
			lag := got - ev.before
			assert.True(t, lag >= 1 && lag <= tt.maxLag,
				"reading %d, stored while the cloud held request %d (%d batches accepted), arrived in batch %d: %d batches later, want 1 to %d",
				seq, ev.request, ev.before, got, lag, tt.maxLag)
			if ev.before+tt.maxLag < lastBacklog {
				assert.Less(t, got, lastBacklog, "reading %d arrived before the backlog had drained", seq)
			}
			if tt.opts.InFlight > 1 && got < lastBacklog {
				assert.False(t, slices.ContainsFunc(batches[got], isBacklog),
					"reading %d arrived in a batch of the live lane alone, not in the backlog's (batch %d)", seq, got)
			}
		}
		if ev.alert {
			got, ok := arrival[recKey{"alerts", 1}]
			require.True(t, ok, "the alert reached the cloud")
			// Behind the batches in flight: each but the one the cloud holds may have the
			// live lane's batch beside it.
			assert.LessOrEqual(t, got, ev.before+2*tt.opts.InFlight-1, "the alert went in the next batch built")
		}
	}
	require.NotEmpty(t, stored, "the plan stored readings during the drain")

	// The backlog lane: everything not sent live, in seq order; batches in flight
	// together may reach the cloud in either order, each holding its own run.
	var runs [][]uint64
	for _, b := range batches[1:] {
		var run []uint64
		for _, k := range b {
			if k.stream == "readings" && !live[k.seq] {
				run = append(run, k.seq)
			}
		}
		if len(run) > 0 {
			runs = append(runs, run)
		}
	}
	if tt.opts.InFlight > 1 {
		slices.SortFunc(runs, func(a, b []uint64) int { return cmp.Compare(a[0], b[0]) })
	}
	backlog := slices.Concat(runs...)
	assert.True(t, slices.IsSorted(backlog), "the backlog went in seq order")
	last := lastSeq(t, s, spool.Readings)
	want := slices.DeleteFunc(span(1, last), func(seq uint64) bool { return slices.Contains(poisons, seq) })
	assert.Equal(t, want, cloud.seqs("readings"), "every reading but the poison is in the cloud")
	assert.Zero(t, cloud.duplicates(), "nothing went twice")
	for _, st := range streams {
		assert.Equal(t, lastSeq(t, s, st), s.Cursor(st), "%s cursor at its last seq", st)
	}
	st := u.Status()
	assert.Equal(t, uint64(len(poisons)), st.Rejected)
	assert.Zero(t, st.AckedAhead[spool.Readings], "the cursor passed everything acknowledged ahead")
	assert.Equal(t, map[spool.Stream]int{}, st.Live)
	t.Logf("%d batches, %d readings stored during the drain", len(batches), len(stored))
}

// A drain stopped halfway, after readings stored during it went ahead of the backlog,
// resumes from the persisted cursor in a new process: the readings the first run
// confirmed ahead go again (the cloud drops them), nothing is lost, and the cursor ends
// at the last reading.
func TestDrainRestartsMidway(t *testing.T) {
	path := t.TempDir() + "/agent.db"
	s1 := openStore(t, path)
	cloud := newCloud(t, nil)
	initial := addReadings(t, s1, 20000)
	n := initial[len(initial)-1].Seq

	// The first run: readings stored during requests 3 and 6 go ahead; request 9 fails.
	drain := planDuring(t, cloud, s1, nil, 9, drainPlan{readings: func(i int) int {
		if i == 3 || i == 6 {
			return 5
		}
		return 0
	}})
	cloud.push(func(w http.ResponseWriter, r *http.Request) bool {
		discard(r)
		refuse(w, http.StatusServiceUnavailable, wire.Error{Error: "database down"})
		return true
	})
	u1 := newUplink(t, s1, cloud, nil, Options{BatchMax: 500})
	timer := useFakeTimer(u1) // no retry: the failure ends the run
	stop1 := start(t, u1)
	timer.next(t)
	ahead := u1.Status().AckedAhead[spool.Readings]
	stop1()
	mid := s1.Cursor(spool.Readings)
	require.NoError(t, s1.Close())

	assert.Greater(t, mid, uint64(0), "the first batches moved the cursor")
	assert.Less(t, mid, n, "the drain stopped halfway")
	var fresh []uint64
	for _, ev := range drain.events() {
		fresh = append(fresh, ev.seqs...)
	}
	require.Len(t, fresh, 10)
	inCloud := cloud.seqs("readings")
	for _, seq := range fresh {
		assert.Contains(t, inCloud, seq, "reading %d stored during the drain went ahead of the backlog", seq)
	}
	// Acknowledged ahead: the newest readings at the start, those stored during the drain,
	// and the backlog batches that may have been in flight behind the one refused.
	var possible []uint64
	for behind := range uint64(DefaultInFlight) {
		possible = append(possible, DefaultLiveReadings+10+behind*500)
	}
	assert.Contains(t, possible, ahead)

	// The second run, on the store opened again: the memory of what went ahead is gone.
	s2 := openStore(t, path)
	assert.Equal(t, mid, s2.Cursor(spool.Readings), "the cursor persisted")
	before := len(cloud.batchLog())
	more := planDuring(t, cloud, s2, nil, 10, drainPlan{readings: func(i int) int { return 2 * (i % 2) }})
	u2 := newUplink(t, s2, cloud, nil, Options{BatchMax: 500})
	start(t, u2)
	require.NoError(t, flush(t, u2))

	batches := cloud.batchLog()[before:]
	require.GreaterOrEqual(t, len(batches), 2)
	lowest := map[uint64]bool{} // the lowest reading of each backlog batch
	for _, b := range batches[1:] {
		var lo uint64
		for _, k := range b {
			if k.stream == "readings" && (lo == 0 || k.seq < lo) {
				lo = k.seq
			}
		}
		lowest[lo] = true
	}
	assert.True(t, lowest[mid+1], "the backlog resumed at the persisted cursor %d", mid)
	last := lastSeq(t, s2, spool.Readings)
	assert.Equal(t, span(1, last), cloud.seqs("readings"), "every reading is in the cloud")
	assert.Equal(t, last, s2.Cursor(spool.Readings))
	assert.Equal(t, int(ahead), cloud.duplicates(), "only what the first run confirmed ahead went twice")
	assert.NotEmpty(t, more.events())
	assert.Zero(t, u2.Status().AckedAhead[spool.Readings])
}

// Under a byte budget, readings stored during the drain ride with the backlog while the
// budget lasts; when it holds the backlog they stop with it, and alerts still go.
func TestDrainBudgetHoldsNewReadingsToo(t *testing.T) {
	s := openStore(t, "")
	cloud := newCloud(t, nil)
	alerts := newAlerts(t, s)
	addReadings(t, s, 6000)
	drain := planDuring(t, cloud, s, alerts, 100, drainPlan{readings: func(i int) int { return min(i, 1) }})
	clk := testclock.New(t0)
	u := newUplink(t, s, cloud, alerts, Options{DailyBytes: 16 << 10, Now: clk.Now, BatchMax: 250})
	start(t, u)
	require.ErrorIs(t, flush(t, u), ErrBudgetExhausted)

	batches := cloud.batchLog()
	arrival := arrivedIn(batches)
	events := drain.events()
	require.NotEmpty(t, events)
	for _, ev := range events {
		got, ok := arrival[recKey{"readings", ev.seqs[0]}]
		if ev.before+1 < len(batches) {
			assert.True(t, ok && got == ev.before+1, "reading %d stored during request %d went with the next batch (%d, %v)",
				ev.seqs[0], ev.request, got, ok)
		} else {
			assert.False(t, ok, "reading %d stored during the last batch waits with the backlog", ev.seqs[0])
		}
	}
	inCloud := len(cloud.seqs("readings"))
	assert.Less(t, inCloud, int(lastSeq(t, s, spool.Readings)), "the budget held the backlog")
	t.Logf("%d batches before the budget held the backlog, %d readings stored meanwhile", len(batches), len(events))
	cloud.mu.Lock()
	cloud.script = nil // nothing more is stored while the cloud answers
	cloud.mu.Unlock()

	raise(t, alerts, "do-low")
	addReadings(t, s, 5)
	require.ErrorIs(t, flush(t, u), ErrBudgetExhausted)
	assert.Equal(t, []uint64{1}, cloud.seqs("alerts"), "the alert went")
	assert.Len(t, cloud.seqs("readings"), inCloud, "no reading went over the budget")
}

package e2e

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/pgtest"
)

// newRand returns a generator seeded from the clock; the seed is logged so that a failing
// run can be replayed.
func newRand(t *testing.T) (*rand.Rand, uint64) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed>>1)), seed
}

// between returns a random duration in [lo, hi).
func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// The cloud is killed with SIGKILL several times while readings stream in and batches are
// in flight, and started again: every acknowledged reading is in the database once.
func TestCloudKilledMidStream(t *testing.T) {
	n, kills := scale(4000, 1500), scale(4, 2)
	rng, _ := newRand(t)
	c := newCloud(t, pgtest.New(t))
	c.serve.Start(t)
	a := newAgent(t, c.URL(), c.TokenFile, agentOptions{BatchMax: 200})
	a.Start(t)

	pub := startPublishing(t, a, uniqueValues(1000, n), pubOptions{Window: 4, Pace: 2 * time.Millisecond})
	for k := range kills {
		prev := a.queue(t).LastAckedSeq
		// Forwarding is under way: the cloud has acknowledged something since it (re)started.
		q := a.waitQueue(t, "the cloud to acknowledge new readings", func(q queue) bool { return q.LastAckedSeq > prev })
		time.Sleep(between(rng, 0, 300*time.Millisecond))
		c.serve.Kill(t)
		t.Logf("kill %d: cloud killed after the agent saw %d readings acknowledged; publishing done: %v",
			k+1, q.LastAckedSeq, pub.finished())
		time.Sleep(between(rng, 0, 300*time.Millisecond))
		c.serve.Start(t)
	}
	acked := pub.mustWait(t, n)
	requireExactlyOnce(t, c, a, checkOptions{Acked: acked, OnlyAcked: true})
	t.Logf("cloud since its last start: %+v", c.stats(t))
}

// PostgreSQL crashes (pg_ctl stop -m immediate) while readings stream in, and comes back,
// while ph-cloud keeps running: /health goes to 503 and back to 200 without a restart of
// the service, and every acknowledged reading is in the database once.
func TestDatabaseCrashMidStream(t *testing.T) {
	n, crashes := scale(3000, 1500), scale(2, 1)
	srv := pgtest.Start(t)
	c := newCloud(t, srv.CreateDB(t))
	c.serve.Start(t)
	a := newAgent(t, c.URL(), c.TokenFile, agentOptions{BatchMax: 200})
	a.Start(t)

	pub := startPublishing(t, a, uniqueValues(1000, n), pubOptions{Window: 4, Pace: 2 * time.Millisecond})
	for k := range crashes {
		prev := a.queue(t).LastAckedSeq
		a.waitQueue(t, "the cloud to acknowledge new readings", func(q queue) bool { return q.LastAckedSeq > prev })
		require.NoError(t, srv.Stop("immediate"))
		c.waitHealth(t, http.StatusServiceUnavailable, guard)
		down := a.waitQueue(t, "a failed attempt while the database is down", func(q queue) bool { return q.ConsecutiveFailures > 0 })
		t.Logf("crash %d: database down with %d readings acknowledged; the agent saw: %s", k+1, down.LastAckedSeq, down.LastError)
		require.NoError(t, srv.Start())
		c.waitHealth(t, http.StatusOK, guard)
	}
	acked := pub.mustWait(t, n)
	requireExactlyOnce(t, c, a, checkOptions{Acked: acked, OnlyAcked: true})
	t.Logf("cloud: %+v", c.stats(t))
	assert.True(t, c.serve.Running(), "ph-cloud should have kept running through the database crashes")
	assert.Equal(t, 1, c.serve.Starts(), "ph-cloud should not have been restarted")
}

// The link between the agent and the cloud delays, cuts and resets connections in both
// directions (requests cut mid-body, answers lost after the cloud stored the batch,
// answers that never come): every acknowledged reading is in the database once.
func TestFlakyLink(t *testing.T) {
	n := scale(4000, 1500)
	_, seed := newRand(t)
	c := newCloud(t, pgtest.New(t))
	c.serve.Start(t)
	proxy := startProxy(t, c.Listen, seed, scale(10, 5))
	// A short request timeout, so that a stalled answer costs a second, not thirty.
	a := newAgent(t, proxy.URL(), c.TokenFile, agentOptions{BatchMax: 200, RequestTimeout: time.Second})
	a.Start(t)

	acked := publishAll(t, a, uniqueValues(1000, n), pubOptions{Window: 4, Pace: 2 * time.Millisecond})
	requireExactlyOnce(t, c, a, checkOptions{Acked: acked, OnlyAcked: true})
	struck := proxy.Struck()
	st := c.stats(t)
	t.Logf("proxy: %v; cloud: %+v", struck, st)
	for f := cutUp; f < numFaults; f++ {
		assert.Positive(t, struck[f.String()], "the %s fault never struck: the test did not exercise it (%v)", f, struck)
	}
	// An answer lost on the way back belongs to a batch the cloud had stored: its records
	// came again.
	assert.Positive(t, st.Duplicates, "the cloud never received a record twice: resends were not exercised")
}

// The agent is killed with SIGKILL while it forwards a backlog, and started again: it
// resumes from its persisted cursor, what it sends again (the batch in flight, readings
// confirmed through the live lane) adds no rows, and nothing is missing.
func TestAgentKilledMidForwarding(t *testing.T) {
	n, kills := scale(2000, 1000), scale(4, 2)
	rng, _ := newRand(t)
	c := newCloud(t, pgtest.New(t)) // not serving yet: the backlog builds up
	// Small batches make the drain long enough to be interrupted.
	a := newAgent(t, c.URL(), c.TokenFile, agentOptions{BatchMax: 50})
	a.Start(t)
	var acked []float64
	next := 1000
	publishChunk := func() {
		vs := uniqueValues(next, n)
		next += n
		publishBulk(t, a, vs, 100)
		acked = append(acked, vs...)
	}
	publishChunk()
	c.serve.Start(t)

	interrupted := 0
	for k := range kills {
		prev := a.queue(t).LastAckedSeq
		q := a.waitQueue(t, "the cloud to acknowledge new readings", func(q queue) bool { return q.LastAckedSeq > prev })
		time.Sleep(between(rng, 0, 100*time.Millisecond))
		a.Kill(t)
		if !q.drained() {
			interrupted++
		}
		t.Logf("kill %d: agent killed; its last queue: backlog %d, cursor %d of %d", k+1, q.Backlog, q.LastAckedSeq, q.lastSeq("readings"))
		a.Start(t)
		publishChunk() // more backlog, and readings for the live lane
	}
	require.Positive(t, interrupted, "no kill struck while a backlog was being forwarded: the test proved nothing")
	requireExactlyOnce(t, c, a, checkOptions{Acked: acked, OnlyAcked: true})
	// A restarted agent no longer knows what its live lane had confirmed above the cursor,
	// and sends it again.
	st := c.stats(t)
	t.Logf("cloud: %+v", st)
	assert.Positive(t, st.Duplicates, "the cloud never received a record twice: resends after a restart were not exercised")
}

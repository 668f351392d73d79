package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/internal/pahotest"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Kill -9 at random instants while eight devices stream readings at QoS 1: every reading
// that got its PUBACK must be in the database afterwards, and the database must pass
// bbolt's integrity check without being quarantined. Every fourth restart is also killed
// once while it starts up (opening, checking and preparing the file), before it is ready.
//
// Each reading carries a unique integer conductivity value (the physical range is
// 0–200000), so the stored values say exactly which publishes were stored. A reading may
// be stored more than once: a publish can be committed and the agent killed before its
// PUBACK left, and a device would then send it again (these clients do not, but the check
// allows it), so the promise checked is "at least once".
func TestKillNineLosesNoAcknowledgedReading(t *testing.T) {
	const (
		publishers = 8
		window     = 16 // QoS 1 publishes in flight per client
		maxValue   = 200000
	)
	cycles := 20
	if testing.Short() {
		cycles = 3
	}
	if s := os.Getenv("PH_E2E_KILL_CYCLES"); s != "" { // a longer soak on demand
		n, err := strconv.Atoi(s)
		require.NoError(t, err, "PH_E2E_KILL_CYCLES")
		cycles = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))

	// 64 MiB holds every reading of the test many times over: no eviction may blur the
	// count.
	cfg := newConfig(t, 64<<20)
	agent := startAgent(t, cfg)
	topic := cfg.Topic("conductivity")

	var (
		next  atomic.Int64 // the last value handed out
		acked []int64
	)
	begin := time.Now()
	startupKills := 0
	for cycle := range cycles {
		if cycle > 0 && cycle%4 == 0 {
			agent.Launch(t)
			time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
			agent.Kill(t)
			startupKills++
		}
		if cycle > 0 {
			agent.Start(t)
		}
		clients := make([]pahov3.Client, publishers)
		for i := range clients {
			clients[i] = pahotest.Connect(t, cfg.Listen, "e2e", guard)
		}
		ctx, stopPublishing := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		got := make([][]int64, publishers)
		for i, c := range clients {
			wg.Go(func() { got[i] = stream(ctx, c, topic, window, &next, maxValue) })
		}
		delay := time.Duration(50+rng.IntN(351)) * time.Millisecond
		time.Sleep(delay)
		agent.Kill(t)
		stopPublishing()
		wg.Wait()
		for _, c := range clients {
			pahotest.Disconnect(c)
		}
		n := 0
		for _, g := range got {
			acked = append(acked, g...)
			n += len(g)
		}
		t.Logf("cycle %d: killed after %v, %d readings acknowledged (values handed out so far: %d)",
			cycle+1, delay, n, next.Load())
		require.Less(t, next.Load(), int64(maxValue), "ran out of unique values in the physical range")
	}
	t.Logf("%d kill cycles while publishing and %d during start-up in %v; %d readings acknowledged, %d published",
		cycles, startupKills, time.Since(begin).Round(time.Millisecond), len(acked), next.Load())
	require.NotEmpty(t, acked, "no publish was ever acknowledged: the test proves nothing")

	// A second opinion first, on the file exactly as the last kill left it: bbolt's own
	// check on a read-only handle.
	assertBoltCheck(t, cfg.DBPath())

	quarantined, err := filepath.Glob(cfg.DBPath() + ".corrupt-*")
	require.NoError(t, err)
	assert.Empty(t, quarantined, "the agent quarantined its database during the cycles")

	sp, err := spool.Open(spool.Options{Path: cfg.DBPath(), MaxBytes: cfg.MaxBytes})
	require.NoError(t, err, "open the database the agent left")
	defer sp.Close()
	assert.Empty(t, sp.Quarantined(), "spool.Open quarantined the database")
	st := sp.Stats()
	assert.Equal(t, spool.Evicted{}, st.Evicted, "nothing may have been evicted")
	rs, err := sp.Readings(spool.Query{Param: telemetry.Conductivity, Limit: 1 << 30})
	require.NoError(t, err)

	// Readings come newest first: seqs must strictly decrease.
	for i := 1; i < len(rs); i++ {
		if rs[i].Seq >= rs[i-1].Seq {
			t.Fatalf("seqs not strictly increasing: seq %d stored before seq %d", rs[i].Seq, rs[i-1].Seq)
		}
	}
	count := map[int64]int{}
	for _, r := range rs {
		v := int64(r.Value)
		require.Equal(t, float64(v), r.Value, "seq %d holds %v, which no device sent", r.Seq, r.Value)
		require.True(t, v >= 1 && v <= next.Load(), "seq %d holds %v, which no device sent", r.Seq, r.Value)
		count[v]++
	}
	var missing []int64
	isAcked := make(map[int64]bool, len(acked))
	for _, v := range acked {
		isAcked[v] = true
		if count[v] == 0 {
			missing = append(missing, v)
		}
	}
	slices.Sort(missing)
	duplicates, unacked := 0, 0
	for v, n := range count {
		duplicates += n - 1
		if !isAcked[v] {
			unacked++
		}
	}
	t.Logf("stored %d readings: %d distinct values, %d duplicates, %d stored without a PUBACK reaching the device",
		len(rs), len(count), duplicates, unacked)
	if len(missing) > 0 {
		t.Errorf("%d of %d acknowledged readings are missing from the database; the first: %v",
			len(missing), len(acked), missing[:min(len(missing), 20)])
	}
}

// stream publishes unique values on topic at QoS 1, keeping up to window publishes in
// flight, until ctx ends or the connection is lost, and returns the values whose PUBACK
// arrived. A publish counts as acknowledged only if its token completed without error:
// paho completes every pending token with an error when the connection is lost.
func stream(ctx context.Context, c pahov3.Client, topic string, window int, next *atomic.Int64, maxValue int64) []int64 {
	type pending struct {
		v   int64
		tok pahov3.Token
	}
	var acked []int64
	lost := false
	settle := func(p pending) {
		if p.tok.WaitTimeout(guard) && p.tok.Error() == nil {
			acked = append(acked, p.v)
			return
		}
		lost = true
	}
	var inflight []pending
	for ctx.Err() == nil && !lost && c.IsConnectionOpen() {
		v := next.Add(1)
		if v >= maxValue {
			break
		}
		tok := c.Publish(topic, 1, false, fmt.Sprintf(`{"value": %d, "unit": "uS/cm"}`, v))
		inflight = append(inflight, pending{v, tok})
		if len(inflight) == window {
			settle(inflight[0])
			inflight = inflight[1:]
		}
	}
	for _, p := range inflight {
		settle(p)
	}
	return acked
}

// assertBoltCheck opens the file read-only with bbolt and runs its consistency check.
func assertBoltCheck(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.NotZero(t, fi.Size(), "database file is empty")
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err, "bbolt cannot open the database")
	defer db.Close()
	var problems []error
	err = db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() { // drain: Check's goroutine must finish
			problems = append(problems, e)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Empty(t, problems, "bbolt's check found problems")
}

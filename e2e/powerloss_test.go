package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/lazyfs"
	"github.com/purehealth/purehealth/internal/lazyfs/lazyfstest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/internal/testproc"
)

// Power-loss settings: PH_POWERLOSS_CUTS is how many cuts (default powerLossCuts; `make
// powerloss` asks for 100 or more); PH_POWERLOSS_SUMMARY names a file that receives the
// summary line at the end, whatever the outcome.
const (
	envPowerLossCuts    = "PH_POWERLOSS_CUTS"
	envPowerLossSummary = "PH_POWERLOSS_SUMMARY"
	powerLossCuts       = 3
)

// The publishers of one life between two cuts: each a sensor of its own, a few QoS 1
// publishes in flight, paced so that a hundred lives stay inside conductivity's physical
// range of unique values.
const (
	plClients = 4
	plWindow  = 4
	plPace    = 5 * time.Millisecond
)

// The agent's buffer is on a lazy filesystem (package lazyfs) while devices publish at QoS
// 1 and the agent forwards to a real ph-cloud. At random instants the power is cut and
// the agent killed: what was not fsynced is lost (also a commit whose fdatasync the
// device was still doing: every mount's fsyncs take 0 to 3 ms), the latest write is
// mostly torn at a sector boundary, and a random share of the unsynced pages survives as
// if the kernel had written it back. The filesystem is mounted again and the agent
// started. About one cut in four strikes while the agent starts up (opening, checking
// and, the first time, creating its file).
//
// After each restart: the agent starts; bbolt's check passes on the file the cut left and
// nothing was quarantined; the agent holds readings 1..its last seq without a gap; every
// reading that got its PUBACK is in the agent's buffer or in the cloud's database; no
// acknowledged cursor (ph-agent queue, polled during each life) went back; every seq up to
// the readings cursor is in the cloud; and a seq the agent and the cloud both hold is the
// same reading (a lost commit must not have let a seq be given to another reading after
// the cloud took it). At the end the queue drains and the cloud holds what the agent
// holds, once.
func TestPowerLoss(t *testing.T) {
	cuts := powerLossCuts
	if s := os.Getenv(envPowerLossCuts); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, envPowerLossCuts)
		require.Positive(t, n, envPowerLossCuts)
		cuts = n
	}
	rng, seed := newRand(t)
	dir := testDir(t)
	pl := &powerLoss{
		t: t, seed: seed, backing: filepath.Join(dir, "disk"), mnt: filepath.Join(dir, "mnt"),
		cursors: map[string]uint64{}, lost: map[float64]bool{},
	}
	require.NoError(t, os.Mkdir(pl.backing, 0o700))
	require.NoError(t, os.Mkdir(pl.mnt, 0o700))
	pl.fsys = lazyfstest.Mount(t, pl.backing, pl.mnt, pl.options(rng)) // skips without FUSE
	// Registered before the agent's, so it runs after the agent is killed: the mount of
	// the moment can then go.
	t.Cleanup(func() {
		if err := pl.fsys.Unmount(); err != nil {
			t.Errorf("lazyfs: %v", err)
		}
	})
	t.Cleanup(pl.summarize)

	c := newCloud(t, pgtest.New(t))
	c.serve.Start(t)
	a := newAgent(t, c.URL(), c.TokenFile, agentOptions{BatchMax: 200, DataDir: filepath.Join(pl.mnt, "agent")})
	conn := dbConnect(t, c.DatabaseURL)
	next := 1000 // the first conductivity value of the next life
	begin := time.Now()
	for {
		if pl.cuts < cuts && rng.IntN(4) == 0 {
			a.Launch(t)
			time.Sleep(between(rng, 0, 150*time.Millisecond))
			pl.powerCut(a, rng, "during start-up")
		}
		a.Start(t)
		pl.check(a, conn)
		if pl.cuts >= cuts {
			break
		}

		pub := startPublishing(t, a, uniqueValues(next, 20000), pubOptions{Clients: plClients, Window: plWindow, Pace: plPace})
		life := between(rng, 50*time.Millisecond, 1500*time.Millisecond)
		pl.pollCursors(a, time.Now().Add(life))
		pl.powerCut(a, rng, fmt.Sprintf("after %v of publishing", life.Round(time.Millisecond)))
		acked, _ := pub.wait() // the connections were lost: the errors say so
		pl.acked = append(pl.acked, acked...)
		// Values are dealt round-robin; a connection may have sent a window beyond its
		// last acknowledged value, and those may be stored: never hand them out again.
		top := next
		for _, v := range acked {
			top = max(top, int(v))
		}
		next = top + plClients*(plWindow+1) + 1
		require.Less(t, next, 200000, "ran out of unique values in conductivity's physical range")
		t.Logf("cut %d: %d readings acknowledged in that life", pl.cuts, len(acked))
	}
	t.Logf("%d cuts in %v; %d readings acknowledged", pl.cuts, time.Since(begin).Round(time.Second), len(pl.acked))
	require.NotEmpty(t, pl.acked, "no publish was ever acknowledged: the test proves nothing")
	requireExactlyOnce(t, c, a, checkOptions{Acked: pl.acked})
}

// powerLoss is the state of TestPowerLoss across its cuts.
type powerLoss struct {
	t            *testing.T
	seed         uint64
	backing, mnt string
	fsys         *lazyfs.FS

	cuts    int
	acked   []float64         // conductivity values that got a PUBACK
	cursors map[string]uint64 // per stream, the highest cursor the agent reported
	lost    map[float64]bool  // acknowledged values found nowhere after a cut
	torn    int               // cuts that tore a write
	dirty   int               // cuts that found unsynced data
}

// options are those of the next mount: its fsyncs take 0 to 3 ms, so that a cut often
// strikes a commit whose fdatasync has not yet reached the disk.
func (pl *powerLoss) options(rng *rand.Rand) lazyfs.Options {
	return lazyfs.Options{FsyncDelay: time.Duration(rng.IntN(4)) * time.Millisecond}
}

// dbPath is the agent's buffer on the disk (the backing directory).
func (pl *powerLoss) dbPath() string { return filepath.Join(pl.backing, "agent", "agent.db") }

// powerCut cuts the power of the mount under the running agent and kills it, checks the
// file the cut left, and mounts again. Operations on the mount stall from the cut on, so
// the agent learns nothing of the cut before the kill is pending: the instant is the cut.
func (pl *powerLoss) powerCut(a *agent, rng *rand.Rand, when string) {
	t := pl.t
	t.Helper()
	pl.cuts++
	r, err := pl.fsys.Cut(lazyfs.Cut{
		Tear:      rng.IntN(4) != 0,
		Writeback: rng.Float64(),
		Rand:      rand.New(rand.NewPCG(pl.seed, uint64(pl.cuts))),
		Stall:     true,
	})
	require.NoError(t, err, "cut %d", pl.cuts)
	a.Kill(t)
	require.NoError(t, pl.fsys.Unmount(), "cut %d", pl.cuts)
	if r.Torn != nil {
		pl.torn++
	}
	if r.DirtyPages > 0 {
		pl.dirty++
	}
	t.Logf("cut %d %s: %s", pl.cuts, when, r)
	if _, err := os.Stat(pl.dbPath()); err == nil {
		res := testproc.Run(t, guard, bboltBin(t), "check", pl.dbPath())
		assert.True(t, res.Code == 0 && strings.TrimSpace(res.Stdout) == "OK",
			"cut %d: `bbolt check` of the file the cut left exited %d:\n%s%s", pl.cuts, res.Code, res.Stdout, res.Stderr)
	}
	pl.fsys, err = lazyfs.Mount(pl.backing, pl.mnt, pl.options(rng))
	require.NoError(t, err, "mount again after cut %d", pl.cuts)
}

// bboltBin is bbolt's own command-line tool. Its check runs in a process of its own: a
// damaged file can make bbolt panic in a goroutine that no test could recover.
func bboltBin(t *testing.T) string {
	t.Helper()
	return bins.Binary(t, "bbolt", "go.etcd.io/bbolt/cmd/bbolt", false)
}

// pollCursors asks the running agent for its queue until deadline, recording the highest
// cursor of each stream: the agent reports a cursor once it is durable.
func (pl *powerLoss) pollCursors(a *agent, deadline time.Time) {
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(pl.t.Context(), guard)
		res, err := a.cli(ctx, "queue", "--json")
		cancel()
		var q queue
		if err == nil && res.Code == 0 && json.Unmarshal([]byte(res.Stdout), &q) == nil {
			for _, l := range q.Lanes {
				pl.cursors[l.Stream] = max(pl.cursors[l.Stream], l.Cursor)
			}
		}
		time.Sleep(min(100*time.Millisecond, time.Until(deadline)))
	}
}

// check compares the restarted agent and the cloud with what was acknowledged so far.
func (pl *powerLoss) check(a *agent, conn *pgx.Conn) {
	t := pl.t
	t.Helper()
	quarantined, err := filepath.Glob(pl.dbPath() + ".corrupt-*")
	require.NoError(t, err)
	assert.Empty(t, quarantined, "after cut %d the agent quarantined its database", pl.cuts)

	q := a.queue(t)
	for _, l := range q.Lanes {
		if prev := pl.cursors[l.Stream]; l.Cursor < prev {
			t.Errorf("after cut %d the %s cursor went back from %d to %d", pl.cuts, l.Stream, prev, l.Cursor)
		}
		pl.cursors[l.Stream] = max(pl.cursors[l.Stream], l.Cursor)
	}

	held := a.readings(t)
	slices.SortFunc(held, func(x, y agentReading) int { return int(x.Seq) - int(y.Seq) })
	for i, r := range held {
		if r.Seq != uint64(i+1) {
			t.Errorf("after cut %d the agent's readings skip from seq %d to %d", pl.cuts, i, r.Seq)
			break
		}
	}
	assert.Equal(t, q.lastSeq("readings"), uint64(len(held)), "after cut %d: the agent's last seq and its readings", pl.cuts)

	rows := dbReadings(t, conn)
	inCloud := make(map[int64]float64, len(rows))
	for _, r := range rows {
		inCloud[r.Seq] = r.Value
	}
	var missingBelow []int64
	for s := int64(1); s <= int64(q.LastAckedSeq); s++ {
		if _, ok := inCloud[s]; !ok {
			missingBelow = append(missingBelow, s)
		}
	}
	if len(missingBelow) > 0 {
		t.Errorf("after cut %d: %d seqs at or below the readings cursor %d are missing in the cloud; the first: %v",
			pl.cuts, len(missingBelow), q.LastAckedSeq, missingBelow[:min(len(missingBelow), 20)])
	}

	found := make(map[float64]bool, len(held)+len(rows))
	var reused []string
	for _, r := range held {
		found[r.Value] = true
		if v, ok := inCloud[int64(r.Seq)]; ok && v != r.Value {
			reused = append(reused, fmt.Sprintf("seq %d: agent %v, cloud %v", r.Seq, r.Value, v))
		}
	}
	if len(reused) > 0 {
		t.Errorf("after cut %d, %d seqs the cloud had taken name another reading at the agent; the first: %v",
			pl.cuts, len(reused), reused[:min(len(reused), 10)])
	}
	for _, r := range rows {
		found[r.Value] = true
	}
	var lost []float64
	for _, v := range pl.acked {
		if !found[v] && !pl.lost[v] {
			pl.lost[v] = true
			lost = append(lost, v)
		}
	}
	slices.Sort(lost)
	if len(lost) > 0 {
		t.Errorf("after cut %d: %d acknowledged readings (of %d so far) are neither at the agent nor in the cloud; the first: %v",
			pl.cuts, len(lost), len(pl.acked), lost[:min(len(lost), 20)])
	}
}

// summarize logs the summary line and writes it where PH_POWERLOSS_SUMMARY says.
func (pl *powerLoss) summarize() {
	line := fmt.Sprintf("powerloss: %d cuts, %d readings acked, %d lost", pl.cuts, len(pl.acked), len(pl.lost))
	pl.t.Logf("%d cuts found unsynced data, %d tore a write", pl.dirty, pl.torn)
	pl.t.Log(line)
	if p := os.Getenv(envPowerLossSummary); p != "" {
		if err := os.WriteFile(p, []byte(line+"\n"), 0o644); err != nil {
			pl.t.Errorf("write the summary: %v", err)
		}
	}
}

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/pgtest"
)

// Soak settings: PH_SOAK=week runs the whole week at one reading a minute per probe with
// faults every day (`make soak`); PH_SOAK_SUMMARY names a file that receives the summary
// line once the counts are made.
const (
	envSoak        = "PH_SOAK"
	envSoakSummary = "PH_SOAK_SUMMARY"
)

// The week's calendar: the probes' timestamps cover soakDays days ending a couple of hours
// before the test starts, and the agent is told to treat readings up to soakHorizon old as
// current (validation.max_past and the WQI freshness), or the whole week would be graded
// suspect and feed no index: the agent's own clock stays the real one.
const (
	soakDays    = 7
	soakHorizon = (soakDays + 1) * 24 * time.Hour
)

// soakSize is how densely the week is simulated.
type soakSize struct {
	name string
	// cadence is the simulated time between two readings of one probe.
	cadence time.Duration
	// faults lays out the week's faults.
	faults func(s *soak) []soakStep
}

// soakSizeFor picks the size: the week of `make soak` with PH_SOAK=week, otherwise the
// suite's: the same week with fewer readings and one fault of each kind (fewer readings
// still with -short).
func soakSizeFor(t *testing.T) soakSize {
	t.Helper()
	switch v := os.Getenv(envSoak); v {
	case "week":
		return soakSize{name: "week", cadence: time.Minute, faults: weekFaults}
	case "":
		if testing.Short() {
			return soakSize{name: "short", cadence: time.Hour, faults: suiteFaults}
		}
		return soakSize{name: "suite", cadence: 20 * time.Minute, faults: suiteFaults}
	default:
		t.Fatalf("%s=%q: want week or nothing", envSoak, v)
		return soakSize{}
	}
}

// TestSoak runs a station through a compressed week: real ph-agent and ph-cloud processes
// and a private PostgreSQL, while six probes publish a river's week at QoS 1 with explicit
// timestamps (one reading per probe every cadence of simulated time, as fast as the agent
// acknowledges them), and ph-cloud reads CPCB's river data from `ph-sim ogd` (data.gov.in)
// and satellite statistics from `ph-sim stats` (Copernicus) every second. The compression
// is in the timestamps and in how densely the faults follow each other; nobody's clock is
// faked. Faults, at their simulated instants:
//
//   - the probes' clocks step by ±1 h (NTP steps): their timestamps jump forward and back;
//   - the agent loses and regains its clock sync (its sync marker removed and restored,
//     also across a reboot): readings taken meanwhile must be flagged time_unsynced, and
//     those taken with a synced clock must not;
//   - ph-cloud is down for hours (SIGKILL or SIGTERM), the agent buffering meanwhile;
//   - PostgreSQL stops (fast or immediate) under a running ph-cloud and comes back;
//   - the agent restarts (SIGTERM, and SIGKILL with publishes in flight);
//   - the cloud's upstream sources fail: the government source answers 429 with
//     Retry-After, 5xx, nothing in time and malformed bodies, and stays away for hours;
//     the satellite source too, at other times; CPCB republishes its resource with a
//     corrected value (upstreamFaults). Each failure must show in /stats, and each source
//     must recover (consecutive failures back to 0).
//
// Then the counts, end to end. Every reading that got its PUBACK is in the cloud's
// measurements exactly once, with its sensor, value and timestamp; every alert transition
// and WQI point the agent recorded (read from its buffer after it stopped) is in
// alert_events and wqi_readings exactly once; every government value the OGD simulator
// served (before and after the correction) and every weekly satellite estimate its
// statistics give is in external_readings exactly once, a corrected value as a new
// revision of its observation. Lost is what was acknowledged, recorded or served but is
// absent; duplicated is every copy beyond the first of one natural identity (a reading's
// sensor, parameter and value, which no other reading of the week shares; a WQI point's
// time and value; a transition's alert, kind and time; a government value's parameter,
// time and value; an estimate's parameter and week), so that a copy under a new seq or
// revision counts too.
func TestSoak(t *testing.T) {
	size := soakSizeFor(t)
	rng, _ := newRand(t)
	begin := time.Now()
	srv := pgtest.Start(t)
	dir := testDir(t)
	s := &soak{
		t: t, rng: rng, db: srv, syncFile: filepath.Join(dir, "synchronized"),
		weekStart: begin.UTC().Truncate(time.Hour).Add(-soakDays*24*time.Hour - 2*time.Hour),
		cadence:   size.cadence,
	}
	require.NoError(t, os.WriteFile(s.syncFile, nil, 0o600), "the clock sync marker")
	s.c = newCloud(t, srv.CreateDB(t))
	s.up = startUpstreams(t, soakUpstreamOptions)
	s.c.readFrom(t, s.up)
	s.upstream = soakUpstream{ogdBefore: s.up.ogdServed(t), since: time.Now(),
		open: map[string]openFault{}, seen: map[string]*faultsSeen{}}
	s.c.serve.Start(t)
	s.a = newAgent(t, s.c.URL(), s.c.TokenFile, agentOptions{BatchMax: 200, SyncFile: s.syncFile, Horizon: soakHorizon})
	s.a.Start(t)
	s.connectProbes()

	steps := size.faults(s)
	t.Logf("soak (%s): %d days at one reading per probe every %v, %d probes, %d fault steps, week from %s",
		size.name, soakDays, size.cadence, len(soakRiver), len(steps), s.weekStart.Format(time.RFC3339))
	s.run(steps)
	published := time.Since(begin)

	f := s.count()
	line := fmt.Sprintf("soak: %d readings, %d lost, %d duplicated", f.readings, f.lost, f.duplicated)
	t.Logf("%s; published in %v, counted after %v", f.breakdown, published.Round(time.Second), time.Since(begin).Round(time.Second))
	t.Log(line)
	if p := os.Getenv(envSoakSummary); p != "" {
		require.NoError(t, os.WriteFile(p, []byte(line+"\n"), 0o644), "write the summary")
	}
	assert.Zero(t, f.lost, "records lost end to end: %s", f.breakdown)
	assert.Zero(t, f.duplicated, "records duplicated end to end: %s", f.breakdown)
}

// soakStep is one fault (or the end of one) at its simulated instant.
type soakStep struct {
	at   time.Duration // since the week began
	what string
	run  func(s *soak)
	// holds is +1 for a step that takes ph-cloud or PostgreSQL away and -1 for the step
	// that brings it back: the upstream sources' faults go where nothing is held, so that
	// /stats answers and a round can succeed when they end.
	holds int
}

// at is the simulated instant hh:mm on day.
func at(day, hh, mm int) time.Duration {
	return time.Duration(day)*24*time.Hour + time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute
}

// clockString writes a simulated instant as "day 2 14:05".
func clockString(d time.Duration) string {
	day := d / (24 * time.Hour)
	d -= day * 24 * time.Hour
	return fmt.Sprintf("day %d %02d:%02d", day, d/time.Hour, (d%time.Hour)/time.Minute)
}

// The steps, each a fault or its end. Those that end a fault wait until it was felt (the
// agent failed to reach the cloud, the cloud lost its database): a fault nobody noticed
// proves nothing.
func ntpStep(when, by time.Duration) soakStep {
	return soakStep{at: when, what: fmt.Sprintf("probe clocks step %+v (NTP)", by), run: func(s *soak) {
		s.offset += by
		s.ntpSteps++
	}}
}

// signal names how a process is stopped.
func signal(kill bool) string {
	if kill {
		return "SIGKILL"
	}
	return "SIGTERM"
}

func cloudOutage(from, to time.Duration, kill bool) []soakStep {
	return []soakStep{
		{at: from, what: "ph-cloud down (" + signal(kill) + ")", run: func(s *soak) { s.cloudDown(kill) }, holds: 1},
		{at: to, what: "ph-cloud up", run: func(s *soak) { s.cloudUp() }, holds: -1},
	}
}

func databaseRestart(from, to time.Duration, mode string) []soakStep {
	return []soakStep{
		{at: from, what: "PostgreSQL stopped (" + mode + ")", run: func(s *soak) { s.databaseDown(mode) }, holds: 1},
		{at: to, what: "PostgreSQL started", run: func(s *soak) { s.databaseUp() }, holds: -1},
	}
}

func agentRestart(when time.Duration, kill bool) soakStep {
	return soakStep{at: when, what: "ph-agent restarted (" + signal(kill) + ")", run: func(s *soak) { s.restartAgent(kill, false) }}
}

// unsynced loses the agent's clock sync: while running (NTP lost), or across a reboot
// after a power cut (a Pi without a real-time clock boots unsynced); resync restores it.
func unsynced(from, to time.Duration, reboot bool) []soakStep {
	what := "clock sync lost"
	if reboot {
		what = "power cut: ph-agent killed and booted without clock sync"
	}
	return []soakStep{
		{at: from, what: what, run: func(s *soak) { s.loseSync(reboot) }},
		{at: to, what: "clock synced (NTP)", run: func(s *soak) { s.resync() }},
	}
}

// suiteFaults is each kind of fault in each of its ways, spread over the week.
func suiteFaults(s *soak) []soakStep {
	steps := []soakStep{
		ntpStep(at(0, 7, 0), time.Hour),
		agentRestart(at(3, 6, 0), false),
		ntpStep(at(5, 10, 0), -time.Hour),
		agentRestart(at(5, 14, 0), true),
	}
	steps = append(steps, cloudOutage(at(1, 3, 0), at(1, 9, 0), true)...)
	steps = append(steps, cloudOutage(at(5, 20, 0), at(6, 1, 0), false)...)
	steps = append(steps, databaseRestart(at(2, 14, 0), at(2, 16, 0), "immediate")...)
	steps = append(steps, databaseRestart(at(6, 12, 0), at(6, 13, 0), "fast")...)
	steps = append(steps, unsynced(at(4, 2, 0), at(4, 5, 0), true)...)
	steps = append(steps, unsynced(at(6, 3, 0), at(6, 7, 0), false)...)
	return append(steps, upstreamFaults(s, steps, false)...)
}

// weekNTP are the probes' clock steps of successive days: their clocks go an hour fast,
// right, an hour slow, right again, and so on.
var weekNTP = [...]time.Duration{time.Hour, -time.Hour, -time.Hour, time.Hour}

// weekFaults gives every day its faults, at random instants: a cloud outage of 1 to 8
// hours in the first half of the day, a PostgreSQL restart in the second half (so that
// ph-cloud never has to start without its database, which it refuses), an agent restart,
// an NTP step of the probes' clocks (weekNTP), and from the second day on a loss of clock
// sync for 1 to 6 hours, across a reboot every other day.
func weekFaults(s *soak) []soakStep {
	rng := s.rng
	instant := func(day int, from, to time.Duration) time.Duration {
		return at(day, 0, 0) + (from + time.Duration(rng.Int64N(int64(to-from)))).Truncate(time.Minute)
	}
	var steps []soakStep
	for day := range soakDays {
		dur := time.Duration(1+rng.IntN(8)) * time.Hour
		start := instant(day, 0, 12*time.Hour-dur)
		steps = append(steps, cloudOutage(start, start+dur, day%2 == 0)...)
		start = instant(day, 12*time.Hour, 23*time.Hour)
		mode := "immediate"
		if day%2 == 0 {
			mode = "fast"
		}
		steps = append(steps, databaseRestart(start, start+time.Duration(5+rng.IntN(40))*time.Minute, mode)...)
		steps = append(steps, agentRestart(instant(day, 0, 24*time.Hour), day%2 == 1))
		steps = append(steps, ntpStep(instant(day, 0, 24*time.Hour), weekNTP[day%len(weekNTP)]))
		if day > 0 {
			start = instant(day, 0, 18*time.Hour)
			steps = append(steps, unsynced(start, start+time.Duration(1+rng.IntN(6))*time.Hour, day%2 == 1)...)
		}
	}
	return append(steps, upstreamFaults(s, steps, true)...)
}

// describeSteps lists steps for the log.
func describeSteps(steps []soakStep) string {
	var b strings.Builder
	for _, st := range steps {
		fmt.Fprintf(&b, "\n  %s  %s", clockString(st.at), st.what)
	}
	return b.String()
}

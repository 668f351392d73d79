package e2e

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The soak's upstream sources: ph-cloud reads the government resource and the satellite
// statistics from the simulators all week (a round a second), while the steps below make
// them fail; the count then looks for every value they served in external_readings.

// soakUpstreamOptions are the simulators and sources of the soak. The satellite looks back
// half a year so that its estimates include dry-season weeks whatever the date: in the
// monsoon every scene is too cloudy to count.
var soakUpstreamOptions = upstreamOptions{Months: 12, Interval: time.Second, Timeout: time.Second,
	Lookback: 26 * 7 * 24 * time.Hour}

// upstreamFault is one way an upstream simulator misbehaves: kind as /_sim/fault names it
// (429, 500, 502, 503, slow, malformed) for count requests; count 0 is every request
// until the fault ends: the service is away.
type upstreamFault struct {
	kind  string
	count int
}

// Each request of the cloud's sources is tried twice (cloud.yaml.tmpl), so a fault given
// to two requests fails one.
const attempts = 2

// The faults the steps give. A service away answers every request with its error until
// the fault ends; the others fail one request (both its attempts).
func rateLimited() upstreamFault         { return upstreamFault{"429", attempts} }
func serverError(code int) upstreamFault { return upstreamFault{strconv.Itoa(code), attempts} }
func timeout() upstreamFault             { return upstreamFault{"slow", attempts} }
func malformed() upstreamFault           { return upstreamFault{"malformed", attempts} }
func away(code int) upstreamFault        { return upstreamFault{strconv.Itoa(code), 0} }

// serverErrors fails one request with one 5xx after the other, an attempt each.
func serverErrors(codes ...int) []upstreamFault {
	out := make([]upstreamFault, len(codes))
	for i, c := range codes {
		out[i] = upstreamFault{strconv.Itoa(c), 1}
	}
	return out
}

func (f upstreamFault) String() string {
	if f.lasting() {
		return faultKinds[f.kind].text + " to every request"
	}
	return faultKinds[f.kind].text
}

// lasting: the fault lasts until its end step rather than for a number of requests.
func (f upstreamFault) lasting() bool { return f.count == 0 }

// requests is how many requests the fault is queued for.
func (f upstreamFault) requests() int { return cmp.Or(f.count, maxFaultCount) }

// shows says whether a source's error names the fault.
func (f upstreamFault) shows(err string) bool { return strings.Contains(err, faultKinds[f.kind].shows) }

// maxFaultCount is the most requests one queued fault may take (the simulators' limit):
// at a round a second, hours of real time.
const maxFaultCount = 10000

// faultKinds are the faults /_sim/fault knows: what each looks like, and what the cloud's
// error says of it in /stats (an answer's status as "<code> <status text>").
var faultKinds = map[string]struct{ text, shows string }{
	"429":       {"answers 429 with Retry-After", "429 Too Many Requests"},
	"500":       {"answers 500", "500 Internal Server Error"},
	"502":       {"answers 502 from its gateway", "502 Bad Gateway"},
	"503":       {"answers 503", "503 Service Unavailable"},
	"slow":      {"does not answer in time", "deadline exceeded"},
	"malformed": {"serves bodies cut in half", "malformed response"},
}

// apiPath is where a source's simulator serves the data the faults hit: the resource, and
// the statistics (the satellite's token, valid for ten minutes, is left alone).
func apiPath(source string) string {
	if source == satSource {
		return "/api/v1/statistics"
	}
	return "/resource/"
}

// upstreamOutage makes source's simulator misbehave from from to to, in the faults'
// order. The end waits until the fault was felt — its requests served and a round failed,
// in /stats; for a service away, two rounds in a row — and clears what is left. That the
// source recovers (a round succeeds, consecutive failures back to 0) is awaited before
// its next fault, before ph-cloud or PostgreSQL goes away (a restarted ph-cloud counts
// from 0), and before the count: meanwhile the week goes on.
func upstreamOutage(from, to time.Duration, source string, faults ...upstreamFault) []soakStep {
	texts := make([]string, len(faults))
	for i, f := range faults {
		texts[i] = f.String()
	}
	return []soakStep{
		{at: from, what: source + " " + strings.Join(texts, ", then "), run: func(s *soak) { s.upstreamDown(source, faults) }},
		{at: to, what: source + " answers again", run: func(s *soak) { s.upstreamUp(source) }},
	}
}

// revision republishes the government resource with a corrected value at from, and waits
// at to until the cloud has stored it as a revision.
func revision(from, to time.Duration) []soakStep {
	return []soakStep{
		{at: from, what: "CPCB republishes its resource with a corrected BOD", run: func(s *soak) { s.revise() }},
		{at: to, what: "the corrected BOD stored", run: func(s *soak) { s.revised() }},
	}
}

// soakUpstream is what the soak knows of its upstream sources.
type soakUpstream struct {
	// ogdBefore are the government values served before any revision.
	ogdBefore []apiID
	// since is when ph-cloud first started: the satellite's first round looks back from then.
	since time.Time
	// open is each source's fault from its beginning until the source has recovered.
	open map[string]openFault
	seen map[string]*faultsSeen
	// revisions counts the republications of the government resource; revisedBefore is
	// the source's /stats when the last one was made.
	revisions     int
	revisedBefore *sourceStats
}

// openFault is a fault of one source and its /stats when it began and when it was felt
// (nil while the fault lasts).
type openFault struct {
	faults []upstreamFault
	before sourceStats
	felt   *sourceStats
}

// faultsSeen is what /stats showed of one source's faults.
type faultsSeen struct {
	faults              int
	failed, rateLimited int64 // rounds failed and 429 answers, over the faults
	maxConsecutive      int64
}

func (u *soakUpstream) seenOf(source string) *faultsSeen {
	if u.seen[source] == nil {
		u.seen[source] = &faultsSeen{}
	}
	return u.seen[source]
}

// upstreamDown queues the faults at source's simulator.
func (s *soak) upstreamDown(source string, faults []upstreamFault) {
	t := s.t
	require.True(t, s.cloudRunning && s.dbRunning, "an upstream fault must begin while ph-cloud and PostgreSQL are up")
	s.upstreamRecovered(source)
	_, busy := s.upstream.open[source]
	require.False(t, busy, "%s: a fault begins while another lasts", source)
	before := s.c.upstreamStats(t)[source]
	for _, f := range faults {
		s.up.queueFault(t, source, f.kind, f.requests(), apiPath(source))
	}
	s.upstream.open[source] = openFault{faults: faults, before: before}
}

// upstreamUp ends source's fault once it was felt.
func (s *soak) upstreamUp(source string) {
	t := s.t
	o, ok := s.upstream.open[source]
	require.True(t, ok && o.felt == nil, "%s answers again without a fault", source)
	require.True(t, s.cloudRunning && s.dbRunning, "an upstream fault must end while ph-cloud and PostgreSQL are up")
	lasting := slices.ContainsFunc(o.faults, upstreamFault.lasting)
	var felt sourceStats
	named := func(err string) bool {
		return slices.ContainsFunc(o.faults, func(f upstreamFault) bool { return f.shows(err) })
	}
	waitFor(t, source+" failing in /stats, its last error naming the fault", func() bool {
		felt = s.c.upstreamStats(t)[source]
		if !named(felt.LastError) {
			return false
		}
		if lasting {
			return felt.ConsecutiveFailures >= 2
		}
		return felt.Failures > o.before.Failures && s.up.queuedFaults(t, source) == 0
	}, func() string { return fmt.Sprintf("%+v; before the fault: %+v", felt, o.before) })
	if slices.Contains(o.faults, rateLimited()) {
		assert.GreaterOrEqual(t, felt.HTTP.RateLimited-o.before.HTTP.RateLimited, int64(attempts),
			"%s: /stats should count the 429 answers", source)
	}
	s.up.clearFaults(t, source)
	o.felt = &felt
	s.upstream.open[source] = o
}

// upstreamRecovered waits until the sources whose fault has ended succeed again (those
// named, or all), and notes what /stats showed of the fault.
func (s *soak) upstreamRecovered(sources ...string) {
	t := s.t
	for _, source := range slices.Sorted(maps.Keys(s.upstream.open)) {
		o := s.upstream.open[source]
		if o.felt == nil || (len(sources) > 0 && !slices.Contains(sources, source)) {
			continue
		}
		after := s.c.waitSource(t, source, "a round succeeding after the fault", func(st sourceStats) bool {
			return st.ConsecutiveFailures == 0
		})
		delete(s.upstream.open, source)
		seen := s.upstream.seenOf(source)
		seen.faults++
		seen.failed += after.Failures - o.before.Failures
		seen.rateLimited += after.HTTP.RateLimited - o.before.HTTP.RateLimited
		seen.maxConsecutive = max(seen.maxConsecutive, o.felt.ConsecutiveFailures)
	}
}

// revise has the OGD simulator republish its resource with the newest Pune BOD corrected.
func (s *soak) revise() {
	t := s.t
	require.True(t, s.cloudRunning && s.dbRunning, "the resource must be republished while ph-cloud and PostgreSQL are up")
	s.upstreamRecovered(govSource)
	before := s.c.upstreamStats(t)[govSource]
	simCall(t, http.MethodPost, s.up.OGDBase+"/_sim/revise", nil, http.StatusNoContent)
	s.upstream.revisedBefore = &before
	s.upstream.revisions++
}

// revised waits until the cloud has stored the correction.
func (s *soak) revised() {
	t := s.t
	before := s.upstream.revisedBefore
	require.NotNil(t, before, "the corrected BOD stored, but the resource was not republished")
	require.True(t, s.cloudRunning && s.dbRunning, "the correction must be awaited while ph-cloud and PostgreSQL are up")
	o, busy := s.upstream.open[govSource]
	require.False(t, busy && o.felt == nil, "the correction must be awaited while its source answers")
	s.c.waitSource(t, govSource, "the corrected value stored as a revision", func(st sourceStats) bool {
		return st.Revised > before.Revised
	})
	s.upstream.revisedBefore = nil
}

// upstreamFaults are the faults of the cloud's upstream sources: the government source
// answers 429 with Retry-After, 500, 502 and 503, no answer in time, malformed bodies, and
// stays away for simulated hours; the satellite source rate-limits, serves garbage and
// stays away at other times; and CPCB republishes its resource with a corrected value,
// which must become a revision and not a duplicate. Each fault lasts from one simulated
// instant to another, at instants where the other steps hold neither ph-cloud nor
// PostgreSQL (an upstream fault's end needs /stats, and a round that can succeed). In the
// suite each kind comes once at fixed instants; in the week every day has a government
// fault of the next kind at a random instant, every other day a satellite fault too.
func upstreamFaults(s *soak, others []soakStep, week bool) []soakStep {
	held := heldSpans(others)
	if !week {
		steps := slices.Concat(
			upstreamOutage(at(0, 1, 0), at(1, 2, 0), govSource, rateLimited()),
			upstreamOutage(at(1, 10, 0), at(2, 13, 0), govSource, timeout()),
			upstreamOutage(at(1, 10, 0), at(2, 12, 0), satSource, away(502)),
			upstreamOutage(at(2, 17, 0), at(3, 10, 0), govSource, malformed()),
			revision(at(3, 11, 0), at(3, 22, 0)),
			upstreamOutage(at(3, 23, 0), at(5, 12, 0), govSource, append(serverErrors(500, 502), away(503))...),
			upstreamOutage(at(4, 4, 0), at(5, 18, 0), satSource, rateLimited(), malformed()),
		)
		// Each of them is a beginning and an end.
		for i := 0; i+1 < len(steps); i += 2 {
			require.False(s.t, overlaps(held, span{steps[i].at, steps[i+1].at}),
				"%q from %s to %s meets an outage of ph-cloud or PostgreSQL", steps[i].what, clockString(steps[i].at),
				clockString(steps[i+1].at))
		}
		return steps
	}
	rng := s.rng
	gov := [][]upstreamFault{{rateLimited()}, {serverError(500), serverError(502), serverError(503)}, {timeout()},
		{malformed()}, {away(503)}}
	sat := [][]upstreamFault{{away(502)}, {rateLimited(), malformed()}, {timeout(), serverError(503)}}
	first := rng.IntN(len(gov))
	var steps []soakStep
	var govSpans []span
	for day := range soakDays {
		faults := gov[(first+day)%len(gov)]
		shortest, longest := 2*time.Hour, 6*time.Hour
		if faults[0].lasting() {
			shortest, longest = 4*time.Hour, 12*time.Hour
		}
		w := s.window(held, day, shortest, longest)
		govSpans = append(govSpans, w)
		steps = append(steps, upstreamOutage(w.from, w.to, govSource, faults...)...)
		if day%2 == 1 {
			w := s.window(held, day, 2*time.Hour, 10*time.Hour)
			steps = append(steps, upstreamOutage(w.from, w.to, satSource, sat[(day/2)%len(sat)]...)...)
		}
	}
	// The republication, on a middle day while the government source answers.
	w := s.window(append(slices.Clone(held), govSpans...), 2+rng.IntN(3), 2*time.Hour, 6*time.Hour)
	return append(steps, revision(w.from, w.to)...)
}

// span is a stretch of the simulated week, [from, to).
type span struct{ from, to time.Duration }

// heldSpans are the stretches during which steps hold ph-cloud or PostgreSQL away.
func heldSpans(steps []soakStep) []span {
	sorted := slices.Clone(steps)
	slices.SortStableFunc(sorted, func(x, y soakStep) int { return int(x.at - y.at) })
	var out []span
	held := 0
	for _, st := range sorted {
		if st.holds == 0 {
			continue
		}
		if held == 0 {
			out = append(out, span{from: st.at})
		}
		held += st.holds
		if held == 0 {
			out[len(out)-1].to = st.at
		}
	}
	return out
}

// overlaps says whether w meets a held span or comes closer to one than heldMargin.
func overlaps(held []span, w span) bool {
	return slices.ContainsFunc(held, func(h span) bool { return w.from < h.to+heldMargin && w.to > h.from-heldMargin })
}

// heldMargin keeps upstream faults clear of the held spans, so that two steps never
// share one round of publishing.
const heldMargin = time.Hour

// window returns a random stretch of day, between shortest and longest, clear of the
// held spans.
func (s *soak) window(held []span, day int, shortest, longest time.Duration) span {
	rng := s.rng
	held = slices.SortedFunc(slices.Values(held), func(x, y span) int { return int(x.from - y.from) })
	var free []span
	from := at(day, 0, 0) + heldMargin
	end := at(day+1, 0, 0) - heldMargin
	for _, h := range held {
		if h.to+heldMargin <= from || h.from-heldMargin >= end {
			continue
		}
		if h.from-heldMargin-from >= shortest {
			free = append(free, span{from, h.from - heldMargin})
		}
		from = max(from, h.to+heldMargin)
	}
	if end-from >= shortest {
		free = append(free, span{from, end})
	}
	require.NotEmpty(s.t, free, "day %d has no %v clear of ph-cloud's and PostgreSQL's outages %v", day, shortest, held)
	f := free[rng.IntN(len(free))]
	length := shortest + randDuration(rng, min(longest, f.to-f.from)-shortest)
	start := (f.from + randDuration(rng, f.to-f.from-length)).Truncate(time.Minute)
	return span{start, start + length.Truncate(time.Minute)}
}

// randDuration is uniform in [0, d], whole minutes.
func randDuration(rng *rand.Rand, d time.Duration) time.Duration {
	return time.Duration(rng.Int64N(int64(d/time.Minute)+1)) * time.Minute
}

// upstreamServed is what the simulators serve once the week's faults are over.
type upstreamServed struct {
	ogd         []apiID // the government values, as republished
	sat         map[satID]float64
	first, last time.Time // the satellite's weeks are those of first to last
	stats       map[string]sourceStats
}

// readUpstream reads what the simulators serve now, noting each source's /stats first.
func (s *soak) readUpstream() upstreamServed {
	t := s.t
	s.upstreamRecovered()
	u := upstreamServed{stats: s.c.upstreamStats(t), first: s.upstream.since.Add(-soakUpstreamOptions.Lookback), last: time.Now()}
	u.ogd = s.up.ogdServed(t)
	u.sat = s.up.satelliteServed(t, u.first, u.last)
	return u
}

// externalRow is one row of external_readings.
type externalRow struct {
	Origin, Param string
	Time          time.Time
	Value         float64
	Revision      int
	Current       bool
}

// countUpstream waits until each source has read again since readUpstream, and counts
// the government values and satellite estimates in external_readings: each value served
// is a row once. A corrected value is a revision of its observation (same station,
// parameter and time), not a duplicate: the observation has one current row, with the
// value served last, and the earlier value stays as revision 1. The failures are counted
// from what /stats showed during the week.
func (s *soak) countUpstream(conn *pgx.Conn, served upstreamServed, f *soakFigures) {
	t := s.t
	for _, source := range []string{govSource, satSource} {
		s.c.waitSource(t, source, "two more rounds, the last one successful", func(st sourceStats) bool {
			return st.ConsecutiveFailures == 0 && st.Rounds >= served.stats[source].Rounds+2
		})
	}
	rows := queryRows[externalRow](t, conn, `SELECT origin, param, time, value, revision, current
		FROM external_readings WHERE station_id = $1 ORDER BY origin, param, time, revision`)

	// Government values: those served before the revisions and after, each once.
	var wantA []apiID
	known := map[apiID]bool{}
	for _, id := range slices.Concat(s.upstream.ogdBefore, served.ogd) {
		if !known[id] {
			known[id] = true
			wantA = append(wantA, id)
		}
	}
	type obsKey struct {
		param string
		at    int64
	}
	latest := map[obsKey]float64{}
	for _, id := range served.ogd {
		latest[obsKey{id.param, id.at}] = id.value
	}
	var haveA []apiID
	var bad []string
	revisions := 0
	byObs := map[obsKey][]externalRow{}
	for _, r := range rows {
		if r.Origin != govSource {
			continue
		}
		k := obsKey{r.Param, r.Time.UnixMicro()}
		haveA = append(haveA, apiID{r.Param, k.at, r.Value})
		byObs[k] = append(byObs[k], r)
		if r.Revision > 1 {
			revisions++
		}
	}
	for k, rs := range byObs {
		current := 0
		for i, r := range rs {
			if r.Revision != i+1 {
				bad = append(bad, fmt.Sprintf("%s at %s: revisions %v, want 1..%d", k.param, rs[0].Time.UTC().Format(time.DateOnly), revisionsOf(rs), len(rs)))
				break
			}
			if r.Current {
				current++
				if v, ok := latest[k]; ok && v != r.Value {
					bad = append(bad, fmt.Sprintf("%s at %s: current value %v, served %v", k.param, r.Time.UTC().Format(time.DateOnly), r.Value, v))
				}
			}
		}
		if current != 1 {
			bad = append(bad, fmt.Sprintf("%s at %s: %d current revisions", k.param, rs[0].Time.UTC().Format(time.DateOnly), current))
		}
	}
	assert.Empty(t, bad, "every government observation should have one current revision, the value served last")
	assert.Equal(t, s.upstream.revisions, revisions, "each republication corrects one value: a revision each")
	lostA, dupA, inA := tally(wantA, haveA)
	phantoms(t, "government value", wantA, inA)

	// Satellite estimates: one per parameter and week, computed from what the simulator
	// serves (it serves the same for a week whenever asked, so nothing is revised).
	first, last := weekOf(served.first).UnixMicro(), weekOf(served.last).UnixMicro()
	var wantS, haveS []satID
	for id := range served.sat {
		wantS = append(wantS, id)
	}
	bad = bad[:0]
	for _, r := range rows {
		id := satID{r.Param, r.Time.UnixMicro()}
		if r.Origin != satSource || id.week < first || id.week > last {
			continue
		}
		haveS = append(haveS, id)
		if want, ok := served.sat[id]; ok && r.Current && math.Abs(r.Value-want) > 1e-9*max(1, math.Abs(want)) {
			bad = append(bad, fmt.Sprintf("%s week of %s: %v, the simulator's scenes give %v", r.Param,
				r.Time.UTC().Format(time.DateOnly), r.Value, want))
		}
	}
	assert.Empty(t, bad, "the satellite estimates should be those of the scenes served")
	require.NotEmpty(t, wantS, "half a year of satellite statistics gave no estimate")
	lostS, dupS, inS := tally(wantS, haveS)
	phantoms(t, "satellite estimate", wantS, inS)

	f.readings += len(wantA) + len(wantS)
	f.lost += lostA + lostS
	f.duplicated += dupA + dupS
	f.breakdown += fmt.Sprintf("; government values (%s): %d served, %d lost, %d duplicated, %d revised; "+
		"satellite estimates (%s): %d, %d lost, %d duplicated; upstream faults in /stats: %s, %s",
		govSource, len(wantA), lostA, dupA, revisions, satSource, len(wantS), lostS, dupS,
		s.upstream.describe(govSource), s.upstream.describe(satSource))
	for _, source := range []string{govSource, satSource} {
		seen := s.upstream.seenOf(source)
		assert.Positive(t, seen.failed, "%s: /stats showed no failed round in the week", source)
	}
}

func revisionsOf(rs []externalRow) []int {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = r.Revision
	}
	return out
}

// describe says what /stats showed of source's faults.
func (u *soakUpstream) describe(source string) string {
	seen := u.seenOf(source)
	return fmt.Sprintf("%s %d faults, %d failed rounds (at most %d in a row), %d answers 429", source, seen.faults,
		seen.failed, seen.maxConsecutive, seen.rateLimited)
}

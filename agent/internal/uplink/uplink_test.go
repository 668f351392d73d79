package uplink

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/internal/backoff"
	"github.com/purehealth/purehealth/internal/testclock"
	"github.com/purehealth/purehealth/shared/wire"
)

// Every record ends up in the cloud, the cursors end at the last seq, and a restarted
// uplink resumes from the persisted cursors, including after stopping halfway.
func TestExactlyOnceAndResume(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir+"/agent.db")
	cloud := newCloud(t, nil)
	alerts := newAlerts(t, s)
	rs := addReadings(t, s, 2500)
	raise(t, alerts, "a1")
	raise(t, alerts, "a2")
	for i := range 5 {
		addWQI(t, s, 5+float64(i)/2)
	}

	// The cloud fails after three batches: the first uplink stops halfway.
	u1 := newUplink(t, s, cloud, alerts, Options{BatchMax: 300})
	accepted := 0
	for range 3 {
		cloud.push(func(http.ResponseWriter, *http.Request) bool { accepted++; return false })
	}
	cloud.push(func(w http.ResponseWriter, r *http.Request) bool {
		discard(r)
		refuse(w, http.StatusServiceUnavailable, wire.Error{Error: "database down"})
		return true
	})
	stop1 := start(t, u1)
	require.Eventually(t, func() bool { return u1.Status().ConsecutiveFailures > 0 }, guard, time.Millisecond)
	stop1()
	mid := s.Cursor(spool.Readings)
	assert.Greater(t, mid, uint64(0), "the first batches moved the cursor")
	assert.Less(t, mid, rs[len(rs)-1].Seq, "the cloud failed before the end")
	assert.Equal(t, Stopped, u1.Status().State)

	// More data while no uplink runs, then a fresh uplink on the same store.
	rs = append(rs, addReadings(t, s, 700)...)
	addWQI(t, s, 7)
	u2 := newUplink(t, s, cloud, alerts, Options{BatchMax: 300})
	start(t, u2)
	require.NoError(t, flush(t, u2))

	last := rs[len(rs)-1].Seq
	assert.Equal(t, span(1, last), cloud.seqs("readings"), "every reading is in the cloud")
	assert.Equal(t, span(1, 6), cloud.seqs("wqi"))
	assert.Equal(t, span(1, 2), cloud.seqs("alerts"))
	for _, st := range streams {
		assert.Equal(t, lastSeq(t, s, st), s.Cursor(st), "%s cursor at its last seq", st)
	}
	// What the cloud holds is what was stored.
	cloud.mu.Lock()
	for _, r := range rs {
		got := cloud.readings[r.Seq]
		assert.Equal(t, wire.FromReading(r), got, "reading %d", r.Seq)
	}
	cloud.mu.Unlock()
	// Only what the first uplink had confirmed ahead of its cursor may have gone twice: the
	// live lane's readings, and a backlog batch that was in flight behind the one that
	// failed.
	assert.LessOrEqual(t, cloud.duplicates(), DefaultLiveReadings+1+(DefaultInFlight-1)*300)
	st := u2.Status()
	assert.Equal(t, Idle, st.State)
	assert.Zero(t, st.ConsecutiveFailures)
	assert.False(t, st.LastSuccessAt.IsZero())
	assert.Zero(t, st.Rejected)
	assert.Equal(t, map[spool.Stream]int{}, st.Live, "nothing left for the live lane")
}

func lastSeq(t *testing.T, s *spool.Spool, st spool.Stream) uint64 {
	t.Helper()
	return s.Stats().LastSeq[st]
}

// While the cloud is down the waits grow with jitter up to the cap; when it is back the
// live lane (alerts, newest WQI, newest readings) arrives first and the backlog drains
// without waiting for the interval.
func TestOutageBackoffThenLiveLaneFirst(t *testing.T) {
	s := openStore(t, "")
	cloud := newCloud(t, nil)
	alerts := newAlerts(t, s)
	addReadings(t, s, 2000)
	addWQI(t, s, 6)
	cloud.down()

	const (
		base   = time.Second
		cap    = 8 * time.Second
		window = 10
	)
	u := newUplink(t, s, cloud, alerts, Options{BackoffMin: base, BackoffMax: cap, BatchMax: 250})
	timer := useFakeTimer(u)
	start(t, u)

	var delays []time.Duration
	var pending timerCall
	for i := 1; i <= window; i++ {
		pending = timer.next(t)
		ceiling := min(cap, base<<(i-1))
		assert.LessOrEqual(t, pending.d, ceiling, "wait %d", i)
		assert.GreaterOrEqual(t, pending.d, backoff.MinWait, "wait %d", i)
		delays = append(delays, pending.d)
		st := u.Status()
		assert.Equal(t, BackingOff, st.State)
		assert.Equal(t, i, st.ConsecutiveFailures)
		assert.Contains(t, st.LastError, "connection refused")
		if i < window {
			pending.fire <- time.Now()
		}
	}
	t.Logf("waits while down: %v", delays)
	assert.Greater(t, len(slices.Compact(slices.Clone(delays))), window/2, "jitter: the waits differ")
	var belowCeiling bool
	for i, d := range delays {
		belowCeiling = belowCeiling || d < min(cap, base<<i)*9/10
	}
	assert.True(t, belowCeiling, "full jitter: some wait is well below its ceiling")

	// While the link is down: an alert, a new WQI and newer readings.
	raise(t, alerts, "do-low")
	newestWQI := addWQI(t, s, 4)
	newest := addReadings(t, s, 300)
	cloud.up(t)
	pending.fire <- time.Now()

	after := timer.next(t)
	assert.Equal(t, time.Hour, after.d, "the backlog drained at once: the next wait is the interval")
	batches := cloud.batchLog()
	require.NotEmpty(t, batches)
	first := batches[0]
	assert.Contains(t, first, recKey{"alerts", 1}, "the alert goes in the first batch")
	assert.Contains(t, first, recKey{"wqi", newestWQI}, "the newest WQI goes in the first batch")
	lastNew := newest[len(newest)-1].Seq
	for seq := lastNew - DefaultLiveReadings + 1; seq <= lastNew; seq++ {
		assert.Contains(t, first, recKey{"readings", seq}, "newest reading %d goes in the first batch", seq)
	}
	assert.NotContains(t, first, recKey{"readings", 1}, "the backlog comes behind")
	// The backlog then goes oldest first.
	var backlog []uint64
	for _, b := range batches[1:] {
		for _, k := range b {
			if k.stream == "readings" {
				backlog = append(backlog, k.seq)
			}
		}
	}
	assert.True(t, slices.IsSorted(backlog), "backlog in seq order")
	assert.Equal(t, span(1, lastNew), cloud.seqs("readings"))
	assert.Equal(t, lastNew, s.Cursor(spool.Readings), "the cursor jumped over what the live lane sent")
	assert.Zero(t, cloud.duplicates())
	assert.Equal(t, Idle, u.Status().State)
	after.fire <- time.Now()
}

// A proxy that delays, cuts requests mid-body, drops answers after the cloud stored the
// batch, and resets connections: nothing is lost and no cursor stays stuck.
func TestFaultyNetwork(t *testing.T) {
	s := openStore(t, "")
	cloud := newCloud(t, nil)
	cloud.closeConns = true // one request per connection: a fault per request
	alerts := newAlerts(t, s)
	rs := addReadings(t, s, 3000)
	raise(t, alerts, "a1")
	addWQI(t, s, 6)

	faults := []fault{
		{delay: 20 * time.Millisecond},
		{cutUp: 900},              // cut in the middle of the body
		{drop: true, cutDown: 0},  // the cloud stores the batch, the answer is lost
		{reset: true},             // reset on connect
		{drop: true, cutDown: 20}, // the answer cut after its first bytes
		{delay: 2 * time.Second},  // slower than the request timeout
		{cutUp: 100},              // cut in the headers
		{drop: true, cutDown: 0},
	}
	p := newProxy(t, cloud.addr, func(i int) fault {
		if i < 3*len(faults) && i%2 == 0 {
			return faults[(i/2)%len(faults)]
		}
		return fault{}
	})
	u := newUplink(t, s, cloud, alerts, Options{URL: "http://" + p.addr(), BatchMax: 200,
		RequestTimeout: 500 * time.Millisecond})
	start(t, u)
	var errs []string
	for attempt := 0; ; attempt++ {
		require.Less(t, attempt, 200, "no progress; the last errors: %q", errs[max(0, len(errs)-3):])
		err := flush(t, u)
		if err == nil {
			break
		}
		errs = append(errs, err.Error())
	}
	t.Logf("%d failed passes, e.g. %q", len(errs), errs[:min(3, len(errs))])
	assert.NotEmpty(t, errs, "the faults were felt")
	last := rs[len(rs)-1].Seq
	assert.Equal(t, span(1, last), cloud.seqs("readings"))
	assert.Equal(t, []uint64{1}, cloud.seqs("alerts"))
	assert.Equal(t, []uint64{1}, cloud.seqs("wqi"))
	for _, st := range streams {
		assert.Equal(t, lastSeq(t, s, st), s.Cursor(st), "%s cursor", st)
	}
	assert.Positive(t, cloud.duplicates(), "a lost answer means a batch went twice, and the cloud dropped it")
	assert.Zero(t, u.Status().Rejected)
}

// A record the cloud refuses is isolated, set aside and counted, with one alert however
// many follow; everything else goes and the cursor reaches the end.
func TestPoisonRecordSetAside(t *testing.T) {
	for _, tt := range []struct {
		name      string
		omitField bool // the cloud does not say which record: bisect
	}{
		{"cloud names the record", false},
		{"cloud names no record", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, "")
			cloud := newCloud(t, nil)
			cloud.omitField = tt.omitField
			alerts := newAlerts(t, s)
			addReadings(t, s, 536)
			poison := addPoison(t, s)
			rs := addReadings(t, s, 700)
			u := newUplink(t, s, cloud, alerts, Options{BatchMax: 128})
			start(t, u)

			require.NoError(t, flush(t, u))
			last := rs[len(rs)-1].Seq
			want := slices.DeleteFunc(span(1, last), func(s uint64) bool { return s == poison })
			assert.Equal(t, want, cloud.seqs("readings"), "all but the poison")
			assert.Equal(t, last, s.Cursor(spool.Readings), "the poison does not block the cursor")
			st := u.Status()
			assert.Equal(t, uint64(1), st.Rejected)
			assert.Equal(t, []string{RuleRejected}, activeRules(alerts))
			assert.Contains(t, cloud.alertRules(), RuleRejected+":opened", "the alert reached the cloud")
			assert.Contains(t, alerts.Active()[0].Message, "salinity", "the alert carries the cloud's message")

			// A second poison: counted, and still one alert.
			second := addPoison(t, s)
			addReadings(t, s, 10)
			require.NoError(t, flush(t, u))
			assert.Equal(t, uint64(2), u.Status().Rejected)
			assert.Equal(t, []string{RuleRejected}, activeRules(alerts))
			assert.NotContains(t, cloud.seqs("readings"), second)
			assert.Equal(t, lastSeq(t, s, spool.Readings), s.Cursor(spool.Readings))

			// The count survives a restart.
			u2 := newUplink(t, s, cloud, alerts, Options{})
			assert.Equal(t, uint64(2), u2.Status().Rejected)
		})
	}
}

// A 400 about the batch itself sets nothing aside: the pass fails and says why.
func TestBatchRefusedWhole(t *testing.T) {
	for _, tt := range []struct {
		name  string
		field string
	}{
		{"names the version", "v"},
		{"names nothing, and an empty batch is refused too", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, "")
			cloud := newCloud(t, nil)
			alerts := newAlerts(t, s)
			addReadings(t, s, 50)
			for range 20 {
				cloud.push(func(w http.ResponseWriter, r *http.Request) bool {
					discard(r)
					refuse(w, http.StatusBadRequest, wire.Error{Error: "unsupported batch version: v=1", Field: tt.field})
					return true
				})
			}
			u := newUplink(t, s, cloud, alerts, Options{})
			start(t, u)
			err := flush(t, u)
			require.ErrorIs(t, err, ErrRefused)
			assert.Contains(t, err.Error(), "unsupported batch version")
			assert.Zero(t, u.Status().Rejected, "no record is blamed")
			assert.Zero(t, s.Cursor(spool.Readings))
			assert.Empty(t, cloud.seqs("readings"))
			assert.Equal(t, []string{RuleRejected}, activeRules(alerts))
		})
	}
}

// 413 halves the batch (and the batch size) until the cloud takes it.
func TestTooLargeHalves(t *testing.T) {
	s := openStore(t, "")
	cloud := newCloud(t, nil)
	cloud.maxRecords = 60
	rs := addReadings(t, s, 1000)
	u := newUplink(t, s, cloud, nil, Options{BatchMax: 500})
	start(t, u)
	require.NoError(t, flush(t, u))
	assert.Equal(t, span(1, rs[len(rs)-1].Seq), cloud.seqs("readings"))
	for i, b := range cloud.batchLog() {
		assert.LessOrEqual(t, len(b), 60, "accepted batch %d", i)
	}
	st := u.Status()
	assert.Less(t, st.BatchLimit, 500, "the batch size stays reduced")
	assert.GreaterOrEqual(t, st.BatchLimit, 30, "halved, not collapsed")
	assert.Equal(t, 500, st.BatchMax)
	assert.Zero(t, st.Rejected)
}

// 401 puts the uplink in the auth-failed state with an alert; a token rotated in the
// token file is used at the next attempt, without a restart.
func TestRotatedToken(t *testing.T) {
	s := openStore(t, "")
	cloud := newCloud(t, nil)
	cloud.setToken("new-token")
	alerts := newAlerts(t, s)
	rs := addReadings(t, s, 100)
	path := tokenFile(t, "old-token")
	u := newUplink(t, s, cloud, alerts, Options{Token: fileToken(path), BackoffMin: time.Second,
		BackoffMax: 10 * time.Minute})
	timer := useFakeTimer(u)
	start(t, u)

	wait := timer.next(t) // the first pass failed
	assert.GreaterOrEqual(t, wait.d, 5*time.Minute, "auth failure waits near the cap")
	assert.LessOrEqual(t, wait.d, 10*time.Minute)
	st := u.Status()
	assert.Equal(t, AuthFailed, st.State)
	assert.Contains(t, st.LastError, "401")
	assert.Equal(t, []string{RuleAuth}, activeRules(alerts))
	assert.Zero(t, s.Cursor(spool.Readings))

	require.NoError(t, os.WriteFile(path, []byte("new-token\n"), 0o600))
	require.NoError(t, flush(t, u), "the rotated token is read again")
	assert.Equal(t, span(1, rs[len(rs)-1].Seq), cloud.seqs("readings"))
	assert.Empty(t, activeRules(alerts), "the auth alert resolved")
	assert.Equal(t, Idle, u.Status().State)
	require.NoError(t, flush(t, u))
	assert.Equal(t, []string{RuleAuth + ":opened", RuleAuth + ":resolved"}, cloud.alertRules(),
		"the cloud learns of the outage afterwards")

	// Rotated while the uplink runs fine: the first 401 reads the file again and the
	// batch goes at once, without a failure.
	cloud.setToken("newer-token")
	require.NoError(t, os.WriteFile(path, []byte("newer-token"), 0o600))
	addReadings(t, s, 5)
	require.NoError(t, flush(t, u))
	assert.Zero(t, u.Status().ConsecutiveFailures)
	assert.Equal(t, lastSeq(t, s, spool.Readings), s.Cursor(spool.Readings))
}

// 429 and 503 wait at least as long as Retry-After says.
func TestRetryAfter(t *testing.T) {
	s := openStore(t, "")
	cloud := newCloud(t, nil)
	addReadings(t, s, 10)
	answer := func(status int, retry string) func(http.ResponseWriter, *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			discard(r)
			w.Header().Set("Retry-After", retry)
			refuse(w, status, wire.Error{Error: http.StatusText(status)})
			return true
		}
	}
	cloud.push(answer(http.StatusServiceUnavailable, "7"))
	cloud.push(answer(http.StatusTooManyRequests, "3"))
	cloud.push(answer(http.StatusTooManyRequests, time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat)))
	u := newUplink(t, s, cloud, nil, Options{BackoffMin: time.Second, BackoffMax: 5 * time.Minute})
	timer := useFakeTimer(u)
	start(t, u)

	w := timer.next(t)
	assert.Equal(t, 7*time.Second, w.d, "Retry-After: 7 after a 503")
	assert.Contains(t, u.Status().LastError, "503")
	w.fire <- time.Now()
	w = timer.next(t)
	assert.Equal(t, 3*time.Second, w.d, "Retry-After: 3 after a 429")
	w.fire <- time.Now()
	w = timer.next(t)
	assert.InDelta(t, 90*time.Second, w.d, float64(3*time.Second), "Retry-After as an HTTP date")
	w.fire <- time.Now()
	w = timer.next(t)
	assert.Equal(t, time.Hour, w.d, "then it went: the next wait is the interval")
	assert.Equal(t, span(1, 10), cloud.seqs("readings"))
	w.fire <- time.Now()
}

// A 2xx answer that does not acknowledge the batch moves nothing.
func TestBadAckMovesNothing(t *testing.T) {
	for _, body := range []string{
		"ok", "", "null", "[]", `{}`, `{"acked_seq": 9999}`, `{"acked_seq": 3}`,
		`{"acked_seq": 10, "acked": {"readings": 9}}`, `{"acked_seq": -1}`, `{"acked_seq": 10}{}`,
	} {
		t.Run(body, func(t *testing.T) {
			s := openStore(t, "")
			cloud := newCloud(t, nil)
			addReadings(t, s, 10)
			cloud.push(func(w http.ResponseWriter, r *http.Request) bool {
				discard(r)
				fmt.Fprint(w, body)
				return true
			})
			u := newUplink(t, s, cloud, nil, Options{})
			timer := useFakeTimer(u)
			start(t, u)
			w := timer.next(t)
			assert.Zero(t, s.Cursor(spool.Readings), "no cursor move on %q", body)
			assert.Contains(t, u.Status().LastError, ErrBadAck.Error())
			w.fire <- time.Now()
			w = timer.next(t)
			assert.Equal(t, time.Hour, w.d)
			assert.Equal(t, uint64(10), s.Cursor(spool.Readings), "the retry went")
			w.fire <- time.Now()
		})
	}
}

// With the day's budget spent the backlog waits for the next UTC day, alerts and the
// latest WQI still go, and a restart does not reset the count.
func TestByteBudget(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir+"/agent.db")
	cloud := newCloud(t, nil)
	alerts := newAlerts(t, s)
	addReadings(t, s, 6000)
	clk := testclock.New(t0)
	const budget = 16 << 10
	opts := Options{DailyBytes: budget, Now: clk.Now, BatchMax: 250}
	u := newUplink(t, s, cloud, alerts, opts)
	stop := start(t, u)

	err := flush(t, u)
	require.ErrorIs(t, err, ErrBudgetExhausted)
	st := u.Status()
	assert.Equal(t, BudgetExhausted, st.State)
	assert.Equal(t, time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), st.NextRetryAt, "the backlog resumes at midnight UTC")
	assert.Positive(t, st.BytesToday)
	assert.LessOrEqual(t, st.BytesToday, int64(budget))
	day1 := len(cloud.seqs("readings"))
	assert.Positive(t, day1)
	assert.Less(t, day1, 6000, "the budget stopped the backlog")

	// An alert and a new WQI still go; new readings do not.
	raise(t, alerts, "do-low")
	wqiSeq := addWQI(t, s, 3)
	addReadings(t, s, 50)
	require.ErrorIs(t, flush(t, u), ErrBudgetExhausted)
	assert.Equal(t, []uint64{1}, cloud.seqs("alerts"))
	assert.Equal(t, []uint64{wqiSeq}, cloud.seqs("wqi"))
	assert.Len(t, cloud.seqs("readings"), day1, "no reading went over the budget")

	// A restart keeps the day's count.
	spent := u.Status().BytesToday
	stop()
	u2 := newUplink(t, s, cloud, alerts, opts)
	assert.Equal(t, spent, u2.Status().BytesToday)
	start(t, u2)
	require.ErrorIs(t, flush(t, u2), ErrBudgetExhausted)
	assert.Len(t, cloud.seqs("readings"), day1)

	// The next day the backlog moves again.
	clk.Set(t0.Add(24 * time.Hour))
	require.ErrorIs(t, flush(t, u2), ErrBudgetExhausted)
	assert.Greater(t, len(cloud.seqs("readings")), day1, "a new day, a new budget")
	assert.LessOrEqual(t, u2.Status().BytesToday, int64(budget))
}

// TLS with a configured CA, and mutual TLS with a client certificate.
func TestTLS(t *testing.T) {
	p := newPKI(t)
	for _, tt := range []struct {
		name          string
		requireClient bool
		opts          Options
		wantErr       string
	}{
		{"configured CA", false, Options{CAFile: p.caFile}, ""},
		{"mutual TLS", true, Options{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey}, ""},
		{"mutual TLS without a client certificate", true, Options{CAFile: p.caFile}, "certificate"},
		{"system roots do not know the test CA", false, Options{}, "certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, "")
			cloud := newCloud(t, p.serverTLS(t, tt.requireClient))
			addReadings(t, s, 20)
			u := newUplink(t, s, cloud, nil, tt.opts)
			start(t, u)
			err := flush(t, u)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Zero(t, s.Cursor(spool.Readings))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, span(1, 20), cloud.seqs("readings"))
		})
	}
}

func TestNewRejectsBadTLSFiles(t *testing.T) {
	s := openStore(t, "")
	missing := t.TempDir() + "/missing.pem"
	notPEM := tokenFile(t, "not a certificate")
	for _, o := range []Options{{CAFile: missing}, {CAFile: notPEM}, {CertFile: missing, KeyFile: missing}} {
		o.URL, o.Station, o.Token = "https://cloud.example", station, staticToken("x")
		_, err := New(o, s, nil)
		assert.Error(t, err, "%+v", o)
	}
	_, err := New(Options{URL: "ftp://x", Station: station, Token: staticToken("x")}, s, nil)
	assert.Error(t, err)
}

// Flush forwards now, not at the next interval; it needs Run.
func TestFlush(t *testing.T) {
	s := openStore(t, "")
	cloud := newCloud(t, nil)
	u := newUplink(t, s, cloud, nil, Options{Interval: time.Hour})
	assert.ErrorIs(t, u.Flush(t.Context()), ErrNotRunning)
	stop := start(t, u)

	addReadings(t, s, 42)
	require.NoError(t, flush(t, u))
	assert.Equal(t, span(1, 42), cloud.seqs("readings"), "sent at once, an hour before the interval")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.ErrorIs(t, u.Flush(ctx), context.Canceled)
	stop()
	assert.ErrorIs(t, u.Flush(t.Context()), ErrNotRunning)
}

// At shutdown the batch in flight gets the grace to finish and its ack is recorded; one
// that takes longer is abandoned (and sent again by the next run).
func TestShutdownGrace(t *testing.T) {
	for _, tt := range []struct {
		name      string
		grace     time.Duration
		answerIn  time.Duration
		wantMoved bool
	}{
		{"answered within the grace", 5 * time.Second, 100 * time.Millisecond, true},
		{"not answered within the grace", 200 * time.Millisecond, 3 * time.Second, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, "")
			cloud := newCloud(t, nil)
			addReadings(t, s, 30)
			inFlight := make(chan struct{})
			cloud.push(func(w http.ResponseWriter, r *http.Request) bool {
				close(inFlight)
				time.Sleep(tt.answerIn)
				return false // then answer normally
			})
			u := newUplink(t, s, cloud, nil, Options{Grace: tt.grace})
			stop := start(t, u)
			<-inFlight
			stop() // returns once Run has
			if tt.wantMoved {
				assert.Equal(t, uint64(30), s.Cursor(spool.Readings))
			} else {
				assert.Zero(t, s.Cursor(spool.Readings))
			}
		})
	}
}

// Records that cannot be encoded at all are set aside like refused ones.
func TestUnsendableRecordsSetAside(t *testing.T) {
	s := openStore(t, "")
	cloud := newCloud(t, nil)
	_, err := s.AppendRecord(t.Context(), spool.Alerts, []byte("not json"))
	require.NoError(t, err)
	_, err = s.AppendRecord(t.Context(), spool.WQI, []byte(`{"reason":"no fresh values"}`))
	require.NoError(t, err)
	addReadings(t, s, 5)
	u := newUplink(t, s, cloud, nil, Options{})
	start(t, u)
	require.NoError(t, flush(t, u))
	assert.Equal(t, uint64(2), u.Status().Rejected)
	assert.Equal(t, uint64(1), s.Cursor(spool.Alerts))
	assert.Equal(t, uint64(1), s.Cursor(spool.WQI))
	assert.Equal(t, span(1, 5), cloud.seqs("readings"))
}

// The live lane and the acked-ahead ranges show in Status.
func TestStatusLanes(t *testing.T) {
	s := openStore(t, "")
	cloud := newCloud(t, nil)
	alerts := newAlerts(t, s)
	addReadings(t, s, 1000)
	addWQI(t, s, 6)
	raise(t, alerts, "x")
	cloud.down()
	u := newUplink(t, s, cloud, alerts, Options{BatchMax: 500})
	st := u.Status()
	assert.Equal(t, Stopped, st.State)
	assert.Equal(t, map[spool.Stream]int{spool.Alerts: 1, spool.WQI: 1, spool.Readings: DefaultLiveReadings}, st.Live)

	// Only the live lane gets through (and perhaps the backlog batch in flight behind the
	// one refused): then the newest readings are acked ahead.
	cloud.up(t)
	cloud.push(func(http.ResponseWriter, *http.Request) bool { return false })
	cloud.push(func(w http.ResponseWriter, r *http.Request) bool {
		discard(r)
		refuse(w, http.StatusServiceUnavailable, wire.Error{Error: "busy"})
		return true
	})
	timer := useFakeTimer(u)
	start(t, u)
	w := timer.next(t)
	st = u.Status()
	// The two backlog batches (1..500, 501..800) travel together: whichever reached the
	// cloud first got the 503.
	if cur := s.Cursor(spool.Readings); cur == 0 {
		assert.Equal(t, uint64(DefaultLiveReadings+300), st.AckedAhead[spool.Readings], "the live lane and 501..800")
	} else {
		assert.Equal(t, uint64(500), cur, "the cursor passed 1..500, the batch that went through")
		assert.Equal(t, uint64(DefaultLiveReadings), st.AckedAhead[spool.Readings], "the live lane")
	}
	assert.Equal(t, map[spool.Stream]int{}, st.Live)
	assert.Contains(t, st.LastError, "503")
	w.fire <- time.Now()
	w = timer.next(t)
	assert.Equal(t, time.Hour, w.d)
	st = u.Status()
	assert.Zero(t, st.AckedAhead[spool.Readings], "the cursor passed them")
	assert.Equal(t, uint64(1000), s.Cursor(spool.Readings))
	w.fire <- time.Now()
}

// A nudge sends new records after Linger instead of at the next interval; a failing link
// keeps its backoff whatever it is nudged with.
func TestNudge(t *testing.T) {
	s := openStore(t, "")
	cloud := newCloud(t, nil)
	u := newUplink(t, s, cloud, nil, Options{Interval: time.Hour, Linger: 10 * time.Millisecond})
	start(t, u)
	require.Eventually(t, func() bool { return cloud.requestCount() >= 1 || u.Status().State == Idle },
		10*time.Second, 5*time.Millisecond, "the first pass")

	addReadings(t, s, 5)
	u.Nudge()
	require.Eventually(t, func() bool { return len(cloud.seqs("readings")) == 5 },
		10*time.Second, 5*time.Millisecond, "nudged records go an hour before the interval")

}

// Readings that keep arriving while a batch is on its way wait for the next pass, Linger
// later, with those that join them, instead of following at once in a batch of their own
// per round trip; a backlog that was there when the pass began goes without waiting, and
// so does everything when a Flush waits.
func TestArrivalsDuringAPassLinger(t *testing.T) {
	s := openStore(t, "")
	cloud := newCloud(t, nil)
	addReadings(t, s, 700)
	// One batch at a time, so that what arrives during each request is known.
	u := newUplink(t, s, cloud, nil, Options{Interval: time.Hour, Linger: 10 * time.Millisecond, BatchMax: 500, InFlight: 1})
	arrive := func(n int) {
		cloud.push(func(http.ResponseWriter, *http.Request) bool {
			addReadings(t, s, n) // stored while the request is on its way
			return false
		})
	}
	for range 3 {
		arrive(3)
	}
	timer := useFakeTimer(u)
	start(t, u)

	// The first pass: the live lane (the newest 200), then the rest of the backlog (500),
	// each batch with the readings that arrived meanwhile; the 3 that arrive during the
	// last batch wait.
	w := timer.next(t)
	assert.Equal(t, time.Hour, w.d)
	w = timer.next(t)
	assert.LessOrEqual(t, w.d, 10*time.Millisecond, "the pass ended with a tail: it lingers")
	assert.Equal(t, 3, cloud.requestCount())
	assert.Len(t, cloud.seqs("readings"), 706)
	assert.Equal(t, uint64(706), s.Cursor(spool.Readings))

	w.fire <- time.Now()
	require.Eventually(t, func() bool { return len(cloud.seqs("readings")) == 709 }, guard, time.Millisecond)
	assert.Equal(t, 4, cloud.requestCount(), "the tail went in one batch")

	// A flush does not leave a tail.
	addReadings(t, s, 1)
	arrive(2)
	require.NoError(t, u.Flush(t.Context()))
	assert.Len(t, cloud.seqs("readings"), 712)
	assert.Equal(t, 6, cloud.requestCount())
}

// Linger counts from the nudge of the oldest record no batch has read: a record stored
// while a pass was busy does not wait for that pass and a whole Linger after it.
func TestLingerCountsFromTheFirstNudge(t *testing.T) {
	u := &Uplink{opts: Options{Linger: time.Hour}, wake: make(chan struct{}, 1), nudge: make(chan struct{}, 1)}
	u.Nudge()
	at := u.firstNudge.Load()
	u.Nudge()
	require.Same(t, at, u.firstNudge.Load(), "a later nudge does not restart the count")
	past := at.Add(-40 * time.Minute) // as if it had come 40 minutes ago
	u.firstNudge.Store(&past)
	asked := make(chan time.Duration, 2)
	fired := make(chan time.Time, 1)
	u.after = func(d time.Duration) <-chan time.Time {
		asked <- d
		if d < time.Hour {
			fired <- time.Now()
			return fired
		}
		return nil
	}
	assert.True(t, u.await(t.Context(), 2*time.Hour, true))
	assert.Equal(t, 2*time.Hour, <-asked)
	linger := <-asked
	assert.Greater(t, linger, 19*time.Minute)
	assert.LessOrEqual(t, linger, 20*time.Minute)
}

// await lingers after a nudge only while the link is healthy: a failing link keeps its
// backoff however often it is nudged.
func TestAwaitKeepsBackoff(t *testing.T) {
	for _, healthy := range []bool{true, false} {
		t.Run(fmt.Sprintf("healthy=%v", healthy), func(t *testing.T) {
			u := &Uplink{opts: Options{Linger: 10 * time.Millisecond}, wake: make(chan struct{}, 1),
				nudge: make(chan struct{}, 1)}
			var mu sync.Mutex
			var asked []time.Duration
			lingered := make(chan time.Time)
			u.after = func(d time.Duration) <-chan time.Time {
				mu.Lock()
				defer mu.Unlock()
				asked = append(asked, d)
				if d <= u.opts.Linger {
					return lingered
				}
				return nil // the backoff never ends in this test
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan bool)
			go func() { done <- u.await(ctx, time.Hour, healthy) }()
			u.Nudge()
			require.Eventually(t, func() bool { return len(u.nudge) == 0 }, 10*time.Second, time.Millisecond,
				"await takes the nudge")
			if healthy {
				lingered <- time.Now() // await asked for the linger and is waiting on it
				assert.True(t, <-done, "a healthy link passes after the linger")
			} else {
				u.Nudge()
				require.Eventually(t, func() bool { return len(u.nudge) == 0 }, 10*time.Second, time.Millisecond)
				cancel()
				assert.False(t, <-done, "a failing link waits out its backoff")
			}
			cancel()
			mu.Lock()
			defer mu.Unlock()
			if healthy {
				require.Len(t, asked, 2)
				assert.Equal(t, time.Hour, asked[0])
				assert.LessOrEqual(t, asked[1], u.opts.Linger, "Linger counted from the nudge")
			} else {
				assert.Equal(t, []time.Duration{time.Hour}, asked, "no linger asked while backing off")
			}
		})
	}
}

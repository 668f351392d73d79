package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/internal/backoff"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
)

// Defaults of Options.
//
// DefaultBatchMax is also what a live reading waits for during a drain: its batch goes
// when the oldest backlog batch in flight lands, up to one batch time. Seven pairs of
// quick drains on 2 cores, alternated: with 2000 a batch, live p99 55-121 ms (58 idle)
// and 70-99k readings/s; with 1000, 37-59 ms and 57-81k. Live readings held back up to
// half as long during a pollution event are worth a drain a sixth slower after an outage.
const (
	DefaultInterval       = 2 * time.Second
	DefaultLinger         = 50 * time.Millisecond
	DefaultBatchMax       = 1000
	DefaultLiveReadings   = 200
	DefaultBackoffMin     = time.Second
	DefaultBackoffMax     = 5 * time.Minute
	DefaultConnectTimeout = 10 * time.Second
	DefaultRequestTimeout = 30 * time.Second
	DefaultGrace          = 5 * time.Second
)

// DefaultInFlight is Options.InFlight's default. With one backlog batch at a time the
// station, the cloud and its database take turns (the agent reads and encodes a batch
// while the cloud waits, the cloud decodes it while the database waits, the agent waits
// for the commit). The cloud stores the rows of a station's batches side by side and
// queues them only for the short rest of their transactions, so with three the database
// stores two while the cloud decodes the third: in three alternated pairs of quick
// drains, 76-79k readings/s with three against 50-58k with two; four were no faster.
const DefaultInFlight = 3

// The rules of the alerts the uplink raises (the "rule" field of alerts).
const (
	RuleRejected = "uplink_rejected" // the cloud refused records, which were set aside
	RuleAuth     = "uplink_auth"     // the cloud refused the station's token
)

// Errors. Flush returns the outcome of a pass, which matches one of them (or is a
// transport error, or a store error).
var (
	// ErrAuth: the cloud answered 401 (unknown token) or 403 (a token of another station),
	// also with the token read again.
	ErrAuth = errors.New("the cloud refused the station token")
	// ErrRefused: the cloud refused a batch as a whole (HTTP 400 about the batch, not one
	// of its records), so no record can be blamed and none is set aside.
	ErrRefused = errors.New("the cloud refused the batch")
	// ErrCloud: the cloud answered with an error status (429, 5xx, or one the contract
	// does not have).
	ErrCloud = errors.New("the cloud answered with an error")
	// ErrBadAck: a 2xx answer that does not acknowledge what was sent. Nothing moves.
	ErrBadAck = errors.New("the cloud's acknowledgement does not match the batch")
	// ErrBudgetExhausted: the daily byte budget is used up; alerts and the latest WQI still
	// go, the backlog waits for the next UTC day.
	ErrBudgetExhausted = errors.New("daily byte budget exhausted")
	// ErrNotRunning: Flush was called while Run was not running.
	ErrNotRunning = errors.New("uplink not running")
)

// Queue is the durable buffer as forwarding reads it: the records after a stream's
// cursor, the newest ones for the live lane, and the cursors the cloud's acks move.
type Queue interface {
	ReadingsAfter(after uint64, max int) ([]telemetry.Reading, error)
	Readings(q spool.Query) ([]telemetry.Reading, error)
	RecordsAfter(st spool.Stream, after uint64, max int) ([]spool.Record, error)
	LastRecords(st spool.Stream, limit int) ([]spool.Record, error)
	Cursor(st spool.Stream) uint64
	Ack(ctx context.Context, st spool.Stream, seq uint64) error
}

// Memo keeps the uplink's counters between runs, under one key.
type Memo interface {
	Put(ctx context.Context, key string, value []byte) error
	Get(key string) ([]byte, error)
}

// Store is what New needs: the buffer to forward from and a place for the counters.
// *spool.Spool is both.
type Store interface {
	Queue
	Memo
}

var _ Store = (*spool.Spool)(nil)

// Alerts raises and clears the uplink's alerts; *alerting.Manager implements it.
type Alerts interface {
	Set(ctx context.Context, c alerting.Condition, active bool)
}

// Options configures an Uplink. Zero durations and counts mean their defaults.
type Options struct {
	// URL is the cloud's base URL (uplink.url); batches go to URL + "/v1/ingest".
	URL string
	// Station is the station id every batch carries.
	Station string
	// Token returns the bearer token. It is called before the first request, again after
	// a 401 or 403 (so a token rotated in uplink.token_file is used without a restart),
	// and before every pass while the token is refused.
	Token func() (string, error)
	// CAFile replaces the system roots for the cloud's certificate; CertFile and KeyFile
	// are a client certificate for mutual TLS.
	CAFile, CertFile, KeyFile string
	// Interval is the wait between passes while nothing fails (uplink.interval).
	Interval time.Duration
	// Linger is how long a Nudge waits for more records to join before the pass (default
	// 50ms): new readings go within Linger of being stored rather than within Interval.
	Linger time.Duration
	// BatchMax is the most records in one batch (uplink.batch_max).
	BatchMax int
	// InFlight is how many backlog batches a drain keeps on their way at once (default
	// DefaultInFlight; 1 sends one at a time). Without a daily byte budget only: with one,
	// each batch is weighed against what is left before it goes.
	InFlight int
	// LiveReadings is how many of the newest unsent readings the live lane carries at the
	// start of a pass, and the most of the readings stored since the previous batch that
	// ride with each batch of a drain (uplink.live_readings).
	LiveReadings int
	// BackoffMin and BackoffMax bound the exponential backoff (uplink.backoff_max).
	BackoffMin, BackoffMax time.Duration
	// DailyBytes is the budget of bytes on the wire per UTC day; 0 means no limit
	// (uplink.daily_bytes).
	DailyBytes int64
	// ConnectTimeout bounds a TCP connect and a TLS handshake; RequestTimeout one whole
	// request (uplink.connect_timeout, uplink.request_timeout).
	ConnectTimeout, RequestTimeout time.Duration
	// Grace is how long the batch in flight when Run's context ends may take to finish
	// and have its acknowledgement recorded.
	Grace time.Duration
	// Acks, if set, receives the acknowledgements made in the cloud that an answer
	// carries (wire.Ack.Acks); the station acknowledges them too (alerting.Manager.AckFrom).
	Acks func(ctx context.Context, acks []wire.AlertAck)
	// Health, if set, returns the station's health record, which goes every
	// HealthInterval with the live lane in a batch of its own (sendHealth). It is called
	// from Run's goroutine and must not block for long.
	Health func() *wire.Health
	// HealthInterval is how often the health record goes (uplink.health_interval).
	HealthInterval time.Duration
	// Now is the clock (the budget's day, status times); nil means time.Now.
	Now func() time.Time
	// Logger receives the uplink's log; nil discards it.
	Logger *slog.Logger
}

// State is what the uplink is doing.
type State string

// The states.
const (
	Stopped         State = "stopped" // Run is not running
	Idle            State = "idle"    // everything sent; waiting for the next interval
	Sending         State = "sending"
	BackingOff      State = "backing off"
	AuthFailed      State = "auth failed"
	BudgetExhausted State = "budget exhausted"
)

// Status is a snapshot of the uplink for `ph-agent queue` and `status`.
type Status struct {
	State               State
	ConsecutiveFailures int
	NextRetryAt         time.Time // zero unless backing off (or, budget exhausted, when the backlog resumes)
	LastSuccessAt       time.Time // last batch the cloud acknowledged
	LastError           string
	LastErrorAt         time.Time
	BytesToday          int64 // on the wire this UTC day (persisted with a budget)
	DailyBytes          int64 // the budget; 0 = none
	Rejected            uint64
	BatchLimit          int // records per batch now: BatchMax, less after a 413
	BatchMax            int
	Acked               uint64    // records the cloud acknowledged since start
	Failures            uint64    // passes that failed since start
	HealthSentAt        time.Time // the last health record the cloud took; zero: none
	HealthRefused       uint64    // health records the cloud refused since start
	// Live is, per stream, how many unsent records the live lane would send now; AckedAhead
	// how many seqs above the cursor the cloud already confirmed (through the live lane).
	Live       map[spool.Stream]int
	AckedAhead map[spool.Stream]uint64
}

// Uplink forwards the buffer to the cloud. Run owns its only goroutine; Flush and Status
// are safe for concurrent use.
type Uplink struct {
	opts   Options
	queue  Queue
	memo   Memo
	alerts Alerts
	log    *slog.Logger
	client *client
	after  func(time.Duration) <-chan time.Time // timer; tests replace it
	wake   chan struct{}
	nudge  chan struct{}
	// firstNudge is when the oldest stored record that no batch has read yet was announced
	// by Nudge (nil: none), with the monotonic clock reading that time.Since uses. Linger
	// counts from it, so a record stored while a pass was busy does not wait for that pass
	// and then a whole Linger.
	firstNudge atomic.Pointer[time.Time]

	// Owned by the Run goroutine.
	bo            *backoff.Backoff
	okStreak      int
	token         string
	tokenStale    bool // read the token again before the next request
	loggedFailure string
	// The alerts: raised in this run, and possibly open (from a previous run too).
	authRaised, authMaybeOpen     bool
	rejectRaised, rejectMaybeOpen bool
	// healthAt is when the last health record went or was refused; zero: none yet.
	healthAt            time.Time
	loggedHealthRefusal string

	mu       sync.Mutex // guards everything below
	running  bool
	waiters  []chan error
	ahead    [numStreams + 1]rangeSet
	wireSeen int64 // client.wire when the bytes were last counted (accountWire)
	limit    int
	st       Status
	counters persisted
	dirty    bool // counters changed since they were last stored
}

// streams in the order a batch lists them.
var streams = [...]spool.Stream{spool.Alerts, spool.WQI, spool.Readings}

const (
	numStreams     = 3
	readingsStream = spool.Readings
	// requestOverhead is what a request costs on the wire besides its body (headers, the
	// answer, TCP/TLS framing), for the budget check before a backlog batch.
	requestOverhead = 1 << 10
)

// New checks opts and prepares the client (reading the TLS files). It starts nothing and
// sends nothing. alerts may be nil.
func New(opts Options, store Store, alerts Alerts) (*Uplink, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("uplink: url %q must be an http:// or https:// URL", opts.URL)
	}
	if opts.Station == "" || opts.Token == nil || store == nil {
		return nil, errors.New("uplink: station, token and store are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.Interval, DefaultInterval)
	def(&opts.Linger, DefaultLinger)
	def(&opts.BackoffMin, DefaultBackoffMin)
	def(&opts.BackoffMax, DefaultBackoffMax)
	def(&opts.ConnectTimeout, DefaultConnectTimeout)
	def(&opts.RequestTimeout, DefaultRequestTimeout)
	def(&opts.Grace, DefaultGrace)
	def(&opts.HealthInterval, DefaultHealthInterval)
	opts.BackoffMax = max(opts.BackoffMax, opts.BackoffMin)
	if opts.BatchMax <= 0 {
		opts.BatchMax = DefaultBatchMax
	}
	if opts.InFlight <= 0 {
		opts.InFlight = DefaultInFlight
	}
	if opts.LiveReadings <= 0 {
		opts.LiveReadings = DefaultLiveReadings
	}
	opts.DailyBytes = max(opts.DailyBytes, 0)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := newClient(&opts)
	if err != nil {
		return nil, err
	}
	up := &Uplink{
		opts: opts, queue: store, memo: store, alerts: alerts, log: opts.Logger, client: c,
		after:      time.After,
		wake:       make(chan struct{}, 1),
		nudge:      make(chan struct{}, 1),
		bo:         backoff.New(opts.BackoffMin, opts.BackoffMax, backoff.Full),
		tokenStale: true, authMaybeOpen: true, rejectMaybeOpen: true,
		limit: opts.BatchMax,
		st:    Status{State: Stopped},
	}
	if err := up.loadCounters(); err != nil {
		return nil, err
	}
	return up, nil
}

// Run forwards until ctx ends: a pass at once, then one every Interval (sooner, after
// Linger, when Nudge says new records are stored), or after a backoff when a pass failed,
// or when Flush asks. When ctx ends, the batch in flight gets
// up to Options.Grace to be answered and recorded; no new batch starts. Run returns nil
// then, and an error only for a store that can no longer be read (spool.ErrCorrupt,
// spool.ErrClosed). Nothing it started outlives it. Run may not be called twice at once.
func (u *Uplink) Run(ctx context.Context) error {
	u.mu.Lock()
	if u.running {
		u.mu.Unlock()
		return errors.New("uplink: Run is already running")
	}
	u.running = true
	u.mu.Unlock()
	defer u.client.tr.CloseIdleConnections()
	defer u.stop()

	for {
		waiters := u.takeWaiters()
		err := u.pass(ctx, len(waiters) > 0)
		if ctx.Err() != nil {
			reply(waiters, err)
			return nil
		}
		wait := u.settle(ctx, err)
		reply(waiters, err)
		if errors.Is(err, spool.ErrCorrupt) || errors.Is(err, spool.ErrClosed) {
			return fmt.Errorf("uplink: %w", err)
		}
		if !u.await(ctx, wait, err == nil) {
			return nil
		}
	}
}

// await waits for the next pass: wait, a Flush, or — while the link is healthy — a Nudge
// followed by Linger. A failing link keeps its backoff: nudges do not shorten it. It
// reports false when ctx ended.
func (u *Uplink) await(ctx context.Context, wait time.Duration, healthy bool) bool {
	timer := u.after(wait)
	lingering := false
	for {
		select {
		case <-ctx.Done():
			return false
		case <-u.wake:
			return true
		case <-timer:
			return true
		case <-u.nudge:
			linger := u.opts.Linger
			if at := u.firstNudge.Load(); at != nil {
				linger = max(0, linger-time.Since(*at))
			}
			if healthy && !lingering && linger < wait {
				timer, lingering = u.after(linger), true
			}
		}
	}
}

// Nudge tells the uplink that new records were stored, so that they go after Linger
// rather than at the next Interval. It never blocks and is safe for concurrent use.
func (u *Uplink) Nudge() {
	if u.firstNudge.Load() == nil {
		now := time.Now()
		u.firstNudge.CompareAndSwap(nil, &now)
	}
	select {
	case u.nudge <- struct{}{}:
	default: // one is already pending
	}
}

func (u *Uplink) stop() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.running = false
	u.st.State, u.st.NextRetryAt = Stopped, time.Time{}
	reply(u.waiters, ErrNotRunning)
	u.waiters = nil
}

func (u *Uplink) takeWaiters() []chan error {
	u.mu.Lock()
	defer u.mu.Unlock()
	w := u.waiters
	u.waiters = nil
	return w
}

func reply(waiters []chan error, err error) {
	for _, w := range waiters {
		w <- err // buffered, one answer each
	}
}

// newSince reports whether every item of b was stored after top was taken.
func newSince(b *batch, top *[numStreams + 1]uint64) bool {
	for _, it := range b.items {
		if it.seq <= top[it.st] {
			return false
		}
	}
	return true
}

// Flush asks for a pass now and waits for it: the pass that starts after the call, so
// everything stored before Flush was called is attempted. It returns the pass's outcome
// (nil when everything went; ErrBudgetExhausted when the backlog waits for tomorrow; the
// failure otherwise), ctx.Err() if ctx ends first (the pass goes on), or ErrNotRunning.
func (u *Uplink) Flush(ctx context.Context) error {
	w := make(chan error, 1)
	u.mu.Lock()
	if !u.running {
		u.mu.Unlock()
		return ErrNotRunning
	}
	u.waiters = append(u.waiters, w)
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	select {
	case err := <-w:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Status returns a snapshot. It reads the store for the live lane's size.
func (u *Uplink) Status() Status {
	u.mu.Lock()
	s := u.st
	s.BytesToday = u.bytesTodayLocked()
	s.DailyBytes = u.opts.DailyBytes
	s.Rejected = u.counters.Rejected
	s.BatchLimit, s.BatchMax = u.limit, u.opts.BatchMax
	s.AckedAhead = map[spool.Stream]uint64{}
	var ahead [numStreams + 1]rangeSet
	for _, st := range streams {
		ahead[st].rs = append([]seqRange(nil), u.ahead[st].rs...)
		s.AckedAhead[st] = ahead[st].count()
	}
	withReadings := u.readingsAllowedLocked()
	u.mu.Unlock()

	s.Live = map[spool.Stream]int{}
	var seen uint64
	if b, err := u.liveSet(&ahead, &seen, true, withReadings, u.opts.BatchMax+u.opts.LiveReadings); err == nil {
		for _, it := range b.items {
			s.Live[it.st]++
		}
	}
	return s
}

// pass sends the live lane, then the backlog, batch after batch without waiting, until
// nothing is left, a batch fails, the budget holds the backlog, or ctx ends. Before every
// backlog batch the live lane is looked at again, so an alert raised during a long drain
// goes next, not after the drain, and the readings stored since the last batch go with the
// next one.
//
// Once it has sent a batch, a pass leaves a backlog smaller than a batch made only of
// records stored since the pass began (while its batches were on their way) to the next
// pass, Linger later, unless a Flush waits for it (flush). Sending such a tail at once
// would keep a busy station's pass going in batches of a few readings, one per round
// trip, for as long as readings keep arriving: a request, a cursor commit and their CPU
// for every handful of readings.
//
// Backlog batches travel two at a time (see flights) unless a daily byte budget is set;
// the pass returns once every batch it sent is answered and recorded.
func (u *Uplink) pass(ctx context.Context, flush bool) (err error) {
	u.setState(Sending)
	if u.tokenStale {
		tok, err := u.opts.Token()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrAuth, err)
		}
		u.token, u.tokenStale = tok, false
	}
	// seen is the newest reading the live lane has looked at in this pass: the ones above
	// it are new since the last batch was built.
	var seen uint64
	// top is the newest record of each backlog stream when the pass began.
	var top [numStreams + 1]uint64
	rs, err := u.queue.Readings(spool.Query{Limit: 1})
	if err != nil {
		return fmt.Errorf("read the newest reading: %w", err)
	}
	recs, err := u.queue.LastRecords(spool.WQI, 1)
	if err != nil {
		return fmt.Errorf("read the newest WQI: %w", err)
	}
	if len(rs) == 1 {
		top[spool.Readings] = rs[0].Seq
	}
	if len(recs) == 1 {
		top[spool.WQI] = recs[0].Seq
	}
	var fl flights
	defer func() {
		if lerr := u.land(&fl, 0); err == nil {
			err = lerr
		}
	}()
	for first := true; ctx.Err() == nil; first = false {
		// At most InFlight batches on their way: the oldest lands before the next is built,
		// so that what it confirms is known, and what was stored while it travelled rides
		// in the next batch.
		if len(fl) >= u.opts.InFlight {
			if err := u.land(&fl, u.opts.InFlight-1); err != nil {
				return err
			}
		}
		// Records stored from here on may miss this batch: their nudges count anew.
		nudged := u.firstNudge.Swap(nil)
		u.mu.Lock()
		limit, budgetLeft, withReadings := u.limit, u.budgetLeftLocked(), u.readingsAllowedLocked()
		u.mu.Unlock()
		// Only this goroutine writes u.ahead, so it reads it without the lock.
		b, err := u.liveSet(fl.skipping(&u.ahead), &seen, first, withReadings, limit)
		if err != nil {
			return err
		}
		if b.empty() {
			after := fl.after()
			if b, err = u.backlog(&u.ahead, &seen, withReadings, limit, &after, fl.below()); err != nil {
				return err
			}
			if b.empty() {
				if len(fl) == 0 {
					return u.sendHealth(ctx)
				}
				// The rest may lie behind the batches in flight: once they land, look again.
				if err := u.land(&fl, len(fl)-1); err != nil {
					return err
				}
				continue
			}
			if !first && !flush && len(b.items) < limit && len(b.skip) == 0 && newSince(b, &top) {
				// The tail goes after Linger, counted from its first record's nudge,
				// with what joins it.
				if nudged != nil {
					u.firstNudge.Store(nudged)
				}
				u.Nudge()
				// What is in flight lands first: a health record is not sent beside it.
				if err := u.land(&fl, 0); err != nil {
					return err
				}
				return u.sendHealth(ctx)
			}
			if u.opts.DailyBytes > 0 && len(b.items) > 0 {
				// A batch that does not encode is split by deliver; it cannot be weighed here.
				if b.body, err = u.encode(b.items); err == nil && int64(len(b.body))+requestOverhead > budgetLeft {
					u.mu.Lock()
					u.holdLocked()
					u.mu.Unlock()
					if err := u.commit(ctx); err != nil {
						return err
					}
					if err := u.sendHealth(ctx); err != nil {
						return err
					}
					return ErrBudgetExhausted
				}
			}
			if u.pipelined() {
				// The new readings go just ahead of the backlog's batch, in a batch of their
				// own: a few readings are stored in a moment where a full batch takes the
				// time of its rows.
				if live := b.splitLive(); live != nil {
					if err := u.launch(ctx, &fl, live); err != nil {
						return err
					}
				}
				if err := u.launch(ctx, &fl, b); err != nil {
					return err
				}
				continue
			}
		}
		if err := u.process(ctx, b); err != nil {
			return err
		}
		// The health record goes with the live lane: after the alerts and the newest
		// data, before the backlog's next batch.
		if err := u.sendHealth(ctx); err != nil {
			return err
		}
	}
	return ctx.Err()
}

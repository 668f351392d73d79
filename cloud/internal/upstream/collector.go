package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Source fetches one round from an upstream service: what it has published since cursor
// ("" on the first round). A source that cannot resume returns everything each time.
//
// A round that failed in part (one station of many) returns what it got together with
// the error; the cursor it returns must not pass what failed. A round that got nothing
// returns an empty Batch.
type Source interface {
	Fetch(ctx context.Context, cursor string) (Batch, error)
}

// Sink stores upstream readings: for each, by its Key, nothing if Classify says
// Unchanged, a new current value otherwise (keeping a revised one's predecessor). It
// reports what it did.
type Sink interface {
	StoreUpstream(ctx context.Context, rs []Reading) (Stored, error)
}

// Stored counts what a Sink did with a batch.
type Stored struct {
	New       int `json:"new"`
	Revised   int `json:"revised"`
	Unchanged int `json:"unchanged"`
}

// Cursors keeps each source's cursor across rounds and restarts.
type Cursors interface {
	// Cursor returns the saved cursor of source, "" if there is none.
	Cursor(ctx context.Context, source string) (string, error)
	SetCursor(ctx context.Context, source, cursor string) error
}

// Skip kinds the Collector adds to a batch's own.
const (
	// SkipDuplicate: a second reading with the key of one earlier in the same batch (the
	// first is kept; taking either in turn would make each round a revision).
	SkipDuplicate = "duplicate"
	// SkipNotFinite: a NaN or infinite value, which a source should never deliver.
	SkipNotFinite = "not_finite"
)

// FutureSlack is how far ahead of now a reading's time may be before it is graded
// suspect (a typo in a year, a clock in another zone).
const FutureSlack = 24 * time.Hour

// Collector runs rounds of one source. Build it with NewCollector.
type Collector struct {
	name    string
	src     Source
	sink    Sink
	cursors Cursors
	log     *slog.Logger
	now     func() time.Time

	round sync.Mutex // one round at a time

	mu     sync.Mutex
	status Status
}

// NewCollector returns a collector for the source named name. log may be nil; now nil
// means time.Now.
func NewCollector(name string, src Source, sink Sink, cursors Cursors, log *slog.Logger, now func() time.Time) (*Collector, error) {
	switch {
	case name == "":
		return nil, errors.New("upstream collector: a source name is required")
	case src == nil || sink == nil || cursors == nil:
		return nil, fmt.Errorf("upstream %s: source, sink and cursors are required", name)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Collector{name: name, src: src, sink: sink, cursors: cursors, log: log, now: now,
		status: Status{Source: name, Skipped: Counts{}}}, nil
}

// Name returns the source's name.
func (c *Collector) Name() string { return c.name }

// Collect runs one round: fetch since the saved cursor, keep the first of duplicate keys,
// grade, store, save the new cursor. It returns the round's error (also kept in Status);
// a failed round changes nothing stored and leaves the cursor where it was, so the next
// one repeats it. What a partly failed round did get is stored, and the round still
// counts as failed.
func (c *Collector) Collect(ctx context.Context) error {
	c.round.Lock()
	defer c.round.Unlock()
	err := c.collect(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status.Rounds++
	if err != nil {
		c.status.Failures++
		c.status.ConsecutiveFailures++
		c.status.LastError = err.Error()
		c.status.LastErrorAt = c.now().UTC()
		return err
	}
	c.status.ConsecutiveFailures = 0
	c.status.LastSuccess = c.now().UTC()
	return nil
}

func (c *Collector) collect(ctx context.Context) error {
	cursor, err := c.cursors.Cursor(ctx, c.name)
	if err != nil {
		return fmt.Errorf("upstream %s: read cursor: %w", c.name, err)
	}
	b, fetchErr := c.src.Fetch(ctx, cursor)
	if fetchErr != nil {
		fetchErr = fmt.Errorf("upstream %s: %w", c.name, fetchErr)
		if len(b.Readings) == 0 && b.Cursor == "" {
			return fetchErr
		}
	}
	if b.Skipped == nil {
		b.Skipped = Counts{}
	}
	now := c.now()
	rs := c.prepare(b.Readings, b.Skipped, now)
	var st Stored
	if len(rs) > 0 {
		if st, err = c.sink.StoreUpstream(ctx, rs); err != nil {
			return fmt.Errorf("upstream %s: store %d readings: %w", c.name, len(rs), err)
		}
	}
	if b.Cursor != "" && b.Cursor != cursor {
		if err := c.cursors.SetCursor(ctx, c.name, b.Cursor); err != nil {
			return fmt.Errorf("upstream %s: save cursor: %w", c.name, err)
		}
	}
	c.log.Info("upstream round", "records", b.Records, "readings", len(rs), "new", st.New,
		"revised", st.Revised, "unchanged", st.Unchanged, "skipped", b.Skipped.Total(),
		"source_unchanged", b.Unchanged)
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.status
	s.Records += int64(b.Records)
	s.Readings += int64(len(rs))
	s.New += int64(st.New)
	s.Revised += int64(st.Revised)
	s.Unchanged += int64(st.Unchanged)
	s.Skipped.Merge(b.Skipped)
	s.LastRound = Round{Records: b.Records, Readings: len(rs), Stored: st, Skipped: b.Skipped,
		SourceUnchanged: b.Unchanged}
	for _, r := range rs {
		if r.Time.After(s.Newest) && !r.Time.After(now.Add(FutureSlack)) {
			s.Newest = r.Time.UTC()
		}
	}
	return fetchErr
}

// prepare sets the provenance, drops non-finite values and repeated keys, and grades.
func (c *Collector) prepare(in []Reading, skipped Counts, now time.Time) []Reading {
	out := make([]Reading, 0, len(in))
	seen := make(map[Key]struct{}, len(in))
	for _, r := range in {
		r.Origin.Source = c.name
		if r.Sensor == "" {
			r.Sensor = c.name
		}
		r.Time = r.Time.UTC()
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			skipped.Add(SkipNotFinite, 1)
			continue
		}
		k := r.Key()
		if _, dup := seen[k]; dup {
			skipped.Add(SkipDuplicate, 1)
			continue
		}
		seen[k] = struct{}{}
		Grade(&r.Reading, now)
		out = append(out, r)
	}
	return out
}

// Grade sets the quality of an upstream reading from its parameter's ranges and its time:
// bad outside the physical range (or for an unknown parameter), suspect outside the
// plausible range or stamped more than FutureSlack after now, good otherwise. The spike,
// flatline and clock checks of station data do not apply: upstream values come days to
// years apart and are dated by the publisher.
func Grade(r *telemetry.Reading, now time.Time) {
	info, known := telemetry.Info(r.Param)
	var flags telemetry.Flags
	switch {
	case !known:
		r.Quality, r.Flags = telemetry.Bad, telemetry.FlagOutOfRange
		return
	case !info.Physical.Contains(r.Value):
		r.Quality, r.Flags = telemetry.Bad, telemetry.FlagOutOfRange
		return
	case !info.Plausible.Contains(r.Value):
		flags |= telemetry.FlagImplausible
	}
	if r.Time.After(now.Add(FutureSlack)) {
		flags |= telemetry.FlagFuture
	}
	r.Flags = flags
	r.Quality = telemetry.Good
	if flags != 0 {
		r.Quality = telemetry.Suspect
	}
}

// Status is a source's record since the collector was built: what /stats shows under
// `upstream`.
type Status struct {
	Source              string    `json:"source"`
	LastSuccess         time.Time `json:"last_success,omitzero"`
	LastError           string    `json:"last_error,omitempty"`
	LastErrorAt         time.Time `json:"last_error_at,omitzero"`
	Rounds              int64     `json:"rounds"`
	Failures            int64     `json:"failures"`
	ConsecutiveFailures int64     `json:"consecutive_failures"`
	Records             int64     `json:"records"`  // upstream records read
	Readings            int64     `json:"readings"` // readings handed to the sink
	New                 int64     `json:"new"`
	Revised             int64     `json:"revised"`
	Unchanged           int64     `json:"unchanged"`
	Skipped             Counts    `json:"skipped"`
	// Newest is the time of the newest reading delivered; Lag is how old it was when
	// Status was called (0 before any).
	Newest    time.Time `json:"newest,omitzero"`
	LagSecond float64   `json:"lag_s"`
	LastRound Round     `json:"last_round"`
}

// Round is what the last successful round did.
type Round struct {
	Records         int    `json:"records"`
	Readings        int    `json:"readings"`
	Stored          Stored `json:"stored"`
	Skipped         Counts `json:"skipped,omitempty"`
	SourceUnchanged bool   `json:"source_unchanged"`
}

// Status returns a copy of the source's status. Safe for concurrent use.
func (c *Collector) Status() Status {
	c.mu.Lock()
	s := c.status
	s.Skipped = Counts{}
	s.Skipped.Merge(c.status.Skipped)
	s.LastRound.Skipped = Counts{}
	s.LastRound.Skipped.Merge(c.status.LastRound.Skipped)
	c.mu.Unlock()
	if !s.Newest.IsZero() {
		s.LagSecond = max(c.now().Sub(s.Newest), 0).Seconds()
	}
	return s
}

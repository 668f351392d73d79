package fanout

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/internal/backoff"
)

// SourceOptions tune a StoreSource. Zero fields mean the defaults.
type SourceOptions struct {
	// PollInterval is how often new events are read without a notification (a safety
	// net for lost notifications), default 5s.
	PollInterval time.Duration
	// ReplayConcurrency bounds resumes reading the database at once, default 2.
	ReplayConcurrency int
	Log               *slog.Logger // default: discard
}

// StoreSource is the Source of every replica: the events table of the database. Follow
// holds one LISTEN connection, and on a notification (and every PollInterval, and after
// a reconnection) reads the events after the last one it delivered; replays read the
// table, at most ReplayConcurrency at once. Its methods are safe for concurrent use;
// Follow may run once at a time.
type StoreSource struct {
	st   *store.Store
	opts SourceOptions
	log  *slog.Logger
	sem  chan struct{} // replay slots

	listenFailures, fetchFailures atomic.Int64
}

var _ Source = (*StoreSource)(nil)

// NewStoreSource returns the Source that reads st.
func NewStoreSource(st *store.Store, opts SourceOptions) *StoreSource {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.ReplayConcurrency <= 0 {
		opts.ReplayConcurrency = DefaultReplayConcurrency
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &StoreSource{st: st, opts: opts, log: opts.Log, sem: make(chan struct{}, opts.ReplayConcurrency)}
}

// Failures counts the failures to listen and to read new events since the start.
func (s *StoreSource) Failures() (listen, fetch int64) {
	return s.listenFailures.Load(), s.fetchFailures.Load()
}

// The waits between attempts while the database cannot be read.
const (
	retryBase = 500 * time.Millisecond
	retryMax  = 30 * time.Second
)

// Follow starts at the newest events, retrying with backoff while the database does not
// answer, then listens for notifications and polls, reconnecting with backoff when the
// database goes away. It returns nil when ctx ends.
func (s *StoreSource) Follow(ctx context.Context, recent int, start func(after int64, evs []store.Event), publish func(evs []store.Event)) error {
	bo := backoff.New(retryBase, retryMax, backoff.Equal)
	var cursor int64
	for {
		after, last, evs, err := s.tail(ctx, recent)
		if err == nil {
			start(after, evs)
			cursor = last
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("live events: cannot read the start position; retrying", "err", err)
		if backoff.Sleep(ctx, bo.Next()) != nil {
			return nil
		}
	}
	s.follow(ctx, cursor, publish)
	return nil
}

// tail reads the newest events, at most n: those in (after, last].
func (s *StoreSource) tail(ctx context.Context, n int) (after, last int64, evs []store.Event, err error) {
	_, last, err = s.st.EventBounds(ctx)
	if err != nil {
		return 0, 0, nil, err
	}
	after = max(0, last-int64(n))
	evs, err = s.st.EventRows(ctx, store.EventQuery{After: after, Upto: last, Limit: n})
	return after, last, evs, err
}

// follow is the listen-and-fetch loop; cursor is the last event delivered.
func (s *StoreSource) follow(ctx context.Context, cursor int64, publish func([]store.Event)) {
	var l *store.EventListener
	defer func() {
		if l != nil {
			if err := l.Close(context.WithoutCancel(ctx)); err != nil {
				s.log.Debug("live events: close listener", "err", err)
			}
		}
	}()
	bo := backoff.New(retryBase, retryMax, backoff.Equal)
	catchUp := func() { cursor = s.catchUp(ctx, cursor, publish) }
	for ctx.Err() == nil {
		if l == nil {
			var err error
			l, err = s.st.ListenEvents(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.listenFailures.Add(1)
				if bo.Failures() == 0 {
					s.log.Warn("live events: cannot listen; retrying (events still arrive by polling)", "err", err)
				}
				catchUp()
				if backoff.Sleep(ctx, bo.Next()) != nil {
					return
				}
				continue
			}
			if bo.Failures() > 0 {
				s.log.Info("live events: listening again")
			}
			bo.Reset()
			catchUp() // what came while nobody listened
		}
		wctx, cancel := context.WithTimeout(ctx, s.opts.PollInterval)
		id, err := l.Wait(wctx)
		cancel()
		switch {
		case err == nil:
			if id == 0 || id > cursor {
				catchUp()
			}
		case errors.Is(err, store.ErrNoNotification):
			catchUp() // the poll
		default:
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("live events: listener lost; reconnecting", "err", err)
			if cerr := l.Close(context.WithoutCancel(ctx)); cerr != nil {
				s.log.Debug("live events: close listener", "err", cerr)
			}
			l = nil
		}
	}
}

// catchUp publishes every event after cursor and returns the new cursor.
func (s *StoreSource) catchUp(ctx context.Context, cursor int64, publish func([]store.Event)) int64 {
	const page = 1000
	for ctx.Err() == nil {
		evs, err := s.st.EventRows(ctx, store.EventQuery{After: cursor, Limit: page})
		if err != nil {
			if ctx.Err() == nil {
				s.fetchFailures.Add(1)
				s.log.Warn("live events: fetch failed; retrying at the next notification or poll", "err", err)
			}
			return cursor
		}
		if len(evs) > 0 {
			publish(evs)
			cursor = evs[len(evs)-1].ID
		}
		if len(evs) < page {
			break
		}
	}
	return cursor
}

// IDBefore asks the database, in one of the replay slots.
func (s *StoreSource) IDBefore(ctx context.Context, t time.Time) (int64, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	return s.st.EventIDBefore(ctx, t)
}

// Replay checks q against the table's bounds and the gap's size and age, then reads the
// events in pages, in one of the replay slots.
func (s *StoreSource) Replay(ctx context.Context, q ReplayQuery, send func(store.Event) error) error {
	release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	first, last, err := s.st.EventBounds(ctx)
	if err != nil {
		return err
	}
	var gap store.EventGap
	if q.Upto > q.After && q.After <= last {
		if gap, err = s.st.Gap(ctx, q.eventQuery(q.Max+1)); err != nil {
			return err
		}
	}
	if err := q.Check(first, last, gap); err != nil {
		return err
	}
	const page = 500
	for cursor := q.After; cursor < q.Upto; {
		pq := q.eventQuery(page)
		pq.After = cursor
		evs, err := s.st.EventRows(ctx, pq)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if err := send(e); err != nil {
				return err
			}
		}
		if len(evs) < page {
			break
		}
		cursor = evs[len(evs)-1].ID
	}
	return nil
}

// UnknownStations looks the stations up.
func (s *StoreSource) UnknownStations(ctx context.Context, ids []string) ([]string, error) {
	return s.st.UnknownStations(ctx, ids)
}

// acquire takes one of the slots that bound resumes reading the database at once.
func (s *StoreSource) acquire(ctx context.Context) (release func(), err error) {
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/internal/backoff"
)

// Outbox is the storage a Dispatcher works on: *store.Store.
type Outbox interface {
	RouteNotifications(ctx context.Context, limit int, now time.Time, route func(store.Notification) []string) (int, error)
	DeliverNotification(ctx context.Context, c store.NotifyClaim, send func(context.Context, store.NotifyMessage) store.NotifyResult) (bool, error)
	NotificationStats(ctx context.Context, channels []string) (store.NotifyStats, error)
	PruneNotifications(ctx context.Context, expireBefore, deleteBefore, now time.Time) (store.NotifyPruned, error)
	ListenNotifications(ctx context.Context) (*store.EventListener, error)
}

// sender sends a message on one channel.
type sender interface {
	send(ctx context.Context, m *message) error
	close() // releases idle connections
}

// channel is a configured channel and what this replica has seen of it.
type channel struct {
	cfg    Channel
	filter filter
	sender sender

	delivered   atomic.Uint64 // messages
	transitions atomic.Uint64 // transitions in those messages
	failed      atomic.Uint64 // failed attempts

	mu        sync.Mutex
	lastErr   string
	lastErrAt time.Time
}

// Dispatcher sends alert transitions from the outbox to the channels. See the package
// documentation.
type Dispatcher struct {
	out    Outbox
	opts   Options
	log    *slog.Logger
	chans  []*channel
	byName map[string]*channel
	names  []string
	retry  *backoff.Backoff // used through After only: safe for the workers to share

	running  atomic.Bool
	expired  atomic.Uint64
	dbErrors atomic.Uint64
	dbDown   atomic.Bool

	mu      sync.Mutex
	snap    store.NotifyStats
	snapAt  time.Time
	snapErr string
}

// New validates opts and builds a Dispatcher on out. It starts nothing: Run does.
func New(out Outbox, opts Options) (*Dispatcher, error) {
	opts.Channels = slices.Clone(opts.Channels)
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.fill()
	d := &Dispatcher{
		out: out, opts: opts, log: opts.Log, byName: map[string]*channel{},
		retry: backoff.New(opts.RetryBase, opts.RetryMax, backoff.Equal),
	}
	for _, c := range opts.Channels {
		ch := &channel{cfg: c, filter: newFilter(c)}
		switch c.Kind {
		case KindWebhook:
			ch.sender = newWebhook(c)
		case KindEmail:
			e, err := newEmail(c, opts.Hostname, opts.Now)
			if err != nil {
				return nil, fmt.Errorf("notify %q: %w", c.Name, err)
			}
			ch.sender = e
		}
		d.chans = append(d.chans, ch)
		d.byName[c.Name] = ch
		d.names = append(d.names, c.Name)
	}
	return d, nil
}

// Run routes and sends notifications until ctx ends, then returns nil once its goroutines
// have stopped. Call it once.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("notify: Run called twice")
	}
	defer func() {
		for _, c := range d.chans {
			c.sender.close()
		}
	}()
	var wg sync.WaitGroup
	notes := make(chan struct{}, 1)
	wg.Go(func() { d.listen(ctx, notes) })
	wakes := make([]chan struct{}, d.opts.Workers)
	for i := range wakes {
		wake := make(chan struct{}, 1)
		wakes[i] = wake
		wg.Go(func() { d.work(ctx, wake) })
	}
	d.loop(ctx, notes, wakes)
	wg.Wait()
	return nil
}

// loop routes new transitions and wakes the workers on every tick and every wake-up from
// the database, and now and then refreshes the statistics and prunes.
func (d *Dispatcher) loop(ctx context.Context, notes <-chan struct{}, wakes []chan struct{}) {
	tick := time.NewTicker(d.opts.Interval)
	defer tick.Stop()
	var statsAt, pruneAt time.Time // when each last ran (this process's clock)
	for {
		d.routeAll(ctx)
		for _, w := range wakes {
			poke(w)
		}
		if statsAt.IsZero() || time.Since(statsAt) >= d.opts.StatsInterval {
			d.refresh(ctx)
			statsAt = time.Now()
		}
		if pruneAt.IsZero() || time.Since(pruneAt) >= d.opts.PruneInterval {
			d.prune(ctx)
			pruneAt = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-notes:
		}
	}
}

func poke(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// listen wakes the loop whenever transitions are queued, listening again after a lost
// connection; the loop's ticks cover the gaps.
func (d *Dispatcher) listen(ctx context.Context, notes chan<- struct{}) {
	b := backoff.New(time.Second, time.Minute, backoff.Full)
	for {
		l, err := d.out.ListenNotifications(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.log.Debug("listen for notifications", "err", err)
			if backoff.Sleep(ctx, b.Next()) != nil {
				return
			}
			continue
		}
		b.Reset()
		poke(notes) // whatever came while nobody listened
		for {
			if _, err := l.Wait(ctx); err != nil {
				if ctx.Err() == nil {
					d.log.Debug("wait for notifications", "err", err)
				}
				break
			}
			poke(notes)
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		if err := l.Close(cctx); err != nil {
			d.log.Debug("close notification listener", "err", err)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// work sends due messages until there are none, then waits to be woken.
func (d *Dispatcher) work(ctx context.Context, wake <-chan struct{}) {
	for {
		for ctx.Err() == nil {
			found, err := d.out.DeliverNotification(ctx, store.NotifyClaim{
				Channels: d.names, Now: d.opts.Now(), Max: d.opts.MaxPerMessage,
			}, d.send)
			d.dbResult(ctx, "deliver notifications", err)
			if err != nil || !found {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
	}
}

// send makes one attempt at a message and says what the store is to record.
func (d *Dispatcher) send(ctx context.Context, m store.NotifyMessage) store.NotifyResult {
	c := d.byName[m.Channel]
	if c == nil { // the claim names only our channels
		return store.NotifyResult{At: d.opts.Now(), Err: fmt.Errorf("no channel %q", m.Channel), NextAt: d.opts.Now().Add(d.opts.RetryMax)}
	}
	msg := newMessage(m)
	sctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	err := c.sender.send(sctx, msg)
	cancel()
	now := d.opts.Now()
	log := d.log.With("channel", m.Channel, "station", m.Station, "message", m.Number, "delivery", msg.id,
		"transitions", len(m.Notifications), "attempt", m.Failures+1)
	if err == nil {
		c.delivered.Add(1)
		c.transitions.Add(uint64(len(m.Notifications)))
		log.Info("notification delivered")
		return store.NotifyResult{At: now, NextAt: now.Add(c.cfg.Group)}
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return store.NotifyResult{At: now, Err: err} // cut short by a shutdown: not an attempt
	}
	c.failed.Add(1)
	c.mu.Lock()
	c.lastErr, c.lastErrAt = err.Error(), now
	c.mu.Unlock()
	failures := m.Failures + 1
	wait := max(d.retry.After(failures), retryAfter(err))
	log.Warn("notification failed", "err", err, "retry_in", wait.Round(time.Second))
	return store.NotifyResult{At: now, Err: err, NextAt: now.Add(wait), Failing: failures >= d.opts.FailingAfter}
}

// routeAll routes what is queued, a batch at a time.
func (d *Dispatcher) routeAll(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := d.out.RouteNotifications(ctx, d.opts.RouteBatch, d.opts.Now(), d.route)
		d.dbResult(ctx, "route notifications", err)
		if err != nil || n < d.opts.RouteBatch {
			return
		}
	}
}

// route lists the channels n is for.
func (d *Dispatcher) route(n store.Notification) []string {
	var out []string
	for _, c := range d.chans {
		if c.filter.match(n) {
			out = append(out, c.cfg.Name)
		}
	}
	return out
}

func (d *Dispatcher) refresh(ctx context.Context) {
	st, err := d.out.NotificationStats(ctx, d.names)
	d.dbResult(ctx, "notification stats", err)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.snapErr = err.Error()
		return
	}
	d.snap, d.snapAt, d.snapErr = st, d.opts.Now(), ""
}

func (d *Dispatcher) prune(ctx context.Context) {
	now := d.opts.Now()
	p, err := d.out.PruneNotifications(ctx, now.Add(-d.opts.MaxAge), now.Add(-d.opts.Retention), now)
	d.dbResult(ctx, "prune notifications", err)
	d.expired.Add(uint64(p.Expired))
	if p.Expired > 0 {
		d.log.Warn("notifications given up", "expired", p.Expired, "max_age", d.opts.MaxAge)
	}
	if p.Deleted > 0 || p.Resolved > 0 {
		d.log.Debug("notifications pruned", "deleted", p.Deleted, "resolved_alerts", p.Resolved)
	}
}

// dbResult counts database errors and logs when the database goes away and comes back,
// not at every attempt in between.
func (d *Dispatcher) dbResult(ctx context.Context, what string, err error) {
	switch {
	case err == nil:
		if d.dbDown.Swap(false) {
			d.log.Info("notifications: database reachable again")
		}
	case ctx.Err() != nil: // shutting down
	default:
		d.dbErrors.Add(1)
		if !d.dbDown.Swap(true) {
			d.log.Warn("notifications: "+what, "err", err)
		} else {
			d.log.Debug("notifications: "+what, "err", err)
		}
	}
}

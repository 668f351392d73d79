package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/agent/internal/spool"
)

// OverflowQuiet is how long the buffer must go without evicting unsent data before the
// buffer_overflow alert resolves.
const OverflowQuiet = time.Hour

// overflowCheck is how often Run looks whether the quiet time has passed.
const overflowCheck = time.Minute

// Overflow turns the buffer's eviction reports into one buffer_overflow alert: raised
// while unsent readings are downsampled or dropped (the uplink has been down too long),
// resolved once OverflowQuiet has passed without. Evictions of forwarded history only
// are logged.
//
// Set Alerts and Stats before Run. OnEvict is the buffer's eviction hook: it may be
// called at any time, before Run too, and never blocks. Run owns the one goroutine that
// raises and resolves the alert.
type Overflow struct {
	Alerts *Manager
	Stats  func() spool.Stats // the buffer's counters, for the alert's message
	Log    *slog.Logger       // nil discards

	once      sync.Once
	reports   chan spool.Eviction
	lastEvict atomic.Int64 // unix nanos of the last eviction of unsent data
}

func (o *Overflow) init() {
	o.once.Do(func() { o.reports = make(chan spool.Eviction, 1) })
}

// OnEvict takes one eviction report. It runs on the buffer's writer goroutine, so it
// only hands the report over: it must neither block nor write to the buffer.
func (o *Overflow) OnEvict(ev spool.Eviction) {
	o.init()
	if ev.Unforwarded() == 0 && !ev.Full {
		return
	}
	if ev.Unforwarded() > 0 {
		o.lastEvict.Store(time.Now().UnixNano())
	}
	select {
	case o.reports <- ev:
	default: // a report is already waiting; the buffer's counters are cumulative anyway
	}
}

// Run raises the alert for each report and resolves it when the buffer has been quiet,
// until ctx ends.
func (o *Overflow) Run(ctx context.Context) error {
	o.init()
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tick := time.NewTicker(overflowCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-o.reports:
			o.raise(ctx, log, ev)
		case now := <-tick.C:
			if last := o.lastEvict.Load(); last != 0 && now.Sub(time.Unix(0, last)) >= OverflowQuiet {
				o.Alerts.Set(ctx, Condition{Key: "buffer:overflow", Rule: RuleBufferOverflow}, false)
			}
		}
	}
}

func (o *Overflow) raise(ctx context.Context, log *slog.Logger, ev spool.Eviction) {
	if ev.Unforwarded() == 0 {
		log.Info("buffer near full: forwarded history evicted", "expired", ev.ExpiredForwarded,
			"forwarded", ev.Forwarded)
		return
	}
	st := o.Stats()
	o.Alerts.Set(ctx, Condition{
		Key: "buffer:overflow", Rule: RuleBufferOverflow, Severity: Critical,
		Message: fmt.Sprintf("Buffer full (%.0f MiB): unsent readings downsampled to hourly means: %d, dropped: %d; the uplink has been down too long",
			float64(st.MaxBytes)/(1<<20), st.Evicted.Downsampled, st.Evicted.DroppedUnforwarded),
	}, true)
}

// Package periodic runs a library's periodic work (go-coap's retransmissions, expiring
// exchanges and inactivity checks) on goroutines that their owner stops and waits for,
// instead of the library's default ones, which outlive a closed connection or server by
// up to a tick.
package periodic

import (
	"sync"
	"time"
)

// Runner calls functions every tick until they decline or the Runner is closed. Its Run
// is go-coap's periodic.Func (options.WithPeriodicRunner). Run and Close are safe for
// concurrent use; Run must not be called after Close.
type Runner struct {
	every time.Duration
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// New returns a Runner that ticks every d.
func New(d time.Duration) *Runner {
	return &Runner{every: d, stop: make(chan struct{})}
}

// Run calls f every tick, on a goroutine of its own, until f returns false or the Runner
// is closed.
func (r *Runner) Run(f func(now time.Time) bool) {
	r.wg.Go(func() {
		tk := time.NewTicker(r.every)
		defer tk.Stop()
		for {
			select {
			case <-r.stop:
				return
			case now := <-tk.C:
				if !f(now) {
					return
				}
			}
		}
	})
}

// Close stops every loop Run started and waits for them. It is idempotent.
func (r *Runner) Close() {
	r.once.Do(func() { close(r.stop) })
	r.wg.Wait()
}

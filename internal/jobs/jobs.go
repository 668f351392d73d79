// Package jobs runs the periodic background work of both daemons: the agent's alert
// ticks, status and buffer retention, the cloud's storage maintenance and station health.
//
// Each Job has a name and an interval, and logs under its name. Run owns one goroutine per
// job and returns only after all of them have stopped. A job runs at once, then Interval
// after each run ends, so a slow run delays the next instead of piling up. A job that
// fails is logged and tried again at its next turn; it never stops the program.
package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Job is one periodic task.
type Job struct {
	Name     string        // in the log, as job=<Name>
	Interval time.Duration // between the end of one run and the start of the next
	// Run does one round. Its context ends when the service stops.
	Run func(ctx context.Context) error
}

// Run runs every job at once and then every Interval until ctx ends. It returns after the
// last job goroutine has exited.
func Run(ctx context.Context, log *slog.Logger, jobs ...Job) {
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() { loop(ctx, log.With("job", j.Name, "every", j.Interval), j) })
	}
	wg.Wait()
}

func loop(ctx context.Context, log *slog.Logger, j Job) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		if err := j.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("job failed; retrying at the next interval", "err", err, "next_in", j.Interval)
		} else {
			log.Debug("job done", "took", time.Since(start))
		}
		t.Reset(j.Interval)
	}
}

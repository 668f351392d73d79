// Package jobs runs the service's periodic background work, each job named and with its
// own interval.
//
// Run owns one goroutine per job and returns only after all of them have stopped. A job
// that fails is logged and tried again at its next tick; it never stops the service.
package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Job is one periodic task.
type Job struct {
	Name     string
	Interval time.Duration
	// Run does one round. Its context ends when the service stops.
	Run func(ctx context.Context) error
}

// Run runs every job at once and then every Interval until ctx ends. It returns after the
// last job goroutine has exited.
func Run(ctx context.Context, log *slog.Logger, jobs ...Job) {
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() { loop(ctx, log.With("job", j.Name), j) })
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

package jobs_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/purehealth/purehealth/internal/jobs"
)

func TestRunTicksAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var ok, failing atomic.Int64
		done := make(chan struct{})
		go func() {
			jobs.Run(ctx, slog.New(slog.DiscardHandler),
				jobs.Job{Name: "ok", Interval: time.Hour, Run: func(context.Context) error { ok.Add(1); return nil }},
				jobs.Job{Name: "failing", Interval: 10 * time.Minute, Run: func(context.Context) error {
					failing.Add(1)
					return errors.New("boom")
				}},
			)
			close(done)
		}()
		synctest.Wait()
		assert.Equal(t, int64(1), ok.Load(), "a job runs at once")
		time.Sleep(3*time.Hour + time.Second)
		synctest.Wait()
		assert.Equal(t, int64(4), ok.Load(), "then every interval")
		assert.Equal(t, int64(19), failing.Load(), "a failing job keeps its schedule")
		cancel()
		<-done // Run returns once its goroutines have stopped
	})
}

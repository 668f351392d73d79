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

func TestRecorderCountsRunsAndFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var rec jobs.Recorder
		fail := atomic.Bool{}
		fail.Store(true)
		done := make(chan struct{})
		go func() {
			jobs.Run(ctx, slog.New(slog.DiscardHandler),
				rec.Wrap(jobs.Job{Name: "round", Interval: time.Minute, Run: func(ctx context.Context) error {
					time.Sleep(5 * time.Second)
					if fail.Load() {
						return errors.New("database gone")
					}
					return nil
				}}),
				rec.Wrap(jobs.Job{Name: "stopping", Interval: time.Hour, Run: func(ctx context.Context) error {
					<-ctx.Done()
					return ctx.Err()
				}}),
			)
			close(done)
		}()
		time.Sleep(time.Second)
		synctest.Wait()
		st := rec.Stats()["round"]
		assert.True(t, st.Running, "a run in progress shows")
		assert.Equal(t, 60.0, st.IntervalSeconds)

		time.Sleep(2*time.Minute + 10*time.Second) // runs at 0, 65 s, 130 s: two ended
		synctest.Wait()
		st = rec.Stats()["round"]
		assert.Equal(t, runSummary{Runs: 2, Failures: 2, LastSeconds: 5, LastError: "database gone", Running: true},
			runSummary{Runs: st.Runs, Failures: st.Failures, LastSeconds: st.LastSeconds, LastError: st.LastError, Running: st.Running})

		fail.Store(false)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		st = rec.Stats()["round"]
		assert.Equal(t, int64(3), st.Runs)
		assert.Equal(t, int64(2), st.Failures, "failures are kept")
		assert.Empty(t, st.LastError, "the last run succeeded")

		cancel()
		<-done
		assert.Equal(t, int64(0), rec.Stats()["stopping"].Failures, "a run cut by shutdown is no failure")
		assert.Equal(t, int64(1), rec.Stats()["stopping"].Runs)
	})
}

// runSummary is jobs.Stats without its times, for comparing.
type runSummary struct {
	Runs, Failures int64
	LastSeconds    float64
	LastError      string
	Running        bool
}

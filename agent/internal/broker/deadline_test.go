package broker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDeadlines(t *testing.T) {
	const timeout = 80 * time.Second
	t0 := time.Now()
	tests := []struct {
		name  string
		after time.Duration // since the first call, which creates a context
		same  bool          // gets the first call's context
	}{
		{name: "same instant", after: 0, same: true},
		{name: "within the first eighth", after: timeout/8 - time.Nanosecond, same: true},
		{name: "at the end of the first eighth", after: timeout / 8},
		{name: "much later", after: 3 * timeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDeadlines(t.Context(), timeout)
			t.Cleanup(d.stop)
			first := d.context(t0)
			now := t0.Add(tt.after)
			got := d.context(now)
			if tt.same {
				assert.Same(t, first, got)
			} else {
				assert.NotSame(t, first, got)
			}
			dl, ok := got.Deadline()
			require.True(t, ok, "the context must have a deadline")
			assert.LessOrEqual(t, dl.Sub(now), timeout, "no call gets more than the timeout")
			assert.GreaterOrEqual(t, dl.Sub(now), timeout*7/8, "no call gets less than 7/8 of it")
			assert.NoError(t, got.Err())
		})
	}
}

func TestDeadlinesEnd(t *testing.T) {
	t.Run("with the parent", func(t *testing.T) {
		parent, cancel := context.WithCancel(t.Context())
		d := newDeadlines(parent, time.Hour)
		ctx := d.context(time.Now())
		cancel()
		<-ctx.Done()
		assert.ErrorIs(t, ctx.Err(), context.Canceled)
	})
	t.Run("at the deadline", func(t *testing.T) {
		d := newDeadlines(t.Context(), time.Millisecond)
		t.Cleanup(d.stop)
		ctx := d.context(time.Now())
		<-ctx.Done()
		assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
	})
	t.Run("on stop", func(t *testing.T) {
		d := newDeadlines(t.Context(), time.Hour)
		ctx := d.context(time.Now())
		d.stop()
		<-ctx.Done()
		assert.ErrorIs(t, ctx.Err(), context.Canceled)
		assert.NotSame(t, ctx, d.context(time.Now()), "a stopped context is not handed out again")
		d.stop()
	})
}

func BenchmarkDeadlines(b *testing.B) {
	b.Run("shared", func(b *testing.B) {
		d := newDeadlines(b.Context(), DefaultIngestTimeout)
		defer d.stop()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				<-contextDone(d.context(time.Now()))
			}
		})
	})
	// What each publish cost before: a context and timer of its own.
	b.Run("per_call", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ctx, cancel := context.WithTimeout(b.Context(), DefaultIngestTimeout)
				<-contextDone(ctx)
				cancel()
			}
		})
	})
}

// closed is a channel that never blocks, for taking a context's Done channel (which the
// store selects on) without waiting on it.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func contextDone(ctx context.Context) <-chan struct{} {
	if ctx.Done() == nil {
		return nil
	}
	return closed
}

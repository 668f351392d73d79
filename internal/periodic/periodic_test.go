package periodic

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRunTicksUntilClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := New(time.Second)
		var ticks atomic.Int64
		r.Run(func(time.Time) bool { ticks.Add(1); return true })
		time.Sleep(3*time.Second + time.Millisecond)
		synctest.Wait()
		assert.Equal(t, int64(3), ticks.Load(), "one call a tick")
		r.Close()
		time.Sleep(5 * time.Second)
		assert.Equal(t, int64(3), ticks.Load(), "none after Close")
		r.Close() // idempotent
	})
}

func TestRunEndsWhenTheFunctionDeclines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := New(time.Second)
		var calls atomic.Int64
		r.Run(func(time.Time) bool { return calls.Add(1) < 2 })
		var other atomic.Int64
		r.Run(func(time.Time) bool { other.Add(1); return true })
		time.Sleep(10*time.Second + time.Millisecond)
		synctest.Wait()
		assert.Equal(t, int64(2), calls.Load(), "the loop ended when f returned false")
		assert.Equal(t, int64(10), other.Load(), "the other loop goes on")
		r.Close()
	})
}

// Close waits for a call in progress: nothing of the Runner outlives it.
func TestCloseWaitsForTheLoops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := New(time.Second)
		release := make(chan struct{})
		var done atomic.Bool
		r.Run(func(time.Time) bool {
			<-release
			done.Store(true)
			return true
		})
		time.Sleep(time.Second + time.Millisecond) // the first call is in progress
		synctest.Wait()
		closed := make(chan struct{})
		go func() { r.Close(); close(closed) }()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("Close returned while a call was in progress")
		default:
		}
		close(release)
		<-closed
		assert.True(t, done.Load())
	})
}

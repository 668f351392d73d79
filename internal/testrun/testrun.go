// Package testrun runs a component's Run method for a test, the way a program's main does:
// in a goroutine, until its context ends, and checks that it then returns nil in time.
package testrun

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Go runs run until stop is called or the test ends, and then checks that run returns nil
// within wait. stop may be called more than once.
func Go(t testing.TB, run func(context.Context) error, wait time.Duration) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(wait):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

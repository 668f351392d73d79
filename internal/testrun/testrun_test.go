package testrun

import (
	"context"
	"errors"
	"testing"
	"time"
)

// recorder is a testing.TB that keeps its errors.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Errorf(f string, a ...any) { r.errs = append(r.errs, f) }
func (r *recorder) Error(a ...any)            { r.errs = append(r.errs, "error") }
func (r *recorder) Cleanup(func())            {}

func TestGo(t *testing.T) {
	release := make(chan struct{}) // lets the run that ignores its context end with the test
	t.Cleanup(func() { close(release) })
	tests := []struct {
		name string
		run  func(context.Context) error
		errs int
	}{
		{"returns nil when stopped", func(ctx context.Context) error { <-ctx.Done(); return nil }, 0},
		{"returns an error", func(ctx context.Context) error { <-ctx.Done(); return errors.New("boom") }, 1},
		{"does not return", func(context.Context) error { <-release; return nil }, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			stop := Go(r, tc.run, 50*time.Millisecond)
			stop()
			stop()
			if len(r.errs) != tc.errs {
				t.Fatalf("errors %v, want %d", r.errs, tc.errs)
			}
		})
	}
}

// Package taskset runs a set of named long-lived tasks (the station's probes) that can be
// replaced while they run: Replace stops the tasks that are gone or changed, each waited
// for, and starts the new and changed ones; the others run on untouched.
//
// Run owns every task goroutine: it starts the tasks, and when its context ends (or a task
// fails) it stops them all and returns after the last one has returned. Replace is safe
// for concurrent use with Run and with itself (calls are serialized); before Run it only
// records the tasks, after Run has returned it records them for nothing.
package taskset

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
)

// Task is one named task. Spec tells its versions apart: Replace restarts a task whose Spec
// is no longer deeply equal to the running one's, and leaves it running otherwise (the new
// Run is then not used).
type Task struct {
	Name string
	Spec any
	// Run runs the task until ctx ends, then returns nil; an error ends the whole set.
	Run func(ctx context.Context) error
}

// Changes says what Replace did, by task name, each list sorted.
type Changes struct {
	Added, Removed, Restarted []string
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return len(c.Added) == 0 && len(c.Removed) == 0 && len(c.Restarted) == 0
}

// Set is a set of tasks. Its zero value is an empty set, ready to use.
type Set struct {
	replace sync.Mutex // serializes Replace

	mu      sync.Mutex
	tasks   map[string]*running
	ctx     context.Context         // while Run runs; nil before
	fail    context.CancelCauseFunc // ends Run with a task's error
	stopped bool                    // Run is stopping or has returned
	wg      sync.WaitGroup          // every task goroutine, also one Replace is stopping
}

type running struct {
	task   Task
	cancel context.CancelFunc // nil: not started
	done   chan struct{}      // closed when its goroutine returned
}

var errRunTwice = errors.New("taskset: Run called twice")

// Run starts the tasks and blocks until ctx ends or a task returns an error; then it
// stops every task and returns after all have returned: nil, or the first task's error
// (naming it).
func (s *Set) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ctx != nil || s.stopped {
		s.mu.Unlock()
		return errRunTwice
	}
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	s.ctx, s.fail = ctx, fail
	for _, r := range s.tasks {
		s.startLocked(r)
	}
	s.mu.Unlock()

	<-ctx.Done()
	s.mu.Lock()
	s.stopped = true
	all := make([]*running, 0, len(s.tasks))
	for _, r := range s.tasks {
		all = append(all, r)
	}
	s.mu.Unlock()
	for _, r := range all {
		r.stop()
	}
	s.wg.Wait() // and those a concurrent Replace is stopping
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	return nil
}

// startLocked starts r under the set's context. Callers hold s.mu, with Run running.
func (s *Set) startLocked(r *running) {
	ctx, cancel := context.WithCancel(s.ctx)
	r.cancel, r.done = cancel, make(chan struct{})
	fail, name, run := s.fail, r.task.Name, r.task.Run
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(r.done)
		if err := run(ctx); err != nil && ctx.Err() == nil {
			fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

// stop ends r's goroutine, if it was started, and waits for it.
func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
}

// Replace makes tasks the set: a task whose name is gone is stopped and waited for, one
// whose Spec changed is stopped, waited for and started again with its new Run, a new one
// is started; the rest are left running. Names must be unique (a later duplicate is
// ignored).
func (s *Set) Replace(tasks []Task) Changes {
	s.replace.Lock()
	defer s.replace.Unlock()
	want := make(map[string]Task, len(tasks))
	for _, t := range tasks {
		if _, dup := want[t.Name]; !dup {
			want[t.Name] = t
		}
	}
	var ch Changes
	var stop []*running
	s.mu.Lock()
	if s.tasks == nil {
		s.tasks = map[string]*running{}
	}
	for name, r := range s.tasks {
		t, ok := want[name]
		switch {
		case !ok:
			ch.Removed = append(ch.Removed, name)
		case !reflect.DeepEqual(t.Spec, r.task.Spec):
			ch.Restarted = append(ch.Restarted, name)
		default:
			continue
		}
		delete(s.tasks, name)
		stop = append(stop, r)
	}
	s.mu.Unlock()
	// Outside the lock: a stopping task may take its time, and Run must still be able to
	// stop the others meanwhile.
	for _, r := range stop {
		r.stop()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range tasks {
		if _, ok := s.tasks[t.Name]; ok {
			continue
		}
		r := &running{task: want[t.Name]}
		s.tasks[t.Name] = r
		if !slices.Contains(ch.Restarted, t.Name) {
			ch.Added = append(ch.Added, t.Name)
		}
		if s.ctx != nil && !s.stopped {
			s.startLocked(r)
		}
	}
	slices.Sort(ch.Added)
	slices.Sort(ch.Removed)
	slices.Sort(ch.Restarted)
	return ch
}

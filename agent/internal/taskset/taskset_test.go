package taskset

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const guard = 10 * time.Second

// tracker records which tasks run: a task is "name@spec" while its Run runs.
type tracker struct {
	mu      sync.Mutex
	running map[string]int
	starts  map[string]int
}

func newTracker() *tracker { return &tracker{running: map[string]int{}, starts: map[string]int{}} }

func (tr *tracker) task(name, spec string) Task {
	id := name + "@" + spec
	return Task{Name: name, Spec: spec, Run: func(ctx context.Context) error {
		tr.mu.Lock()
		tr.running[id]++
		tr.starts[id]++
		tr.mu.Unlock()
		<-ctx.Done()
		time.Sleep(5 * time.Millisecond) // a task takes a moment to let go of its device
		tr.mu.Lock()
		tr.running[id]--
		tr.mu.Unlock()
		return nil
	}}
}

func (tr *tracker) now() map[string]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[string]int{}
	for k, v := range tr.running {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

func (tr *tracker) startsOf(id string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.starts[id]
}

func runSet(t *testing.T, s *Set) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(guard):
				t.Fatal("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestReplaceWhileRunning(t *testing.T) {
	tr := newTracker()
	var s Set
	ch := s.Replace([]Task{tr.task("a", "1"), tr.task("b", "1"), tr.task("c", "1")})
	assert.Equal(t, []string{"a", "b", "c"}, ch.Added, "before Run: recorded")
	stop := runSet(t, &s)
	require.Eventually(t, func() bool { return len(tr.now()) == 3 }, guard, time.Millisecond)

	ch = s.Replace([]Task{tr.task("a", "1"), tr.task("b", "2"), tr.task("d", "1")})
	assert.Equal(t, Changes{Added: []string{"d"}, Removed: []string{"c"}, Restarted: []string{"b"}}, ch)
	assert.NotContains(t, tr.now(), "c@1", "a removed task has returned when Replace does")
	assert.NotContains(t, tr.now(), "b@1", "the old version of a changed task has returned")
	require.Eventually(t, func() bool {
		now := tr.now()
		return now["a@1"] == 1 && now["b@2"] == 1 && now["d@1"] == 1 && len(now) == 3
	}, guard, time.Millisecond, "a untouched, b in its new version, d new")
	assert.Equal(t, 1, tr.startsOf("a@1"), "an unchanged task is not restarted")

	assert.True(t, s.Replace([]Task{tr.task("a", "1"), tr.task("b", "2"), tr.task("d", "1")}).Empty())
	require.NoError(t, stop())
	assert.Empty(t, tr.now(), "Run returns after every task")
	ch = s.Replace([]Task{tr.task("e", "1")})
	assert.Equal(t, []string{"e"}, ch.Added)
	assert.Empty(t, tr.now(), "after Run nothing starts")
}

func TestFailingTaskEndsTheSet(t *testing.T) {
	tr := newTracker()
	var s Set
	boom := errors.New("port vanished")
	s.Replace([]Task{tr.task("a", "1"), {Name: "bad", Run: func(context.Context) error { return boom }}})
	err := s.Run(t.Context()) // ends by itself
	require.ErrorIs(t, err, boom)
	assert.Contains(t, err.Error(), "bad")
	assert.Empty(t, tr.now())
	assert.ErrorIs(t, s.Run(t.Context()), errRunTwice)
}

// Replace and the end of Run at the same moment: Run still returns only after every
// task, the ones Replace is stopping included.
func TestReplaceRacingShutdown(t *testing.T) {
	for range 20 {
		tr := newTracker()
		var s Set
		s.Replace([]Task{tr.task("a", "1"), tr.task("b", "1")})
		stop := runSet(t, &s)
		require.Eventually(t, func() bool { return len(tr.now()) == 2 }, guard, time.Millisecond)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Replace([]Task{tr.task("b", "2"), tr.task("c", "1")})
		}()
		require.NoError(t, stop())
		<-done
		assert.Empty(t, tr.now(), "a task outlived Run")
	}
}

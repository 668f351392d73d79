package alerting

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/criteria"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// New thresholds while running: DO 5.5 passes class B (≥ 5) and fails class A (≥ 6) once
// the station is made class A; moving back to class B resolves the class-A alert at once
// (its limit is gone) and opens nothing; a rule set added to class C (FC ≤ 5000) judges the
// next reading by its own limit (FC ≤ 500 for bathing).
func TestReconfigureThresholds(t *testing.T) {
	f := newFixture(t, newMemStore(), Options{ClearCount: 2, Deadband: DefaultDeadband})
	ctx := t.Context()
	f.m.OnReadings(ctx, []telemetry.Reading{rd("do-1", telemetry.DO, 5.5)})
	assert.Empty(t, f.store.transitions(t), "5.5 mg/L meets class B")

	require.NoError(t, f.m.Reconfigure(ctx, Options{Class: criteria.ClassA, Deadband: DefaultDeadband}))
	f.m.OnReadings(ctx, []telemetry.Reading{rd("do-1", telemetry.DO, 5.5)})
	assert.Equal(t, []string{"opened threshold:cpcb-class-A:do:min"}, f.store.transitions(t))

	require.NoError(t, f.m.Reconfigure(ctx, Options{Class: criteria.ClassB, Deadband: DefaultDeadband}))
	assert.Equal(t, []string{
		"opened threshold:cpcb-class-A:do:min",
		"resolved threshold:cpcb-class-A:do:min",
	}, f.store.transitions(t), "the alert of a limit no longer configured is resolved at once")
	assert.Empty(t, f.m.Active())
	recent, err := f.m.Recent(10)
	require.NoError(t, err)
	require.NotEmpty(t, recent)
	assert.Contains(t, recent[0].Message, "no longer configured")

	require.NoError(t, f.m.Reconfigure(ctx, Options{Class: criteria.ClassC}))
	f.m.OnReadings(ctx, []telemetry.Reading{rd("fc-1", telemetry.FC, 1000)})
	assert.Len(t, f.store.transitions(t), 2, "class C takes FC 1000 without an alert")
	require.NoError(t, f.m.Reconfigure(ctx, Options{Class: criteria.ClassC, RuleSets: []string{"bathing"}}))
	f.m.OnReadings(ctx, []telemetry.Reading{rd("fc-1", telemetry.FC, 1000)})
	assert.Contains(t, f.store.transitions(t), "opened threshold:bathing:fc:max", "the added rule set judges the next reading")

	assert.Error(t, f.m.Reconfigure(ctx, Options{Class: criteria.ClassB, RuleSets: []string{"swimming"}}),
		"an unknown rule set is refused")
	assert.NotEmpty(t, f.m.Active(), "a refused reconfiguration changes nothing")
}

// Hooks replaced while the runner runs: the next event runs the new hook, not the old one.
func TestHooksSetWhileRunning(t *testing.T) {
	dir := t.TempDir()
	script := func(name string) (string, string) {
		out := filepath.Join(dir, name+".out")
		path := filepath.Join(dir, name+".sh")
		require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\necho \"$PH_ALERT_ID\" >> "+out+"\n"), 0o755))
		return path, out
	}
	oldHook, oldOut := script("old")
	newHook, newOut := script("new")
	hooks := NewHooks([]Hook{{Command: []string{oldHook}}}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- hooks.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	hooks.Notify(Event{Transition: Opened, Alert: Alert{ID: 1}})
	require.Eventually(t, func() bool { return hooks.Stats().Ran == 1 }, 10*time.Second, 10*time.Millisecond)
	hooks.Set([]Hook{{Command: []string{newHook}}})
	hooks.Notify(Event{Transition: Opened, Alert: Alert{ID: 2}})
	require.Eventually(t, func() bool { return hooks.Stats().Ran == 2 }, 10*time.Second, 10*time.Millisecond)

	old, err := os.ReadFile(oldOut)
	require.NoError(t, err)
	assert.Equal(t, "1", strings.TrimSpace(string(old)))
	fresh, err := os.ReadFile(newOut)
	require.NoError(t, err)
	assert.Equal(t, "2", strings.TrimSpace(string(fresh)))

	hooks.Set(nil)
	hooks.Notify(Event{Transition: Opened, Alert: Alert{ID: 3}})
	assert.Equal(t, uint64(0), hooks.Stats().Dropped, "with no hooks an event is not queued at all")
}

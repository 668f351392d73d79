package calibration

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// alerts records the conditions the Book raises and resolves, by key.
type alerts struct {
	mu     sync.Mutex
	active map[string]alerting.Condition
}

func (a *alerts) Set(_ context.Context, c alerting.Condition, active bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if active {
		a.active[c.Key] = c
	} else {
		delete(a.active, c.Key)
	}
}

func (a *alerts) due() []alerting.Condition {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []alerting.Condition
	for _, c := range a.active {
		out = append(out, c)
	}
	return out
}

func openSpool(t *testing.T) *spool.Spool {
	t.Helper()
	s, err := spool.Open(spool.Options{Path: filepath.Join(t.TempDir(), "agent.db")})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// TestDue checks the calibration alert's lifecycle with explicit times: it counts from
// the probe's first run, fires past the due age, resolves once a calibration is on
// record, and survives a new Book over the same buffer (an agent restart).
func TestDue(t *testing.T) {
	store := openSpool(t)
	ctx := t.Context()
	book := New(store, 30*24*time.Hour, nil)
	probes := []Probe{{Name: "ph-1", Param: telemetry.PH}}
	a := &alerts{active: map[string]alerting.Condition{}}

	start := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	book.Check(ctx, start, probes, a)
	assert.Empty(t, a.due(), "a probe first seen now is not yet due")
	book.Check(ctx, start.Add(29*24*time.Hour), probes, a)
	assert.Empty(t, a.due())

	restarted := New(store, 30*24*time.Hour, nil)
	restarted.Check(ctx, start.Add(31*24*time.Hour), probes, a)
	due := a.due()
	require.Len(t, due, 1, "the first run is remembered across a restart")
	assert.Equal(t, alerting.RuleCalibrationDue, due[0].Rule)
	assert.Equal(t, "ph-1", due[0].Sensor)
	assert.Equal(t, "ph", due[0].Param)
	assert.Equal(t, "Probe ph-1 is due for calibration: never calibrated by this agent; calibrate every 720h0m0s", due[0].Message)

	rec := Record{Probe: "ph-1", Point: "mid", Value: 7, At: start.Add(31 * 24 * time.Hour), Reply: "*OK"}
	require.NoError(t, restarted.Record(ctx, rec))
	got, err := restarted.Of("ph-1")
	require.NoError(t, err)
	assert.Equal(t, &rec, got)
	restarted.Check(ctx, start.Add(31*24*time.Hour+time.Minute), probes, a)
	assert.Empty(t, a.due(), "a fresh calibration resolves the alert")

	restarted.Check(ctx, start.Add(62*24*time.Hour), probes, a)
	require.Len(t, a.due(), 1)
	assert.Contains(t, a.due()[0].Message, "last calibrated 2026-08-01 (mid 7)")

	none, err := restarted.Of("do-1")
	require.NoError(t, err)
	assert.Nil(t, none, "no record for a probe never calibrated")
	assert.Equal(t, DefaultDue, New(store, 0, nil).Due(), "zero: the default age")
}

// DueAt counts from the last calibration (or the first run), SetDue moves every due date
// at once and the next Check follows it, and Forget resolves the alert of a probe that is
// no longer configured.
func TestDueAtSetDueForget(t *testing.T) {
	store := openSpool(t)
	ctx := t.Context()
	book := New(store, 30*24*time.Hour, nil)
	a := &alerts{active: map[string]alerting.Condition{}}
	start := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	probes := []Probe{{Name: "ph-1", Param: telemetry.PH}, {Name: "do-1", Param: telemetry.DO}}

	at, err := book.DueAt(ctx, "ph-1", start)
	require.NoError(t, err)
	assert.Equal(t, start.Add(30*24*time.Hour), at, "never calibrated: due the age after its first run")
	require.NoError(t, book.Record(ctx, Record{Probe: "do-1", Point: "atm", At: start.Add(-10 * 24 * time.Hour)}))
	at, err = book.DueAt(ctx, "do-1", start)
	require.NoError(t, err)
	assert.Equal(t, start.Add(20*24*time.Hour), at, "calibrated 10 days ago")

	book.Check(ctx, start.Add(15*24*time.Hour), probes, a)
	assert.Empty(t, a.due())
	book.SetDue(7 * 24 * time.Hour)
	at, err = book.DueAt(ctx, "do-1", start)
	require.NoError(t, err)
	assert.Equal(t, start.Add(-3*24*time.Hour), at, "a shorter due age moves the date")
	book.Check(ctx, start.Add(15*24*time.Hour), probes, a)
	assert.Len(t, a.due(), 2, "both are due under the shorter age")

	book.Forget(ctx, "do-1", a)
	due := a.due()
	require.Len(t, due, 1)
	assert.Equal(t, "ph-1", due[0].Sensor, "only the forgotten probe's alert is resolved")
	book.SetDue(0)
	assert.Equal(t, DefaultDue, book.Due(), "zero means the default")
}

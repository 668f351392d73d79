// Package calibration keeps the record of each probe's last calibration in the agent's
// buffer and raises a "calibration due" alert for a probe whose calibration has grown
// old, resolving it once the probe is calibrated again.
//
// A Book is safe for concurrent use as far as its Store is: every method reads or writes
// the store afresh and keeps no state of its own but the due age, which SetDue changes.
package calibration

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// DefaultDue is how old a probe's last calibration may get before it is due (30 days).
const DefaultDue = 30 * 24 * time.Hour

// Record is what is kept of a probe's last calibration.
type Record struct {
	Probe string    `json:"probe"`
	Point string    `json:"point"`
	Value float64   `json:"value"`
	At    time.Time `json:"at"`
	Reply string    `json:"reply"` // what the circuit answered
}

// Store is the key-value part of the buffer the records live in (*spool.Spool).
type Store interface {
	Get(key string) ([]byte, error) // nil, nil when the key is absent
	Put(ctx context.Context, key string, value []byte) error
}

// Alerter raises and resolves the due alerts (*alerting.Manager).
type Alerter interface {
	Set(ctx context.Context, c alerting.Condition, active bool)
}

// Probe is a calibratable probe the Book watches.
type Probe struct {
	Name  string
	Param telemetry.Param
}

// The store keys: a record per probe, and when the agent first ran a probe.
const (
	keyPrefix   = "calibration/"
	firstPrefix = keyPrefix + "first-run/"
)

// Book keeps the calibration records.
type Book struct {
	store Store
	due   atomic.Int64 // time.Duration
	log   *slog.Logger
}

// New returns a Book over store; due is how old a calibration may get (0: DefaultDue).
func New(store Store, due time.Duration, log *slog.Logger) *Book {
	if due <= 0 {
		due = DefaultDue
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Book{store: store, log: log}
	b.due.Store(int64(due))
	return b
}

// SetDue changes how old a calibration may get (0: DefaultDue), for the next Check and
// DueAt.
func (b *Book) SetDue(due time.Duration) {
	if due <= 0 {
		due = DefaultDue
	}
	b.due.Store(int64(due))
}

// Due is how old a calibration may get.
func (b *Book) Due() time.Duration { return time.Duration(b.due.Load()) }

// Of returns the record of a probe's last calibration, nil when there is none.
func (b *Book) Of(probe string) (*Record, error) {
	raw, err := b.store.Get(keyPrefix + probe)
	if err != nil || raw == nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("decode calibration of %s: %w", probe, err)
	}
	return &r, nil
}

// Record keeps r as its probe's last calibration.
func (b *Book) Record(ctx context.Context, r Record) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode calibration of %s: %w", r.Probe, err)
	}
	if err := b.store.Put(ctx, keyPrefix+r.Probe, raw); err != nil {
		return fmt.Errorf("record calibration of %s: %w", r.Probe, err)
	}
	return nil
}

// Check raises one "calibration due" alert for each probe whose last calibration is
// older than the due age (or that was never calibrated since the agent first ran it), and
// resolves it for the others.
func (b *Book) Check(ctx context.Context, now time.Time, probes []Probe, alerts Alerter) {
	due := b.Due()
	for _, p := range probes {
		since, what, err := b.since(ctx, p.Name, now)
		if err != nil {
			b.log.Warn("read calibration record", "probe", p.Name, "err", err)
			continue
		}
		alerts.Set(ctx, alerting.Condition{
			Key: alertKey(p.Name), Rule: alerting.RuleCalibrationDue, Param: string(p.Param),
			Sensor: p.Name, Severity: alerting.Info,
			Message: fmt.Sprintf("Probe %s is due for calibration: %s; calibrate every %s",
				p.Name, what, due.Round(time.Hour)),
		}, now.Sub(since) > due)
	}
}

// DueAt is when a probe is next due for calibration: its last calibration, or when the
// agent first ran it if it never was, plus the due age.
func (b *Book) DueAt(ctx context.Context, probe string, now time.Time) (time.Time, error) {
	since, _, err := b.since(ctx, probe, now)
	if err != nil {
		return time.Time{}, err
	}
	return since.Add(b.Due()), nil
}

// Forget resolves the "calibration due" alert of a probe that is no longer configured.
// Its record stays, should the probe come back.
func (b *Book) Forget(ctx context.Context, probe string, alerts Alerter) {
	alerts.Set(ctx, alerting.Condition{Key: alertKey(probe), Rule: alerting.RuleCalibrationDue, Sensor: probe}, false)
}

func alertKey(probe string) string { return "calibration:" + probe }

// since is when a probe's calibration age counts from, and what that is.
func (b *Book) since(ctx context.Context, probe string, now time.Time) (time.Time, string, error) {
	rec, err := b.Of(probe)
	if err != nil {
		return time.Time{}, "", err
	}
	if rec != nil {
		return rec.At, fmt.Sprintf("last calibrated %s (%s %g)", rec.At.Format(time.DateOnly), rec.Point, rec.Value), nil
	}
	return b.firstRun(ctx, probe, now), "never calibrated by this agent", nil
}

// firstRun remembers when the agent first ran a probe, so "never calibrated" counts from
// then rather than from the epoch.
func (b *Book) firstRun(ctx context.Context, probe string, now time.Time) time.Time {
	key := firstPrefix + probe
	if raw, err := b.store.Get(key); err == nil && raw != nil {
		if t, err := time.Parse(time.RFC3339, string(raw)); err == nil {
			return t
		}
	}
	if err := b.store.Put(ctx, key, []byte(now.UTC().Format(time.RFC3339))); err != nil {
		b.log.Warn("record probe first run", "probe", probe, "err", err)
	}
	return now
}

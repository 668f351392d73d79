// Package probestatus is what the serial, CoAP and HTTP probes share once a reading is in
// hand or something went wrong: it hands the reading to the agent's pipeline, counts the
// outcome, records faults and reconnections in the sensor's health, and keeps the part of
// a probe's status that every kind reports the same way.
//
// The rules, the same for every probe kind:
//   - A reading already taken is stored even while the agent shuts down: Store does not
//     pass the end of the probe's context on to the sink (it bounds the write by
//     StoreTimeout instead), because a device cannot be asked to send that value again.
//   - A reading the sink refuses (an unknown unit, say) counts as Rejected here; the
//     pipeline counts it against the sensor, so it is not recorded in Health again.
//   - A reading the sink could not make durable counts as NotStored; the pipeline raises
//     the store-failure alert, and the sensor is not at fault, so Health is not told.
//   - A fault counts in Health and in the status, by kind.
//
// A Recorder is safe for concurrent use.
package probestatus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Sink makes observations durable: the agent's pipeline. Ingest returns one entry per
// observation (nil where it was stored) and a non-nil error only when nothing was stored.
type Sink interface {
	Ingest(ctx context.Context, obs []telemetry.Observation) (rejected []error, err error)
}

// Health counts what went wrong per sensor (the agent's live state). It must be safe for
// concurrent use.
type Health interface {
	RecordError(sensor string, p telemetry.Param, kind string)
	RecordReconnect(sensor string)
}

// StoreTimeout bounds handing one reading to the sink. It is what bounds a store at
// shutdown, when the probe's own context has already ended.
const StoreTimeout = 10 * time.Second

// Counts is the part of a probe's status that every kind keeps. Probe statuses embed it,
// so its fields appear among theirs in JSON.
type Counts struct {
	Readings      uint64    `json:"readings"` // made durable
	LastReadingAt time.Time `json:"last_reading_at,omitzero"`
	LastValue     float64   `json:"last_value"`
	// Rejected counts readings the sink refused; NotStored those it could not make
	// durable (lost: the device cannot be asked again).
	Rejected  uint64 `json:"rejected"`
	NotStored uint64 `json:"not_stored"`
	// Errors counts the faults recorded in Health, ErrorsByKind the same by kind.
	Errors       uint64            `json:"errors"`
	ErrorsByKind map[string]uint64 `json:"errors_by_kind,omitempty"`
	Reconnects   uint64            `json:"reconnects"`
	LastError    string            `json:"last_error,omitempty"`
	LastErrorAt  time.Time         `json:"last_error_at,omitzero"`
}

// Check says what is wrong with what every probe needs, whatever its kind: a name (the
// sensor of its readings and of its health), a canonical parameter, a sink and a health.
func Check(name string, param telemetry.Param, sink Sink, health Health) []error {
	var problems []error
	if name == "" {
		problems = append(problems, errors.New("name is required"))
	}
	if !param.Valid() {
		problems = append(problems, fmt.Errorf("param %q is not a canonical parameter", param))
	}
	if sink == nil || health == nil {
		problems = append(problems, errors.New("sink and health are required"))
	}
	return problems
}

// Recorder keeps one probe's Counts. Create it with New.
type Recorder struct {
	sensor string
	param  telemetry.Param
	sink   Sink
	health Health
	log    *slog.Logger

	mu      sync.Mutex
	c       Counts
	failing bool // in a streak of Fail calls not yet ended by a stored reading
}

// New returns a Recorder for the probe named sensor, measuring param. sink and health
// must not be nil; log may be nil.
func New(sensor string, param telemetry.Param, sink Sink, health Health, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{sensor: sensor, param: param, sink: sink, health: health, log: log,
		c: Counts{ErrorsByKind: map[string]uint64{}}}
}

// Counts returns a snapshot.
func (r *Recorder) Counts() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.c
	c.ErrorsByKind = maps.Clone(r.c.ErrorsByKind)
	return c
}

// Outcome is what became of a reading handed to Store.
type Outcome int

const (
	Stored    Outcome = iota // durable
	Rejected                 // refused by the sink
	NotStored                // the sink could not make it durable
)

// Store hands one observation to the sink and counts the outcome. It waits for the sink
// even after ctx has ended (up to StoreTimeout), keeping ctx's values.
func (r *Recorder) Store(ctx context.Context, o telemetry.Observation) Outcome {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), StoreTimeout)
	defer cancel()
	rejected, err := r.sink.Ingest(sctx, []telemetry.Observation{o})
	switch {
	case err != nil:
		r.log.Warn("reading not stored", "value", o.Value, "err", err)
		r.update(func(c *Counts) {
			c.NotStored++
			c.LastError, c.LastErrorAt = "store: "+err.Error(), time.Now()
		})
		return NotStored
	case len(rejected) > 0 && rejected[0] != nil:
		r.log.Debug("reading refused", "value", o.Value, "err", rejected[0])
		r.update(func(c *Counts) {
			c.Rejected++
			c.LastError, c.LastErrorAt = "refused: "+rejected[0].Error(), time.Now()
		})
		return Rejected
	}
	r.mu.Lock()
	r.c.Readings++
	r.c.LastValue, r.c.LastReadingAt = o.Value, time.Now()
	recovered := r.failing
	r.failing = false
	r.mu.Unlock()
	if recovered {
		r.log.Info("probe answers again")
	}
	return Stored
}

// Fault records a fault of kind in Health and in the Counts; err becomes LastError. A
// fault that did not cost a reading (garbage before a good answer, say) is only counted.
func (r *Recorder) Fault(kind string, err error) {
	r.fault(kind, err, false)
}

// Fail is Fault for a probe that failed to bring a reading: the first Fail after a
// stored reading (or ever) is logged as a warning, the rest of the streak at debug level,
// and the next stored reading is logged as the recovery.
func (r *Recorder) Fail(kind string, err error) {
	if first := r.fault(kind, err, true); first {
		r.log.Warn("probe failing", "kind", kind, "err", err)
	} else {
		r.log.Debug("probe still failing", "kind", kind, "err", err)
	}
}

// fault counts; with streak it reports whether this starts a streak of failures.
func (r *Recorder) fault(kind string, err error, streak bool) (first bool) {
	r.health.RecordError(r.sensor, r.param, kind)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.c.Errors++
	r.c.ErrorsByKind[kind]++
	r.c.LastError, r.c.LastErrorAt = fmt.Sprintf("%s: %v", kind, err), time.Now()
	if !streak {
		return false
	}
	first = !r.failing
	r.failing = true
	return first
}

// Note makes err the last error without counting it (a port that does not open yet, while
// the probe has never been connected).
func (r *Recorder) Note(err error) {
	r.update(func(c *Counts) { c.LastError, c.LastErrorAt = err.Error(), time.Now() })
}

// Reconnected counts a reconnection in Health and in the Counts.
func (r *Recorder) Reconnected() {
	r.health.RecordReconnect(r.sensor)
	r.update(func(c *Counts) { c.Reconnects++ })
}

func (r *Recorder) update(f func(*Counts)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.c)
}

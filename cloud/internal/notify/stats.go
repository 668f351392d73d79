package notify

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats is the state of notifications for /stats. Counters count what this replica did
// since it started; pending work, failures in a row and errors are read from the
// database (every Options.StatsInterval) and are the same on every replica.
type Stats struct {
	Channels []ChannelStats `json:"channels"`
	// Unrouted transitions are queued and not yet given to channels.
	Unrouted           int64      `json:"unrouted"`
	OldestUnroutedAgeS float64    `json:"oldest_unrouted_age_s"`
	Expired            uint64     `json:"expired"`         // transitions given up (too old)
	DatabaseErrors     uint64     `json:"database_errors"` // failed reads and writes of the outbox
	UpdatedAt          *time.Time `json:"updated_at"`      // when the database part was read; null before
	Error              string     `json:"error,omitempty"` // why the last read failed
}

// ChannelStats is one channel's part of Stats.
type ChannelStats struct {
	Name                 string     `json:"name"`
	Kind                 string     `json:"kind"`
	Delivered            uint64     `json:"delivered"`             // messages
	DeliveredTransitions uint64     `json:"delivered_transitions"` // transitions in them
	Failed               uint64     `json:"failed"`                // failed attempts
	Pending              int64      `json:"pending"`               // transitions waiting for the channel
	OldestPendingAgeS    float64    `json:"oldest_pending_age_s"`  // how long the oldest has waited
	ConsecutiveFailures  int        `json:"consecutive_failures"`  // of its worst stream now
	Failing              bool       `json:"failing"`               // ConsecutiveFailures reached failing_after
	FailingSince         *time.Time `json:"failing_since,omitempty"`
	LastError            string     `json:"last_error,omitempty"`
	LastErrorAt          *time.Time `json:"last_error_at,omitempty"`
}

// Stats returns the current statistics. It reads no database: safe to call often.
func (d *Dispatcher) Stats() Stats {
	d.mu.Lock()
	snap, at, snapErr := d.snap, d.snapAt, d.snapErr
	d.mu.Unlock()
	now := d.opts.Now()
	age := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return max(now.Sub(t), 0).Seconds()
	}
	st := Stats{
		Unrouted: snap.Unrouted, OldestUnroutedAgeS: age(snap.OldestUnrouted),
		Expired: d.expired.Load(), DatabaseErrors: d.dbErrors.Load(), Error: snapErr,
	}
	if !at.IsZero() {
		st.UpdatedAt = &at
	}
	for _, c := range d.chans {
		db := snap.Channels[c.cfg.Name]
		cs := ChannelStats{
			Name: c.cfg.Name, Kind: c.cfg.Kind,
			Delivered: c.delivered.Load(), DeliveredTransitions: c.transitions.Load(), Failed: c.failed.Load(),
			Pending: db.Pending, OldestPendingAgeS: age(db.OldestPending),
			ConsecutiveFailures: db.Failures, Failing: db.Failures >= d.opts.FailingAfter,
		}
		if !db.FailingSince.IsZero() {
			cs.FailingSince = &db.FailingSince
		}
		// The newest error, ours or another replica's.
		c.mu.Lock()
		lastErr, lastErrAt := c.lastErr, c.lastErrAt
		c.mu.Unlock()
		if db.LastErrorAt.After(lastErrAt) {
			lastErr, lastErrAt = db.LastError, db.LastErrorAt
		}
		if !lastErrAt.IsZero() {
			cs.LastError, cs.LastErrorAt = lastErr, &lastErrAt
		}
		st.Channels = append(st.Channels, cs)
	}
	return st
}

// Failing lists the channels that keep failing: one of their streams has failed
// Options.FailingAfter times in a row (and has its notify_failing alert open). It reads
// no database.
func (d *Dispatcher) Failing() []string {
	var out []string
	for _, c := range d.Stats().Channels {
		if c.Failing {
			out = append(out, c.Name)
		}
	}
	return out
}

// Collector exposes Stats to Prometheus, read at every scrape.
func (d *Dispatcher) Collector() prometheus.Collector { return newCollector(d) }

type collector struct {
	d                                            *Dispatcher
	delivered, transitions, failed, pending, age *prometheus.Desc
	consecutive, failing, unrouted, unroutedAge  *prometheus.Desc
	expired, dbErrors                            *prometheus.Desc
}

func newCollector(d *Dispatcher) *collector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &collector{
		d:           d,
		delivered:   desc("ph_notify_messages_delivered_total", "Notification messages delivered by this replica.", "channel", "kind"),
		transitions: desc("ph_notify_transitions_delivered_total", "Alert transitions in the messages delivered by this replica.", "channel"),
		failed:      desc("ph_notify_attempts_failed_total", "Failed attempts to deliver a notification message, by this replica.", "channel"),
		pending:     desc("ph_notify_pending", "Alert transitions waiting to be delivered to the channel.", "channel"),
		age:         desc("ph_notify_oldest_pending_seconds", "How long the oldest transition waiting for the channel has waited.", "channel"),
		consecutive: desc("ph_notify_consecutive_failures", "Failed attempts in a row of the channel's worst station stream.", "channel"),
		failing:     desc("ph_notify_failing", "1 while the channel keeps failing (notify_failing).", "channel"),
		unrouted:    desc("ph_notify_unrouted", "Alert transitions queued and not yet given to channels."),
		unroutedAge: desc("ph_notify_oldest_unrouted_seconds", "How long the oldest unrouted transition has waited."),
		expired:     desc("ph_notify_expired_total", "Alert transitions given up undelivered, by this replica's pruning."),
		dbErrors:    desc("ph_notify_database_errors_total", "Failed reads and writes of the notification outbox."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.d.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for _, s := range st.Channels {
		counter(c.delivered, float64(s.Delivered), s.Name, s.Kind)
		counter(c.transitions, float64(s.DeliveredTransitions), s.Name)
		counter(c.failed, float64(s.Failed), s.Name)
		gauge(c.pending, float64(s.Pending), s.Name)
		gauge(c.age, s.OldestPendingAgeS, s.Name)
		gauge(c.consecutive, float64(s.ConsecutiveFailures), s.Name)
		failing := 0.0
		if s.Failing {
			failing = 1
		}
		gauge(c.failing, failing, s.Name)
	}
	gauge(c.unrouted, float64(st.Unrouted))
	gauge(c.unroutedAge, st.OldestUnroutedAgeS)
	counter(c.expired, float64(st.Expired))
	counter(c.dbErrors, float64(st.DatabaseErrors))
}

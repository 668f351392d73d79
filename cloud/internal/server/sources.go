package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/purehealth/purehealth/cloud/internal/apicall"
	"github.com/purehealth/purehealth/cloud/internal/config"
	"github.com/purehealth/purehealth/cloud/internal/fusedwqi"
	"github.com/purehealth/purehealth/cloud/internal/govdata"
	"github.com/purehealth/purehealth/cloud/internal/ingest"
	"github.com/purehealth/purehealth/cloud/internal/samples"
	"github.com/purehealth/purehealth/cloud/internal/satellite"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/internal/backoff"
	"github.com/purehealth/purehealth/internal/jobs"
	"github.com/purehealth/purehealth/shared/wire"
)

// Scheduling of the sources outside the stations.
const (
	// followInterval is how often the stations that got new data have their fused WQI
	// recomputed: the batches of one station within it share one update.
	followInterval = 2 * time.Second
	// retryBase is the first wait after a failed upstream round; the waits double up to
	// the source's interval, so a source read daily is not left failing for a day.
	retryBase = 30 * time.Second
)

// sources wires what the cloud learns from outside the stations' probes: one feed per
// upstream source and one for the satellite, each collecting on its own schedule and
// storing through fusedwqi.Sink; lab samples at POST /v1/samples; and the fused WQI,
// recomputed for the stations that got new data (a batch, posted samples, an upstream
// round) and for every station on fusion.interval as inputs age out.
//
// Each feed is a job of its own: a source that fails or hangs delays only itself, and
// its failures show in its Status (/stats, /metrics).
type sources struct {
	log     *slog.Logger
	updater *fusedwqi.Updater
	samples *samples.Handler
	feeds   []*feed
	pending pendingStations
	every   time.Duration // UpdateAll

	updates, failures atomic.Int64 // fused WQI update calls and those that failed
}

// feed is one source on its schedule. Only its job's goroutine runs rounds; due is read
// by /stats too.
type feed struct {
	name      string
	kind      string // ogd, cwc, imd or satellite
	interval  time.Duration
	collector *upstream.Collector
	http      func() apicall.Stats
	log       *slog.Logger
	backoff   *backoff.Backoff

	mu  sync.Mutex
	due time.Time // the next round; zero: at once
}

// newSources builds the feeds, the samples handler and the fused WQI updater over st.
// It checks each source's options again (config.Validate did) and starts nothing.
func newSources(cfg *config.Config, st *store.Store, log *slog.Logger) (*sources, error) {
	s := &sources{
		log:   log.With("component", "sources"),
		every: cfg.Fusion.Interval.Std(),
		updater: fusedwqi.New(st, fusedwqi.Options{Policy: cfg.Fusion.Policy(),
			Log: log.With("component", "fusedwqi")}),
	}
	s.pending.set = map[string]struct{}{}
	sink := fusedwqi.Sink{Store: st, Updater: s.updater}
	add := func(name, kind string, interval time.Duration, src upstream.Source, httpStats func() apicall.Stats) error {
		flog := log.With("component", "upstream", "source", name)
		c, err := upstream.NewCollector(name, src, sink, st, flog, nil)
		if err != nil {
			return err
		}
		s.feeds = append(s.feeds, &feed{name: name, kind: kind, interval: interval, collector: c, http: httpStats,
			log: flog, backoff: backoff.New(min(retryBase, interval), interval, backoff.Equal)})
		return nil
	}
	for _, u := range cfg.Upstream {
		client, err := govdata.New(u.Options(), log.With("component", "upstream", "source", u.Name))
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", u.Name, err)
		}
		if err := add(u.Name, u.Kind, u.Interval.Std(), client, client.Stats); err != nil {
			return nil, err
		}
	}
	if sat := cfg.Satellite; sat != nil {
		o := sat.Options()
		o.Cache = st.SatelliteCache()
		client, err := satellite.New(o, log.With("component", "upstream", "source", sat.Name))
		if err != nil {
			return nil, err
		}
		if err := add(sat.Name, "satellite", sat.Interval.Std(), client, client.Stats); err != nil {
			return nil, err
		}
	}
	s.samples = samples.New(st, samples.Options{
		Limits:     cfg.Samples.Limits(),
		Stored:     func(_ context.Context, stations []string) { s.pending.add(stations...) },
		RetryAfter: cfg.Ingest.RetryAfter.Std(),
		Log:        log.With("component", "samples"),
	})
	return s, nil
}

// register mounts POST /v1/samples (lab and operator tokens, checked by the handler).
func (s *sources) register(mux *http.ServeMux) { s.samples.Register(mux) }

// ingestStore wraps the ingest endpoint's store so that a batch with new readings marks
// its station for a fused WQI update. The update runs on the follow job, so a station's
// batches within followInterval share one, and ingest never waits for it.
func (s *sources) ingestStore(st ingest.Store) ingest.Store { return followIngest{Store: st, s: s} }

type followIngest struct {
	ingest.Store
	s *sources
}

func (f followIngest) Ingest(ctx context.Context, station string, b *wire.Batch) (store.IngestResult, error) {
	res, err := f.Store.Ingest(ctx, station, b)
	if err == nil && res.NewReadings > 0 {
		f.s.pending.add(station)
	}
	return res, err
}

// pendingStations are the stations whose fused WQI waits for the follow job. Only
// authenticated stations and stored samples add to it: it holds at most the stations
// table.
type pendingStations struct {
	mu  sync.Mutex
	set map[string]struct{}
}

func (p *pendingStations) add(ids ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		p.set[id] = struct{}{}
	}
}

// take empties the set and returns what it held.
func (p *pendingStations) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.set))
	for id := range p.set {
		out = append(out, id)
	}
	clear(p.set)
	return out
}

func (p *pendingStations) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.set)
}

// update runs one fused WQI update and counts it.
func (s *sources) update(ctx context.Context, fn func(context.Context) error) error {
	s.updates.Add(1)
	err := fn(ctx)
	if err != nil && ctx.Err() == nil {
		s.failures.Add(1)
	}
	return err
}

// jobs are the feeds, the follow-up of new data and the periodic fused WQI.
func (s *sources) jobs() []jobs.Job {
	out := []jobs.Job{{
		Name:     "fused wqi after new data",
		Interval: followInterval,
		Run: func(ctx context.Context) error {
			ids := s.pending.take()
			if len(ids) == 0 {
				return nil
			}
			return s.update(ctx, func(ctx context.Context) error { return s.updater.UpdateStations(ctx, ids...) })
		},
	}, {
		Name:     "fused wqi",
		Interval: s.every,
		Run:      func(ctx context.Context) error { return s.update(ctx, s.updater.UpdateAll) },
	}}
	for _, f := range s.feeds {
		// The job wakes often enough to retry soon after a failure; a round runs only when due.
		out = append(out, jobs.Job{Name: "upstream " + f.name, Interval: min(f.interval, retryBase), Run: f.run})
	}
	return out
}

// run collects a round if one is due. A failed round is retried with backoff (never
// later than the interval); its error is in the source's Status and the log, and the
// job itself never fails, so that its schedule stays the feed's own.
func (f *feed) run(ctx context.Context) error {
	now := time.Now()
	if now.Before(f.next()) {
		return nil
	}
	err := f.collect(ctx)
	if ctx.Err() != nil {
		return nil // stopping: the round is repeated after the restart
	}
	wait := f.interval
	if err != nil {
		wait = min(f.backoff.Next(), f.interval)
		f.log.Warn("upstream round failed", "err", err, "retry_in", wait.Round(time.Second))
	} else {
		f.backoff.Reset()
	}
	f.mu.Lock()
	f.due = now.Add(wait)
	f.mu.Unlock()
	return nil
}

// collect runs one round. A panic in a client is a failed round, logged with its stack:
// one source's bug must not take down the service and every other source.
func (f *feed) collect(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			f.log.Error("upstream round panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("upstream %s: internal error: %v", f.name, p)
		}
	}()
	return f.collector.Collect(ctx)
}

func (f *feed) next() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.due
}

// UpstreamStats is one source in /stats: its collector's Status, with what the feed
// adds.
type UpstreamStats struct {
	upstream.Status
	Kind            string    `json:"kind"`
	IntervalSeconds float64   `json:"interval_s"`
	NextRound       time.Time `json:"next_round,omitzero"`
	HTTP            HTTPStats `json:"http"`
}

// HTTPStats are a source's requests.
type HTTPStats struct {
	Requests    int64 `json:"requests"`     // attempts sent
	Retries     int64 `json:"retries"`      // attempts after a failed one
	RateLimited int64 `json:"rate_limited"` // 429 answers
}

// FusedStats counts the fused WQI updates.
type FusedStats struct {
	Runs     int64 `json:"runs"`     // update rounds (of one or more stations)
	Failures int64 `json:"failures"` // rounds with an error (logged)
	Pending  int   `json:"pending"`  // stations waiting for the next follow-up
}

// stats returns every source's state by name.
func (s *sources) stats() map[string]UpstreamStats {
	out := make(map[string]UpstreamStats, len(s.feeds))
	for _, f := range s.feeds {
		h := f.http()
		out[f.name] = UpstreamStats{Status: f.collector.Status(), Kind: f.kind,
			IntervalSeconds: f.interval.Seconds(), NextRound: f.next().UTC(),
			HTTP: HTTPStats{Requests: h.Requests, Retries: h.Retries, RateLimited: h.RateLimited}}
	}
	return out
}

func (s *sources) fusedStats() FusedStats {
	return FusedStats{Runs: s.updates.Load(), Failures: s.failures.Load(), Pending: s.pending.len()}
}

// sourcesCollector exposes the sources to Prometheus, read at every scrape.
type sourcesCollector struct {
	s *sources

	rounds, failures, consecutive, records, readings, skipped   *prometheus.Desc
	lag, lastSuccess, lastError, requests, retries, rateLimited *prometheus.Desc
	samples, fusedRuns, fusedFailures                           *prometheus.Desc
}

func (s *sources) collector() prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &sourcesCollector{
		s:           s,
		rounds:      d("ph_upstream_rounds_total", "Collection rounds of an upstream source.", "source"),
		failures:    d("ph_upstream_failures_total", "Failed rounds of an upstream source.", "source"),
		consecutive: d("ph_upstream_consecutive_failures", "Rounds failed in a row (0 after a success).", "source"),
		records:     d("ph_upstream_records_total", "Upstream records (rows, intervals) read.", "source"),
		readings: d("ph_upstream_readings_total",
			"Readings delivered, by what storing them did (new, revised, unchanged).", "source", "change"),
		skipped:       d("ph_upstream_skipped_total", "Values and records that gave no reading, by kind.", "source", "kind"),
		lag:           d("ph_upstream_lag_seconds", "Age of the newest reading a source delivered.", "source"),
		lastSuccess:   d("ph_upstream_last_success_timestamp_seconds", "Unix time of the last successful round.", "source"),
		lastError:     d("ph_upstream_last_error_timestamp_seconds", "Unix time of the last failed round.", "source"),
		requests:      d("ph_upstream_http_requests_total", "HTTP attempts sent to an upstream service.", "source"),
		retries:       d("ph_upstream_http_retries_total", "HTTP attempts after a failed one.", "source"),
		rateLimited:   d("ph_upstream_http_rate_limited_total", "429 answers of an upstream service.", "source"),
		samples:       d("ph_samples_total", "Lab sample rows posted, by result (accepted, duplicate), and bodies rejected.", "result"),
		fusedRuns:     d("ph_fused_wqi_updates_total", "Fused WQI update rounds."),
		fusedFailures: d("ph_fused_wqi_update_failures_total", "Fused WQI update rounds that failed."),
	}
}

func (c *sourcesCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *sourcesCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for name, st := range c.s.stats() {
		counter(c.rounds, float64(st.Rounds), name)
		counter(c.failures, float64(st.Failures), name)
		gauge(c.consecutive, float64(st.ConsecutiveFailures), name)
		counter(c.records, float64(st.Records), name)
		counter(c.readings, float64(st.New), name, "new")
		counter(c.readings, float64(st.Revised), name, "revised")
		counter(c.readings, float64(st.Unchanged), name, "unchanged")
		for kind, n := range st.Skipped {
			counter(c.skipped, float64(n), name, kind)
		}
		if !st.Newest.IsZero() {
			gauge(c.lag, st.LagSecond, name)
		}
		if !st.LastSuccess.IsZero() {
			gauge(c.lastSuccess, float64(st.LastSuccess.UnixMilli())/1000, name)
		}
		if !st.LastErrorAt.IsZero() {
			gauge(c.lastError, float64(st.LastErrorAt.UnixMilli())/1000, name)
		}
		counter(c.requests, float64(st.HTTP.Requests), name)
		counter(c.retries, float64(st.HTTP.Retries), name)
		counter(c.rateLimited, float64(st.HTTP.RateLimited), name)
	}
	sm := c.s.samples.Stats()
	counter(c.samples, float64(sm.Accepted), "accepted")
	counter(c.samples, float64(sm.Duplicates), "duplicate")
	counter(c.samples, float64(sm.Rejected), "rejected")
	counter(c.fusedRuns, float64(c.s.updates.Load()))
	counter(c.fusedFailures, float64(c.s.failures.Load()))
}

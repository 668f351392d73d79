package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/purehealth/purehealth/cloud/internal/fanout"
	"github.com/purehealth/purehealth/cloud/internal/ingest"
	"github.com/purehealth/purehealth/cloud/internal/notify"
	"github.com/purehealth/purehealth/cloud/internal/samples"
	"github.com/purehealth/purehealth/internal/jobs"
)

// Snapshot is the service's state as GET /stats shows it (and /metrics exposes).
type Snapshot struct {
	Time          time.Time    `json:"time"`
	UptimeSeconds float64      `json:"uptime_seconds"`
	WebSocket     fanout.Stats `json:"websocket"`
	Ingest        IngestStats  `json:"ingest"`
	// Stations is the last update of every station; empty when the database does not
	// answer (StationsError says why).
	Stations      map[string]StationStats `json:"stations"`
	StationsError string                  `json:"stations_error,omitempty"`
	Database      PoolStats               `json:"database"`
	Notify        notify.Stats            `json:"notify"`
	// Upstream is every government and satellite source by name (sources.go).
	Upstream map[string]UpstreamStats `json:"upstream"`
	Samples  samples.Stats            `json:"samples"`
	FusedWQI FusedStats               `json:"fused_wqi"`
	// Jobs are the background rounds by name (forecasts, anomaly detection, collection,
	// maintenance …): how often each ran and failed, and how long the last one took.
	Jobs map[string]jobs.Stats `json:"jobs"`
}

// IngestStats are the ingest endpoint's counters and recent rates.
type IngestStats struct {
	Batches     int64 `json:"batches"`
	NewReadings int64 `json:"new_readings"`
	NewAlerts   int64 `json:"new_alerts"`
	NewWQI      int64 `json:"new_wqi"`
	Duplicates  int64 `json:"duplicates"`
	// Rejects counts refused batches by reason (malformed, unauthorized, wrong_station,
	// too_large, encoding, rate_limited, unavailable, internal, method).
	Rejects map[string]int64 `json:"rejects"`
	Rates   Rates            `json:"rates"`
}

// Rates are ingest rates over the last minute or so.
type Rates struct {
	WindowSeconds     float64 `json:"window_seconds"`
	BatchesPerSecond  float64 `json:"batches_per_second"`
	ReadingsPerSecond float64 `json:"readings_per_second"`
}

// StationStats is a station's last update.
type StationStats struct {
	LastBatchAt  *time.Time `json:"last_batch_at"`
	Online       bool       `json:"online"`
	OfflineSince *time.Time `json:"offline_since,omitempty"`
	ReadingsSeq  uint64     `json:"readings_seq"`
}

// PoolStats is the database connection pool.
type PoolStats struct {
	MaxConns             int32   `json:"max_conns"`
	TotalConns           int32   `json:"total_conns"`
	IdleConns            int32   `json:"idle_conns"`
	AcquiredConns        int32   `json:"acquired_conns"`
	AcquireCount         int64   `json:"acquire_count"`
	EmptyAcquireCount    int64   `json:"empty_acquire_count"`
	CanceledAcquireCount int64   `json:"canceled_acquire_count"`
	AcquireWaitSeconds   float64 `json:"acquire_wait_seconds"`
}

func poolStats(s *pgxpool.Stat) PoolStats {
	return PoolStats{
		MaxConns: s.MaxConns(), TotalConns: s.TotalConns(), IdleConns: s.IdleConns(),
		AcquiredConns: s.AcquiredConns(), AcquireCount: s.AcquireCount(),
		EmptyAcquireCount: s.EmptyAcquireCount(), CanceledAcquireCount: s.CanceledAcquireCount(),
		AcquireWaitSeconds: s.AcquireDuration().Seconds(),
	}
}

// rejectReason names the HTTP status of a refused batch.
func rejectReason(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "malformed"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "wrong_station"
	case http.StatusMethodNotAllowed:
		return "method"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusUnsupportedMediaType:
		return "encoding"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusInternalServerError:
		return "internal"
	}
	return "http_" + strconv.Itoa(status)
}

func ingestStats(st ingest.Stats, rates Rates) IngestStats {
	out := IngestStats{
		Batches: st.Batches, NewReadings: st.NewReadings, NewAlerts: st.NewAlerts, NewWQI: st.NewWQI,
		Duplicates: st.Duplicates, Rejects: map[string]int64{}, Rates: rates,
	}
	for status, n := range st.Refused {
		out.Rejects[rejectReason(status)] += n
	}
	return out
}

// rateSampler keeps a minute of ingest counter samples for the rates.
type rateSampler struct {
	mu      sync.Mutex
	samples []rateSample // oldest first, at most rateSamples
}

type rateSample struct {
	at                time.Time
	batches, readings int64
}

const (
	rateSamples  = 7 // every 10s: a window of about a minute
	rateInterval = 10 * time.Second
)

func (r *rateSampler) add(at time.Time, st ingest.Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, rateSample{at: at, batches: st.Batches, readings: st.NewReadings})
	if len(r.samples) > rateSamples {
		r.samples = r.samples[len(r.samples)-rateSamples:]
	}
}

// rates compares the current counters with the oldest sample.
func (r *rateSampler) rates(now time.Time, st ingest.Stats) Rates {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) == 0 {
		return Rates{}
	}
	old := r.samples[0]
	w := now.Sub(old.at).Seconds()
	if w <= 0 {
		return Rates{}
	}
	return Rates{
		WindowSeconds:     w,
		BatchesPerSecond:  float64(st.Batches-old.batches) / w,
		ReadingsPerSecond: float64(st.NewReadings-old.readings) / w,
	}
}

// snapshot gathers the state; the station list comes from the database within a few
// seconds or is left out.
func (s *Server) snapshot(ctx context.Context) Snapshot {
	now := time.Now()
	in := s.ingest.Stats()
	snap := Snapshot{
		Time: now.UTC(), UptimeSeconds: now.Sub(s.started).Seconds(),
		WebSocket: s.hub.Stats(), Ingest: ingestStats(in, s.rates.rates(now, in)),
		Stations: map[string]StationStats{},
		Database: poolStats(s.store.PoolStats()),
		Notify:   s.notify.Stats(),
		Upstream: s.sources.stats(), Samples: s.sources.samples.Stats(), FusedWQI: s.sources.fusedStats(),
		Jobs: s.jobRuns.Stats(),
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	after := ""
	for {
		page, err := s.store.Stations(ctx, after, 1000)
		if err != nil {
			s.log.Warn("stats: list stations", "err", err)
			snap.Stations, snap.StationsError = map[string]StationStats{}, "the database does not answer"
			break
		}
		for _, st := range page {
			snap.Stations[st.ID] = StationStats{
				LastBatchAt: st.LastBatchAt, Online: st.LastBatchAt != nil && st.OfflineSince == nil,
				OfflineSince: st.OfflineSince, ReadingsSeq: st.ReadingsSeq,
			}
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].ID
	}
	return snap
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.snapshot(r.Context())); err != nil {
		s.log.Debug("write stats", "err", err)
	}
}

// collector exposes the snapshot to Prometheus, read at every scrape.
type collector struct {
	s *Server

	wsClients, wsConnections, wsMessages, wsEvictions, wsRejected    *prometheus.Desc
	wsReplayed, wsResyncs, events, lastEvent, listenFailures         *prometheus.Desc
	batches, rows, duplicates, rejects                               *prometheus.Desc
	poolConns, poolMax, poolAcquires, poolEmptyAcq, poolWait         *prometheus.Desc
	stationLastSeen, stationOnline, stationsUp, uptime, fetchFailure *prometheus.Desc
	jobRuns, jobFailures, jobSeconds                                 *prometheus.Desc
}

func newCollector(s *Server) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &collector{
		s:              s,
		wsClients:      d("ph_ws_clients", "WebSocket clients connected now."),
		wsConnections:  d("ph_ws_connections_total", "WebSocket connections accepted."),
		wsMessages:     d("ph_ws_messages_sent_total", "Messages written to WebSocket clients."),
		wsEvictions:    d("ph_ws_evictions_total", "WebSocket clients disconnected for being too slow.", "reason"),
		wsRejected:     d("ph_ws_rejected_total", "WebSocket connections refused or closed for misbehaving.", "reason"),
		wsReplayed:     d("ph_ws_replayed_events_total", "Events sent to resuming WebSocket clients."),
		wsResyncs:      d("ph_ws_resyncs_total", "Resumes answered with a resync."),
		events:         d("ph_events_received_total", "Live events read from the database by this replica."),
		lastEvent:      d("ph_events_last_id", "Id of the newest live event this replica has."),
		listenFailures: d("ph_events_listen_failures_total", "Failures to listen for new events."),
		fetchFailure:   d("ph_events_fetch_failures_total", "Failures to read new events."),
		batches:        d("ph_ingest_batches_total", "Batches stored."),
		rows:           d("ph_ingest_rows_total", "New rows stored, by stream.", "stream"),
		duplicates:     d("ph_ingest_duplicates_total", "Records received again and ignored."),
		rejects:        d("ph_ingest_rejects_total", "Batches refused, by reason.", "reason"),
		poolConns:      d("ph_db_pool_connections", "Database pool connections, by state.", "state"),
		poolMax:        d("ph_db_pool_max_connections", "Database pool size."),
		poolAcquires:   d("ph_db_pool_acquires_total", "Connections acquired from the pool."),
		poolEmptyAcq:   d("ph_db_pool_empty_acquires_total", "Acquires that had to wait or connect."),
		poolWait:       d("ph_db_pool_acquire_seconds_total", "Time spent acquiring connections."),
		stationLastSeen: d("ph_station_last_seen_timestamp_seconds",
			"Unix time of the station's last batch.", "station"),
		stationOnline: d("ph_station_online", "1 while the station reports, 0 while it is offline.", "station"),
		stationsUp:    d("ph_stats_stations_up", "1 when the station list could be read for this scrape."),
		uptime:        d("ph_uptime_seconds", "Seconds since the service started."),
		jobRuns:       d("ph_job_runs_total", "Runs of a background job that ended.", "job"),
		jobFailures:   d("ph_job_failures_total", "Runs of a background job that failed.", "job"),
		jobSeconds:    d("ph_job_last_run_seconds", "How long the job's last run took.", "job"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.s.snapshot(context.Background())
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	ws := snap.WebSocket
	gauge(c.wsClients, float64(ws.Clients))
	counter(c.wsConnections, float64(ws.Connections))
	counter(c.wsMessages, float64(ws.MessagesSent))
	for reason, n := range ws.Evictions {
		counter(c.wsEvictions, float64(n), reason)
	}
	for reason, n := range ws.Rejected {
		counter(c.wsRejected, float64(n), reason)
	}
	counter(c.wsReplayed, float64(ws.Replayed))
	counter(c.wsResyncs, float64(ws.Resyncs))
	counter(c.events, float64(ws.Events))
	gauge(c.lastEvent, float64(ws.LastEventID))
	counter(c.listenFailures, float64(ws.ListenFailures))
	counter(c.fetchFailure, float64(ws.FetchFailures))

	in := snap.Ingest
	counter(c.batches, float64(in.Batches))
	counter(c.rows, float64(in.NewReadings), "readings")
	counter(c.rows, float64(in.NewAlerts), "alerts")
	counter(c.rows, float64(in.NewWQI), "wqi")
	counter(c.duplicates, float64(in.Duplicates))
	for reason, n := range in.Rejects {
		counter(c.rejects, float64(n), reason)
	}

	db := snap.Database
	gauge(c.poolConns, float64(db.TotalConns), "total")
	gauge(c.poolConns, float64(db.IdleConns), "idle")
	gauge(c.poolConns, float64(db.AcquiredConns), "acquired")
	gauge(c.poolMax, float64(db.MaxConns))
	counter(c.poolAcquires, float64(db.AcquireCount))
	counter(c.poolEmptyAcq, float64(db.EmptyAcquireCount))
	counter(c.poolWait, db.AcquireWaitSeconds)

	up := 1.0
	if snap.StationsError != "" {
		up = 0
	}
	gauge(c.stationsUp, up)
	for id, st := range snap.Stations {
		if st.LastBatchAt == nil {
			continue
		}
		gauge(c.stationLastSeen, float64(st.LastBatchAt.UnixMilli())/1000, id)
		online := 0.0
		if st.Online {
			online = 1
		}
		gauge(c.stationOnline, online, id)
	}
	gauge(c.uptime, snap.UptimeSeconds)
	for name, j := range snap.Jobs {
		counter(c.jobRuns, float64(j.Runs), name)
		counter(c.jobFailures, float64(j.Failures), name)
		gauge(c.jobSeconds, j.LastSeconds, name)
	}
}

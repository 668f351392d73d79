// Package server composes ph-cloud's HTTP service: the ingest endpoint, the query API, the
// fleet view (/v1/fleet), the live WebSocket fan-out (/ws), the operator's dashboard (/ and /static/), /health,
// /stats, /metrics, and the background jobs (storage maintenance, station health,
// retention of live events, forecasts and anomaly detection), with graceful shutdown.
//
// New builds everything and starts nothing. Run serves on a listener the caller opened
// (so that a busy port is a start-up error) and owns the HTTP server, the fan-out's feed
// and the job goroutines: when its context ends it stops accepting, closes the WebSocket
// connections (1001), lets requests in progress finish (a batch being stored completes),
// stops the jobs, and returns after all of them exited.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/purehealth/purehealth/cloud/internal/access"
	"github.com/purehealth/purehealth/cloud/internal/config"
	"github.com/purehealth/purehealth/cloud/internal/dashboard"
	"github.com/purehealth/purehealth/cloud/internal/fanout"
	"github.com/purehealth/purehealth/cloud/internal/ingest"
	"github.com/purehealth/purehealth/cloud/internal/notify"
	"github.com/purehealth/purehealth/cloud/internal/queryapi"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/internal/jobs"
	"github.com/purehealth/purehealth/shared/version"
)

// ShutdownTimeout bounds how long Run waits for requests in progress after its context
// ends.
const ShutdownTimeout = 30 * time.Second

// Server is the cloud service.
type Server struct {
	cfg    *config.Config
	store  *store.Store
	log    *slog.Logger
	ingest *ingest.Handler
	hub    *fanout.Hub
	notify *notify.Dispatcher
	guard  *access.Guard
	mux    *http.ServeMux
	tls    *tls.Config

	started time.Time
	rates   rateSampler
	jobRuns jobs.Recorder // every background job's runs, for /stats

	sources *sources // upstream, satellite, samples, fused WQI (sources.go)

	metrics   http.Handler // the Prometheus registry's handler
	metricsLn net.Listener // metrics.listen's listener, nil: /metrics is on the API's mux
}

// New wires the service over an open store. cfg must be a loaded (validated) Config.
func New(cfg *config.Config, st *store.Store, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, store: st, log: log, mux: http.NewServeMux(), started: time.Now()}
	if cfg.TLS != nil {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if cfg.TLS.ClientCAFile != "" {
			pem, err := os.ReadFile(cfg.TLS.ClientCAFile)
			if err != nil {
				return nil, fmt.Errorf("tls client_ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls client_ca_file %s: no PEM certificate in it", cfg.TLS.ClientCAFile)
			}
			// Asked for, not required: browsers and tokens go on as before; a station's
			// mode says whether it needs one (ingest).
			s.tls.ClientCAs, s.tls.ClientAuth = pool, tls.VerifyClientCertIfGiven
		}
	}
	var err error
	if s.sources, err = newSources(cfg, st, log); err != nil {
		return nil, err
	}
	s.ingest = ingest.New(s.sources.ingestStore(st), ingest.Options{
		RatePerStation: cfg.Ingest.RatePerStation, Burst: cfg.Ingest.Burst,
		MaxInFlight: cfg.Ingest.MaxInFlight, RetryAfter: cfg.Ingest.RetryAfter.Std(),
		Log: log.With("component", "ingest"),
	})
	api := queryapi.New(st, queryapi.Options{
		Fusion:     cfg.Fusion.Policy(),
		RetryAfter: cfg.Ingest.RetryAfter.Std(), Log: log.With("component", "api"),
	})
	ws := cfg.WebSocket
	hub, err := fanout.New(fanout.NewStoreSource(st, fanout.SourceOptions{
		PollInterval: ws.PollInterval.Std(),
		// Resumes that read the database share the pool with ingest and the API.
		ReplayConcurrency: max(1, int(cfg.Database.MaxConns)/4),
		Log:               log.With("component", "fanout"),
	}), fanout.Options{
		AllowedOrigins: ws.AllowedOrigins,
		MaxClients:     ws.MaxClients, Queue: ws.Queue, WriteTimeout: ws.WriteTimeout.Std(),
		PingInterval: ws.PingInterval.Std(), ReadLimit: int64(ws.ReadLimit), ReplayMax: noneIfZero(ws.ReplayMax),
		ReplayWindow: ws.ReplayWindow.Std(), Recent: noneIfZero(ws.Recent),
		Log: log.With("component", "fanout"),
	})
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	s.hub = hub
	// The dispatcher runs even with no channels: the outbox gets a row per transition
	// whatever is configured, and the dispatcher prunes it.
	s.notify, err = notify.New(st, notify.Options{Channels: cfg.NotifyChannels(), Log: log.With("component", "notify")})
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(s), s.notify.Collector(), s.sources.collector())

	// Who may do what is decided in one place (access): reading needs a viewer or
	// operator token when auth.require_viewer says so, acting an operator token always.
	// The dashboard's files carry no data and are served to anyone; /health is for load
	// balancers.
	s.guard = access.New(st, cfg.AccessPolicy(), log.With("component", "access"))
	s.mux.Handle("/v1/ingest", s.ingest)
	apiMux := http.NewServeMux()
	api.Register(apiMux)
	s.mux.Handle("/v1/", s.guard.Read(apiMux, false))
	s.mux.Handle("POST /v1/alerts/{id}/ack", s.guard.Require(http.HandlerFunc(api.Ack), false, store.RoleOperator))
	// POST /v1/samples checks its lab or operator token itself.
	s.sources.register(s.mux)
	wsMux := http.NewServeMux()
	hub.Register(wsMux)
	s.mux.Handle("/ws", s.guard.Read(wsMux, true))
	s.mux.Handle("/ws/", s.guard.Read(wsMux, true))
	dash := dashboard.Handler()
	s.mux.Handle("GET /{$}", dash)
	s.mux.Handle("GET /static/", dash)
	s.mux.HandleFunc("GET /health", s.health)
	s.mux.Handle("GET /stats", s.guard.Read(http.HandlerFunc(s.serveStats), false))
	s.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	})
	if cfg.Metrics.Listen == "" {
		s.mux.Handle("GET /metrics", s.guard.Metrics(s.metrics))
	}
	return s, nil
}

// noneIfZero passes a count whose zero in the configuration means "none" to the hub,
// which reads zero as its default and a negative count as none.
func noneIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// ServeMetricsOn makes Run serve /metrics, and nothing else, on ln without a token: the
// listener of metrics.listen, whose address is its protection. Call it before Run; with
// metrics.listen set, the API's listener does not serve /metrics.
func (s *Server) ServeMetricsOn(ln net.Listener) { s.metricsLn = ln }

// Handler returns the service's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.mux }

// Run serves on ln and runs the background jobs until ctx ends, then shuts down
// gracefully: the hub closes the WebSocket connections (1001) first, because Shutdown
// does not wait for hijacked connections; the HTTP server then stops accepting and lets
// requests in progress finish (a batch being stored completes) for up to
// ShutdownTimeout; the jobs stop last. The hub and the jobs run on contexts of their
// own so that they outlive ctx until their turn. Run returns after every goroutine it
// started has exited: nil after a shutdown ctx asked for, the server's error if it
// failed while serving.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		// A full batch (8 MiB) over a slow mobile uplink must still fit.
		ReadTimeout:    5 * time.Minute,
		WriteTimeout:   5 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		TLSConfig:      s.tls,
	}
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHub()
	jobCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopJobs()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// The sources' collection and fused WQI jobs: sources.go.
		all := append(s.jobs(), s.sources.jobs()...)
		for i, j := range all {
			all[i] = s.jobRuns.Wrap(j)
		}
		jobs.Run(jobCtx, s.log.With("component", "jobs"), all...)
		return nil
	})
	g.Go(func() error {
		// Notifications stop with the jobs, after the requests in progress.
		if err := s.notify.Run(jobCtx); err != nil {
			s.log.Error("notifications stopped", "err", err)
		}
		return nil
	})
	g.Go(func() error {
		// A hub that stops leaves ingest and the API serving: it is logged, not fatal.
		if err := s.hub.Run(hubCtx); err != nil {
			s.log.Error("live events stopped", "err", err)
		}
		return nil
	})
	g.Go(func() error {
		var err error
		if s.tls != nil {
			err = hs.ServeTLS(ln, "", "")
		} else {
			err = hs.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("http server: %w", err)
	})
	var ms *http.Server
	if s.metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.metrics)
		ms = &http.Server{
			Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
			WriteTimeout: time.Minute, MaxHeaderBytes: 64 << 10, ErrorLog: hs.ErrorLog,
		}
		g.Go(func() error {
			if err := ms.Serve(s.metricsLn); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics server: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done() // ctx ended, or serving failed
		s.log.Info("shutting down")
		stopHub()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
		defer cancel()
		err := hs.Shutdown(sctx)
		if ms != nil {
			// A scrape is short; it shares the deadline of the API's requests.
			err = errors.Join(err, ms.Shutdown(sctx))
		}
		stopJobs()
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		return nil
	})
	if s.metricsLn != nil {
		s.log.Info("serving /metrics", "addr", s.metricsLn.Addr().String())
	}
	s.log.Info("serving", "addr", ln.Addr().String(), "tls", s.tls != nil,
		"storage", s.store.Schema().Mode.String(), "schema", s.store.Schema().Version, "version", version.Version)
	return g.Wait()
}

func (s *Server) jobs() []jobs.Job {
	health := store.HealthPolicy{OfflineAfter: s.cfg.StationHealth.OfflineAfter.Std(), ByStation: map[string]time.Duration{}}
	for id, d := range s.cfg.StationHealth.OfflineAfterByStation {
		health.ByStation[id] = d.Std()
	}
	return append([]jobs.Job{{
		Name:     "station health",
		Interval: s.cfg.StationHealth.Interval.Std(),
		Run: func(ctx context.Context) error {
			changes, err := s.store.CheckStationHealth(ctx, health)
			for _, c := range changes {
				s.log.Warn("station offline", "station", c.Station, "last_batch", c.LastSeen, "alert", c.AlertID)
			}
			return err
		},
	}, {
		Name:     "live events retention",
		Interval: time.Hour,
		Run: func(ctx context.Context) error {
			n, err := s.store.PruneEvents(ctx, time.Now().Add(-s.cfg.Retention.Events.Std()))
			if n > 0 {
				s.log.Info("live events pruned", "events", n)
			}
			return err
		},
	}, {
		Name:     "ingest rates",
		Interval: rateInterval,
		Run: func(context.Context) error {
			s.rates.add(time.Now(), s.ingest.Stats())
			return nil
		},
	}, {
		Name:     "maintenance",
		Interval: s.cfg.Partitions.MaintenanceInterval.Std(),
		Run: func(ctx context.Context) error {
			rep, err := s.store.Maintain(ctx)
			if rep != (store.MaintenanceReport{}) {
				s.log.Info("storage maintenance", "partitions_created", rep.PartitionsCreated,
					"partitions_dropped", rep.PartitionsDropped, "rows_deleted", rep.RowsDeleted)
			}
			return err
		},
	}}, s.analyticsJobs()...)
}

// health answers 200 when the database answers, 503 otherwise, with JSON detail.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	type db struct {
		Status    string  `json:"status"`
		LatencyMS float64 `json:"latency_ms,omitempty"`
		Schema    int     `json:"schema"`
		Storage   string  `json:"storage"`
		Conns     int32   `json:"conns"`
		IdleConns int32   `json:"idle_conns"`
		Error     string  `json:"error,omitempty"`
	}
	out := struct {
		Status   string       `json:"status"`
		Version  string       `json:"version"`
		Database db           `json:"database"`
		Ingest   ingest.Stats `json:"ingest"`
	}{Version: version.Version, Ingest: s.ingest.Stats()}
	sc, stat := s.store.Schema(), s.store.PoolStats()
	out.Database = db{Schema: sc.Version, Storage: string(sc.Mode), Conns: stat.TotalConns(), IdleConns: stat.IdleConns()}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	status := http.StatusOK
	latency, err := s.store.Ping(ctx)
	if err != nil {
		s.log.Warn("health check: database unavailable", "err", err)
		status, out.Status = http.StatusServiceUnavailable, "unavailable"
		out.Database.Status, out.Database.Error = "unavailable", "the database does not answer"
		w.Header().Set("Retry-After", "5")
	} else {
		out.Status, out.Database.Status = "ok", "ok"
		out.Database.LatencyMS = float64(latency.Microseconds()) / 1000
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(out); err != nil {
		s.log.Debug("write health", "err", err)
	}
}

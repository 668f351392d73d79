// Package server composes ph-cloud's HTTP service: the ingest endpoint, the query API,
// /health, and the background jobs, with graceful shutdown.
//
// New builds everything and starts nothing. Run serves on a listener the caller opened
// (so that a busy port is a start-up error) and owns the HTTP server and the job
// goroutines: when its context ends it stops accepting, lets requests in progress finish
// (a batch being stored completes), stops the jobs, and returns after all of them exited.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/config"
	"github.com/purehealth/purehealth/cloud/internal/fusion"
	"github.com/purehealth/purehealth/cloud/internal/ingest"
	"github.com/purehealth/purehealth/cloud/internal/jobs"
	"github.com/purehealth/purehealth/cloud/internal/queryapi"
	"github.com/purehealth/purehealth/cloud/internal/store"
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
	mux    *http.ServeMux
	tls    *tls.Config
}

// New wires the service over an open store. cfg must be a loaded (validated) Config.
func New(cfg *config.Config, st *store.Store, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, store: st, log: log, mux: http.NewServeMux()}
	if cfg.TLS != nil {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	s.ingest = ingest.New(st, ingest.Options{
		RatePerStation: cfg.Ingest.RatePerStation, Burst: cfg.Ingest.Burst,
		MaxInFlight: cfg.Ingest.MaxInFlight, RetryAfter: cfg.Ingest.RetryAfter.Std(),
		Log: log.With("component", "ingest"),
	})
	maxAge := map[string]time.Duration{}
	for src := range cfg.Fusion.MaxAge {
		maxAge[src] = cfg.Fusion.MaxAgeOf(src)
	}
	api := queryapi.New(st, queryapi.Options{
		Fusion:     fusion.Policy{Priority: cfg.Fusion.Priority, MaxAge: maxAge},
		RetryAfter: cfg.Ingest.RetryAfter.Std(), Log: log.With("component", "api"),
	})
	s.mux.Handle("/v1/ingest", s.ingest)
	api.Register(s.mux)
	s.mux.HandleFunc("GET /health", s.health)
	return s, nil
}

// Handler returns the service's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.mux }

// Run serves on ln and runs the background jobs until ctx ends, then shuts down
// gracefully. It returns nil after a shutdown that ctx asked for.
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
	jobCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	jobsDone := make(chan struct{})
	go func() {
		defer close(jobsDone)
		jobs.Run(jobCtx, s.log.With("component", "jobs"), s.jobs()...)
	}()

	serveErr := make(chan error, 1)
	go func() {
		var err error
		if s.tls != nil {
			err = hs.ServeTLS(ln, "", "")
		} else {
			err = hs.Serve(ln)
		}
		serveErr <- err
	}()
	s.log.Info("serving", "addr", ln.Addr().String(), "tls", s.tls != nil,
		"storage", s.store.Schema().Mode.String(), "schema", s.store.Schema().Version, "version", version.Version)

	var err error
	select {
	case err = <-serveErr:
		err = fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
		s.log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
		if serr := hs.Shutdown(sctx); serr != nil {
			err = fmt.Errorf("shutdown: %w", serr)
		}
		cancel()
		if serr := <-serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}
	stopJobs()
	<-jobsDone
	return err
}

func (s *Server) jobs() []jobs.Job {
	return []jobs.Job{{
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
	}}
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

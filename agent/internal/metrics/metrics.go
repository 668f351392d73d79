// Package metrics serves the station agent's Prometheus metrics at /metrics: the ideas
// operators know from edge runtimes — the forwarding queue's length and age, what was
// dropped or refused and why, how long the buffer's commits take, how the uplink fails and
// for how long the station has been cut off, probe errors, broker clients.
//
// Everything but the commit latency is read at scrape time from a Snapshot the agent
// takes of its components (the Snapshot function given to New), so a scrape costs the
// agent nothing between scrapes and shows the same numbers as `ph-agent status`. The
// commit latency is a histogram the buffer feeds through ObserveCommit.
//
// A Server is built by New, binds its port in Listen (so that a port in use is a start-up
// failure), and serves in Run until the context ends; Run owns the HTTP server's
// goroutines and returns after they have stopped.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Snapshot is the agent's state at one instant, as the metrics report it. Maps are keyed
// by the label value they become; a nil map reports nothing.
type Snapshot struct {
	Station, Version string
	UptimeS          float64
	ClockSynced      bool

	// Queue: per stream (readings, alerts, wqi), what waits to be forwarded, and the
	// measurement time of the oldest waiting reading (zero: none).
	Backlog      map[string]int
	OldestUnsent time.Time

	BufferUsedBytes, BufferMaxBytes int64
	AutonomyHours                   *float64         // nil: nothing arrives
	Evicted                         map[string]int64 // by eviction step
	StoreCommits                    uint64
	StoreFailures                   uint64 // readings the buffer could not take

	ReadingsStored  uint64
	ReadingsFlagged map[string]uint64 // by quality: bad, suspect
	// Rejects are publishes the broker refused, by reason (decode, unknown_param,
	// sensor_limit, acl ...).
	Rejects map[string]int64
	// Dropped are messages and records given up on after they were taken in, by reason.
	Dropped map[string]uint64

	BrokerClients  int64
	BrokerReceived int64

	Uplink *Uplink // nil: no uplink configured

	Probes []Probe

	HooksRun, HooksFailed uint64
	ActiveAlerts          int

	ReloadsApplied, ReloadsFailed uint64 // SIGHUP reloads
	RestartNeeded                 int    // configuration keys changed that wait for a restart
}

// Uplink is the forwarding side of a Snapshot.
type Uplink struct {
	State               string
	LastSuccess         time.Time // zero: none since start
	Since               time.Time // when forwarding began (offline counts from here without a success)
	Failing             bool      // the last attempt failed
	Failures            uint64
	ConsecutiveFailures int
	Acked               uint64
	BytesToday          int64
}

// Probe is one configured probe.
type Probe struct {
	Name, Kind, Param string
	Up                bool
	Readings          uint64
	Errors            map[string]uint64 // by kind of error
	Reconnects        uint64
}

// uplinkStates are the values the state label takes, so that each has a series.
var uplinkStates = []string{"stopped", "idle", "sending", "backing off", "auth failed", "budget exhausted"}

// Server serves /metrics. ObserveCommit is safe for concurrent use.
type Server struct {
	addr    string
	log     *slog.Logger
	reg     *prometheus.Registry
	commits prometheus.Histogram

	mu sync.Mutex
	ln net.Listener
}

// New builds a Server for addr (host:port) over the snapshot function, which is called
// once per scrape. It binds nothing.
func New(addr string, snapshot func() Snapshot, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{addr: addr, log: log, reg: prometheus.NewRegistry(),
		commits: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ph_agent_store_commit_seconds",
			Help: "How long a group commit of the buffer took, fsync included.",
			// An SSD commits in well under a millisecond, an SD card in tens of them.
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	s.reg.MustRegister(s.commits, &collector{snapshot: snapshot},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return s
}

// ObserveCommit records one buffer commit (spool.Options.OnCommit).
func (s *Server) ObserveCommit(d time.Duration) { s.commits.Observe(d.Seconds()) }

// Handler serves the metrics (for tests and embedding).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}))
	return mux
}

// Listen binds the address; once bound, it does nothing.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address (after Listen), for tests that listen on port 0.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close releases the listener of a Server that will not Run.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	err := s.ln.Close()
	s.ln = nil
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Run serves until ctx ends (binding first if Listen was not called), then shuts the
// server down and returns nil; an error only if serving failed.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("serving metrics", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("metrics: shutdown: %w", err)
	}
	return nil
}

package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/purehealth/purehealth/agent/internal/alerting"
)

// Backend is what the admin API reads from and acts on: the running agent.
type Backend interface {
	Status(ctx context.Context) (Status, error)
	Sensors(ctx context.Context) (Sensors, error)
	Readings(ctx context.Context, q ReadingsQuery) (Readings, error)
	WQI(ctx context.Context) (json.RawMessage, error)
	Alerts(ctx context.Context, all bool, limit int) (Alerts, error)
	Ack(ctx context.Context, id uint64) (alerting.Alert, error)
	Queue(ctx context.Context) (Queue, error)
	Flush(ctx context.Context) error
	// Probes reports every configured probe's own status; ProbeTest takes one reading now
	// and ProbeCalibrate sends a calibration point, both returning the raw exchange.
	Probes(ctx context.Context) (Probes, error)
	ProbeTest(ctx context.Context, name string) (json.RawMessage, error)
	ProbeCalibrate(ctx context.Context, name, point string, value float64) (json.RawMessage, error)
	// AddSample stores a lab or field-kit result like any reading (source manual) and
	// returns it as stored, with its seq.
	AddSample(ctx context.Context, req SampleRequest) (Reading, error)
}

// ErrBadRequest marks a Backend error caused by the request (HTTP 400).
var ErrBadRequest = errors.New("bad request")

// ErrNotFound marks a Backend error for something that does not exist (HTTP 404).
var ErrNotFound = errors.New("not found")

// ErrUnavailable marks a Backend error for something not set up (HTTP 503), such as a
// flush without an uplink.
var ErrUnavailable = errors.New("unavailable")

// Server serves the admin API on a unix socket.
type Server struct {
	path    string
	backend Backend
	log     *slog.Logger
	ln      net.Listener // bound by Listen
}

// NewServer returns a server for the socket at path. It starts and binds nothing.
func NewServer(path string, backend Backend, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{path: path, backend: backend, log: log}
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, r, func(ctx context.Context) (any, error) { return s.backend.Status(ctx) })
	})
	mux.HandleFunc("GET /v1/sensors", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, r, func(ctx context.Context) (any, error) { return s.backend.Sensors(ctx) })
	})
	mux.HandleFunc("GET /v1/readings", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, r, func(ctx context.Context) (any, error) {
			q, err := parseReadingsQuery(r)
			if err != nil {
				return nil, err
			}
			return s.backend.Readings(ctx, q)
		})
	})
	mux.HandleFunc("GET /v1/wqi", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, r, func(ctx context.Context) (any, error) { return s.backend.WQI(ctx) })
	})
	mux.HandleFunc("GET /v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, r, func(ctx context.Context) (any, error) {
			all := r.URL.Query().Get("all") == "1" || r.URL.Query().Get("all") == "true"
			limit, err := intParam(r, "limit", 50)
			if err != nil {
				return nil, err
			}
			return s.backend.Alerts(ctx, all, limit)
		})
	})
	mux.HandleFunc("POST /v1/alerts/{id}/ack", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, r, func(ctx context.Context) (any, error) {
			id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: alert id %q is not a number", ErrBadRequest, r.PathValue("id"))
			}
			return s.backend.Ack(ctx, id)
		})
	})
	mux.HandleFunc("GET /v1/queue", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, r, func(ctx context.Context) (any, error) { return s.backend.Queue(ctx) })
	})
	mux.HandleFunc("POST /v1/flush", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, r, func(ctx context.Context) (any, error) {
			if err := s.backend.Flush(ctx); err != nil {
				return nil, err
			}
			return s.backend.Queue(ctx)
		})
	})
	mux.HandleFunc("POST /v1/samples", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, r, func(ctx context.Context) (any, error) {
			var req SampleRequest
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				return nil, fmt.Errorf("%w: sample request: %v", ErrBadRequest, err)
			}
			if req.Param == "" || req.Time.IsZero() {
				return nil, fmt.Errorf("%w: a sample needs its parameter and the time it was taken", ErrBadRequest)
			}
			return s.backend.AddSample(ctx, req)
		})
	})
	mux.HandleFunc("GET /v1/probes", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, r, func(ctx context.Context) (any, error) { return s.backend.Probes(ctx) })
	})
	mux.HandleFunc("POST /v1/probes/{name}/test", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, r, func(ctx context.Context) (any, error) { return s.backend.ProbeTest(ctx, r.PathValue("name")) })
	})
	mux.HandleFunc("POST /v1/probes/{name}/calibrate", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, r, func(ctx context.Context) (any, error) {
			var req CalibrateRequest
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
				return nil, fmt.Errorf("%w: calibration request: %v", ErrBadRequest, err)
			}
			if req.Point == "" {
				return nil, fmt.Errorf("%w: calibration point missing", ErrBadRequest)
			}
			return s.backend.ProbeCalibrate(ctx, r.PathValue("name"), req.Point, req.Value)
		})
	})
	return mux
}

func parseReadingsQuery(r *http.Request) (ReadingsQuery, error) {
	q := ReadingsQuery{Param: r.URL.Query().Get("param")}
	if s := r.URL.Query().Get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return q, fmt.Errorf("%w: since %q is not a positive duration like 30m or 24h", ErrBadRequest, s)
		}
		q.Since = d
	}
	limit, err := intParam(r, "limit", 50)
	q.Limit = limit
	return q, err
}

func intParam(r *http.Request, name string, def int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100000 {
		return 0, fmt.Errorf("%w: %s %q must be a number from 1 to 100000", ErrBadRequest, name, s)
	}
	return n, nil
}

func (s *Server) reply(w http.ResponseWriter, r *http.Request, fn func(context.Context) (any, error)) {
	v, err := fn(r.Context())
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrBadRequest):
			code = http.StatusBadRequest
		case errors.Is(err, alerting.ErrNotFound), errors.Is(err, ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, alerting.ErrResolved):
			code = http.StatusConflict
		case errors.Is(err, ErrUnavailable):
			code = http.StatusServiceUnavailable
		}
		if code == http.StatusInternalServerError {
			s.log.Error("admin request failed", "path", r.URL.Path, "err", err)
		}
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(Error{Error: err.Error()}) // the client may be gone
		return
	}
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.Debug("admin reply not delivered", "path", r.URL.Path, "err", err)
	}
}

// Listen binds the socket, so that a second agent is found at start-up. A stale socket
// file left by a crashed agent is replaced; a live one (another agent running) is an
// error. Run serves the bound socket (and binds it itself when Listen was not called);
// Close releases a socket that Run never served. Listen must not be called concurrently
// with Run or Close.
func (s *Server) Listen() error {
	if s.ln != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o750); err != nil {
		return fmt.Errorf("admin socket dir: %w", err)
	}
	if _, err := os.Stat(s.path); err == nil {
		if c, err := net.DialTimeout("unix", s.path, 200*time.Millisecond); err == nil {
			c.Close()
			return fmt.Errorf("admin socket %s is in use: is another ph-agent running?", s.path)
		}
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("remove stale admin socket: %w", err)
		}
	}
	ln, err := listenUnix(s.path, 0o660)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	s.ln = ln
	return nil
}

// Close releases the socket Listen bound, when Run will not serve it. It is idempotent.
func (s *Server) Close() error {
	if s.ln == nil {
		return nil
	}
	err := s.ln.Close()
	s.ln = nil
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close admin socket: %w", err)
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove admin socket: %w", err)
	}
	return nil
}

// Run serves on the socket until ctx ends, then removes it. It binds the socket first
// unless Listen did.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	ln := s.ln
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	<-errc
	if rmErr := os.Remove(s.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		s.log.Warn("remove admin socket", "err", rmErr)
	}
	if err != nil {
		return fmt.Errorf("admin server shutdown: %w", err)
	}
	return nil
}

// listenUnix listens on a unix socket at path that has mode from the moment it exists:
// the socket is bound in a private directory beside path, given its mode there, and
// renamed into place (chmod after a bind at path would leave a window in which anyone
// the umask lets in could connect).
func listenUnix(path string, mode os.FileMode) (*net.UnixListener, error) {
	// Short names: a unix socket's path is limited to 107 bytes.
	dir, err := os.MkdirTemp(filepath.Dir(path), ".s")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	// The name it was bound to goes with the temporary directory; Run removes path.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("mode: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, err
	}
	socketAppeared(path)
	return ln, nil
}

// socketAppeared is called as soon as the socket exists at its path (tests look at it
// there).
var socketAppeared = func(string) {}

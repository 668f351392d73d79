package httpsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/firmware-sim/internal/probepayload"
	"github.com/purehealth/purehealth/firmware-sim/internal/simhttp"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Fault is how the simulated probe misbehaves: a device fault (see device.Faults) or one of
// the transport faults below.
type Fault string

// The transport faults. Each hits a share of requests (Config.FaultRate).
const (
	// FaultError answers 500 Internal Server Error: firmware that fails to read its sensor.
	FaultError Fault = "error"
	// FaultSlow answers only after Config.SlowDelay: a device busy or on a bad link.
	FaultSlow Fault = "slow"
	// FaultOversized answers 200 with a 1 MiB JSON document: firmware that dumps its log.
	FaultOversized Fault = "oversized"
)

// oversizedBytes is the size of a FaultOversized body.
const oversizedBytes = 1 << 20

// Faults lists the faults ParseFault accepts: the device faults, then the transport ones.
func Faults() []Fault {
	var out []Fault
	for _, f := range device.Faults() {
		out = append(out, Fault(f))
	}
	return append(out, FaultError, FaultSlow, FaultOversized)
}

// ParseFault resolves a fault name; "" is no fault, "500" is FaultError.
func ParseFault(s string) (Fault, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "500" {
		return FaultError, nil
	}
	if f, err := device.ParseFault(s); err == nil {
		return Fault(f), nil
	}
	for _, f := range []Fault{FaultError, FaultSlow, FaultOversized} {
		if Fault(s) == f {
			return f, nil
		}
	}
	names := make([]string, 0, len(Faults()))
	for _, f := range Faults() {
		names = append(names, string(f))
	}
	return "", fmt.Errorf("unknown fault %q (want one of %s)", s, strings.Join(names, ", "))
}

// Config is what to simulate. Params is required; zero values take the documented defaults.
type Config struct {
	// Station selects the river model (device.ForStation); default MH-PUNE-001.
	Station string
	// Seed selects the simulated river and probes.
	Seed int64
	// Params lists the parameters; each is served at /<param>.
	Params []telemetry.Param
	// Format is the representation; default FormatJSON.
	Format Format
	// Fault makes every probe misbehave (none if empty).
	Fault Fault
	// FaultRate is the share of requests a transport fault hits, in (0, 1]. Default 1/3.
	FaultRate float64
	// SlowDelay is how long FaultSlow holds a response. Default 30s.
	SlowDelay time.Duration
	// Now is the clock of the readings; default time.Now.
	Now func() time.Time
	// Origin is when a probe fault sets in (a drift starts, a stuck value freezes); before
	// it the probe is healthy. Zero means when the simulator is created.
	Origin time.Time
	// Plumes are discharges upstream that the river carries past the station.
	Plumes []device.Plume
}

// Stats are the server's counters since it was created.
type Stats struct {
	Requests, Readings, Garbage, Dropouts, Errors, Slow, Oversized uint64
}

// Server serves the simulated probes. Create it with New.
type Server struct {
	cfg    Config
	log    *slog.Logger
	probes map[string]*device.Probe // by path, "/do"
	unit   map[string]string

	requests, readings, garbage, dropouts, errs, slow, oversized atomic.Uint64
}

// New checks cfg and returns a server. It starts nothing. log may be nil.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Station == "" {
		cfg.Station = "MH-PUNE-001"
	}
	if cfg.Format == "" {
		cfg.Format = FormatJSON
	}
	if cfg.Fault == "" {
		cfg.Fault = Fault(device.FaultNone)
	}
	if cfg.FaultRate == 0 {
		cfg.FaultRate = 1.0 / 3
	}
	if cfg.SlowDelay == 0 {
		cfg.SlowDelay = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var problems []error
	if len(cfg.Params) == 0 {
		problems = append(problems, errors.New("params: at least one is required"))
	}
	if _, err := probepayload.ParseFormat(string(cfg.Format)); err != nil {
		problems = append(problems, err)
	}
	if _, err := ParseFault(string(cfg.Fault)); err != nil {
		problems = append(problems, err)
	}
	if !(cfg.FaultRate > 0 && cfg.FaultRate <= 1) {
		problems = append(problems, fmt.Errorf("fault rate %v: must be within (0, 1]", cfg.FaultRate))
	}
	if cfg.SlowDelay < 0 {
		problems = append(problems, fmt.Errorf("slow delay %s: must not be negative", cfg.SlowDelay))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}

	model := device.New(device.ForStation(cfg.Station), cfg.Seed).WithPlumes(cfg.Plumes...)
	devFault := device.FaultNone
	if f, err := device.ParseFault(string(cfg.Fault)); err == nil {
		devFault = f
	}
	origin := cfg.Now()
	if !cfg.Origin.IsZero() {
		origin = cfg.Origin
	}
	s := &Server{cfg: cfg, log: log, probes: map[string]*device.Probe{}, unit: map[string]string{}}
	for i, p := range cfg.Params {
		info, ok := telemetry.Info(p)
		if !ok {
			return nil, fmt.Errorf("params: %q is not a canonical parameter", p)
		}
		path := "/" + string(p)
		if _, dup := s.probes[path]; dup {
			return nil, fmt.Errorf("params: %s listed twice", p)
		}
		s.probes[path] = device.NewProbe(model, p, i, devFault, origin)
		s.unit[path] = info.Unit
	}
	return s, nil
}

// URLs lists the resource URLs of a server listening on addr, in Params order.
func (s *Server) URLs(addr net.Addr) []string {
	out := make([]string, 0, len(s.cfg.Params))
	for _, p := range s.cfg.Params {
		out = append(out, "http://"+addr.String()+"/"+string(p))
	}
	return out
}

// Stats returns the counters. Safe for concurrent use.
func (s *Server) Stats() Stats {
	return Stats{
		Requests: s.requests.Load(), Readings: s.readings.Load(), Garbage: s.garbage.Load(),
		Dropouts: s.dropouts.Load(), Errors: s.errs.Load(), Slow: s.slow.Load(),
		Oversized: s.oversized.Load(),
	}
}

// Serve answers HTTP requests on l until ctx ends, then closes l and every connection
// (cutting off responses held by FaultSlow) and returns nil; another error if serving
// failed. Call it once.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	return simhttp.Serve(ctx, l, s.Handler(), s.log, s.cfg.SlowDelay)
}

// Handler answers GET /<param>. Safe for concurrent use.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	probe, ok := s.probes[r.URL.Path]
	if !ok {
		names := make([]string, 0, len(s.cfg.Params))
		for _, p := range s.cfg.Params {
			names = append(names, "/"+string(p))
		}
		http.Error(w, "no such resource; serving "+strings.Join(names, ", "), http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	now := s.cfg.Now()
	sm := probe.Read(now)
	hit := float64(sm.Nonce>>11)/(1<<53) < s.cfg.FaultRate
	switch {
	case hit && s.cfg.Fault == FaultError:
		s.errs.Add(1)
		http.Error(w, "simulated sensor failure", http.StatusInternalServerError)
		return
	case hit && s.cfg.Fault == FaultSlow:
		s.slow.Add(1)
		t := time.NewTimer(s.cfg.SlowDelay)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			// The client gave up or the server is stopping: no answer at all, rather than
			// the empty 200 a returning handler would leave.
			panic(http.ErrAbortHandler)
		case <-t.C:
		}
	case hit && s.cfg.Fault == FaultOversized:
		s.oversized.Add(1)
		s.writeOversized(w, sm.Value, s.unit[r.URL.Path])
		return
	case !sm.OK:
		s.dropouts.Add(1)
		s.hangUp(w)
		return
	}
	body := probepayload.Encode(s.cfg.Format, sm.Value, s.unit[r.URL.Path], now)
	if sm.Garbage {
		s.garbage.Add(1)
		body = probepayload.EncodeGarbage(s.cfg.Format, sm.Value, s.unit[r.URL.Path], now, sm.Nonce)
	} else {
		s.readings.Add(1)
	}
	w.Header().Set("Content-Type", contentType(s.cfg.Format))
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Cache-Control", "no-store")
	if _, err := w.Write(body); err != nil {
		s.log.Debug("write response", "err", err)
	}
}

// hangUp closes the connection without a response, as a probe losing its link does.
func (s *Server) hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot hijack: abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	if err := conn.Close(); err != nil {
		s.log.Debug("hang up", "err", err)
	}
}

// writeOversized sends a syntactically valid reading padded to oversizedBytes.
func (s *Server) writeOversized(w http.ResponseWriter, value float64, unit string) {
	head := []byte(`{"value":` + strconv.FormatFloat(value, 'f', -1, 64) + `,"unit":` + strconv.Quote(unit) + `,"log":"`)
	tail := []byte(`"}`)
	pad := oversizedBytes - len(head) - len(tail)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(oversizedBytes))
	body := io.MultiReader(bytes.NewReader(head), io.LimitReader(repeat('x'), int64(pad)), bytes.NewReader(tail))
	if _, err := io.Copy(w, body); err != nil {
		s.log.Debug("write oversized response", "err", err)
	}
}

// repeat is an endless reader of one byte.
type repeat byte

func (r repeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

package coapsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"
	"golang.org/x/time/rate"

	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/firmware-sim/internal/probepayload"
	"github.com/purehealth/purehealth/internal/periodic"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Fault is how the simulated probe misbehaves: a device fault (see device.Faults) or
// FaultError.
type Fault string

// FaultError answers a share of requests and notifications (Config.FaultRate) with 5.00
// Internal Server Error: firmware that fails to read its sensor.
const FaultError Fault = "error"

// Faults lists the faults ParseFault accepts: the device faults, then FaultError.
func Faults() []Fault {
	var out []Fault
	for _, f := range device.Faults() {
		out = append(out, Fault(f))
	}
	return append(out, FaultError)
}

// ParseFault resolves a fault name; "" is no fault, "5.00" is FaultError.
func ParseFault(s string) (Fault, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "5.00" {
		return FaultError, nil
	}
	if f, err := device.ParseFault(s); err == nil {
		return Fault(f), nil
	}
	if Fault(s) == FaultError {
		return FaultError, nil
	}
	names := make([]string, 0, len(Faults()))
	for _, f := range Faults() {
		names = append(names, string(f))
	}
	return "", &ValueError{What: "fault", Value: s, Want: strings.Join(names, ", ")}
}

// Config is what to simulate. Params is required; zero values take the documented defaults.
type Config struct {
	// Station selects the river model (device.ForStation); default MH-PUNE-001.
	Station string
	// Seed selects the simulated river and probes.
	Seed int64
	// Params lists the parameters; each is served at /<param>.
	Params []telemetry.Param
	// Interval is the notification period of observed resources. Default 5s.
	Interval time.Duration
	// Format is the representation; default FormatJSON.
	Format Format
	// Fault makes every probe misbehave (none if empty).
	Fault Fault
	// FaultRate is the share of responses FaultError replaces, in (0, 1]. Default 1/3.
	FaultRate float64
	// Now is the clock of the readings; default time.Now.
	Now func() time.Time
	// Origin is when a probe fault sets in (a drift starts, a stuck value freezes); before
	// it the probe is healthy. Zero means when the simulator is created.
	Origin time.Time
	// Plumes are discharges upstream that the river carries past the station.
	Plumes []device.Plume
	// AckTimeout is how long a confirmable notification waits for its acknowledgement
	// (retransmitting) before the observer counts as gone. Default max(10s, 2×Interval).
	AckTimeout time.Duration
	// PeerIdle is how long a peer may send nothing (not even an acknowledgement) before
	// it is forgotten with its observations. Default max(30s, 3×Interval+AckTimeout).
	PeerIdle time.Duration
	// MaxPeers and MaxObservers bound the state kept for clients (default 256 and 1024);
	// PeerRate is the requests per second one peer may send before the rest are dropped
	// (default 50).
	MaxPeers, MaxObservers int
	PeerRate               float64
}

// Bounds on what a peer can make the server hold.
const (
	maxMessageSize = 2048 // bytes in one datagram
	minInactivity  = 30 * time.Second
	periodicTick   = 500 * time.Millisecond
	minAckTimeout  = 10 * time.Second
)

// Stats are the server's counters since Serve started.
type Stats struct {
	Requests        uint64 // requests handled
	Registrations   uint64 // observations registered
	Deregistrations uint64 // observations ended by the client (Observe 1)
	Notifications   uint64 // notifications acknowledged by the client
	ServerErrors    uint64 // 5.00 responses and notifications sent
	Dropped         uint64 // requests over a peer's rate, and observations over MaxObservers
	PeersRefused    uint64 // new peers over MaxPeers
	Observers       int    // observations now
}

// Server serves the simulated probes. Create it with New.
type Server struct {
	cfg      Config
	log      *slog.Logger
	probes   map[string]*device.Probe // by resource path, "/do"
	unit     map[string]string
	maxAge   uint32
	linkBody []byte // /.well-known/core

	requests, registrations, deregistrations, notifications atomic.Uint64
	serverErrors, dropped, peersRefused                     atomic.Uint64

	mu        sync.Mutex
	closed    bool
	observers map[obsKey]*observer
	peers     map[*client.Conn]*rate.Limiter
	wg        sync.WaitGroup // observer goroutines
}

type obsKey struct {
	cc    *client.Conn
	token string
}

type observer struct {
	key   obsKey
	path  string
	stop  chan struct{}
	once  sync.Once
	seq   uint32 // owned by the observer's goroutine after registration
	ended bool   // guarded by Server.mu: removed from the registry
}

// New checks cfg and returns a server. It starts nothing. log may be nil.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Station == "" {
		cfg.Station = "MH-PUNE-001"
	}
	if cfg.Interval == 0 {
		cfg.Interval = 5 * time.Second
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
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = max(minAckTimeout, 2*cfg.Interval)
	}
	if cfg.PeerIdle == 0 {
		cfg.PeerIdle = max(minInactivity, 3*cfg.Interval+cfg.AckTimeout)
	}
	if cfg.MaxPeers == 0 {
		cfg.MaxPeers = 256
	}
	if cfg.MaxObservers == 0 {
		cfg.MaxObservers = 1024
	}
	if cfg.PeerRate == 0 {
		cfg.PeerRate = 50
	}
	var problems []error
	if len(cfg.Params) == 0 {
		problems = append(problems, errors.New("params: at least one is required"))
	}
	if cfg.Interval < 10*time.Millisecond {
		problems = append(problems, fmt.Errorf("interval %s: must be at least 10ms", cfg.Interval))
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
	if cfg.AckTimeout < 0 {
		problems = append(problems, fmt.Errorf("ack timeout %s: must not be negative", cfg.AckTimeout))
	}
	if cfg.PeerIdle <= cfg.Interval {
		problems = append(problems, fmt.Errorf("peer idle %s: must be longer than the interval %s", cfg.PeerIdle, cfg.Interval))
	}
	if cfg.MaxPeers < 1 || cfg.MaxObservers < 1 || !(cfg.PeerRate > 0) {
		problems = append(problems, errors.New("max peers, max observers and peer rate must be positive"))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}

	model := device.New(device.ForStation(cfg.Station), cfg.Seed).WithPlumes(cfg.Plumes...)
	devFault := device.FaultNone
	if cfg.Fault != FaultError {
		devFault = device.Fault(cfg.Fault)
	}
	origin := cfg.Now()
	if !cfg.Origin.IsZero() {
		origin = cfg.Origin
	}
	s := &Server{
		cfg: cfg, log: log,
		probes:    map[string]*device.Probe{},
		unit:      map[string]string{},
		maxAge:    uint32(math.Ceil(cfg.Interval.Seconds())),
		observers: map[obsKey]*observer{},
		peers:     map[*client.Conn]*rate.Limiter{},
	}
	var links []string
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
		links = append(links, fmt.Sprintf(`<%s>;rt="purehealth.%s";obs;ct=%d`, path, p, s.contentFormat()))
	}
	s.linkBody = []byte(strings.Join(links, ","))
	return s, nil
}

// URLs lists the resource URLs of a server listening on addr, in Params order.
func (s *Server) URLs(addr net.Addr) []string {
	out := make([]string, 0, len(s.cfg.Params))
	for _, p := range s.cfg.Params {
		out = append(out, "coap://"+addr.String()+"/"+string(p))
	}
	return out
}

// Stats returns the counters. Safe for concurrent use.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.observers)
	s.mu.Unlock()
	return Stats{
		Requests: s.requests.Load(), Registrations: s.registrations.Load(),
		Deregistrations: s.deregistrations.Load(), Notifications: s.notifications.Load(),
		ServerErrors: s.serverErrors.Load(), Dropped: s.dropped.Load(),
		PeersRefused: s.peersRefused.Load(), Observers: n,
	}
}

// Serve answers CoAP requests on conn until ctx ends. It closes conn and returns after
// every goroutine it started (the library's and the observers') has stopped; nil when ctx
// ended, the error otherwise. Call it once.
func (s *Server) Serve(ctx context.Context, conn *net.UDPConn) error {
	tick := periodic.New(periodicTick)
	srv := udp.NewServer(
		options.WithHandlerFunc(s.handle),
		options.WithMaxMessageSize(maxMessageSize),
		options.WithInactivityMonitor(s.cfg.PeerIdle, func(cc *client.Conn) {
			if err := cc.Close(); err != nil {
				s.log.Debug("close inactive peer", "err", err)
			}
		}),
		options.WithRequestMonitor(s.requestMonitor),
		options.WithOnNewConn(s.onNewConn),
		options.WithPeriodicRunner(tick.Run),
		options.WithErrors(func(err error) { s.log.Debug("coap library", "err", err) }),
	)
	var stopper sync.WaitGroup
	served := make(chan struct{})
	stopper.Go(func() {
		select {
		case <-ctx.Done():
		case <-served:
		}
		srv.Stop()
	})
	err := srv.Serve(coapnet.NewUDPConn("udp", conn))
	close(served)
	stopper.Wait()
	if cerr := conn.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
		err = cerr
	}

	s.mu.Lock()
	s.closed = true
	for _, o := range s.observers {
		o.once.Do(func() { close(o.stop) })
	}
	s.mu.Unlock()
	s.wg.Wait()
	tick.Close()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// onNewConn admits a new peer, within MaxPeers.
func (s *Server) onNewConn(cc *client.Conn) {
	s.mu.Lock()
	full := len(s.peers) >= s.cfg.MaxPeers
	if !full {
		s.peers[cc] = rate.NewLimiter(rate.Limit(s.cfg.PeerRate), max(1, int(s.cfg.PeerRate)))
	}
	s.mu.Unlock()
	if full {
		s.peersRefused.Add(1)
		if err := cc.Close(); err != nil {
			s.log.Debug("refuse peer", "err", err)
		}
		return
	}
	cc.AddOnClose(func() {
		s.mu.Lock()
		delete(s.peers, cc)
		s.mu.Unlock()
	})
}

// requestMonitor drops requests over the peer's rate before the library handles them.
func (s *Server) requestMonitor(cc *client.Conn, m *pool.Message) (bool, error) {
	if c := m.Code(); c < codes.GET || c >= codes.Created {
		return false, nil // acknowledgements, resets, pings: never limited
	}
	s.mu.Lock()
	lim := s.peers[cc]
	s.mu.Unlock()
	if lim == nil || !lim.Allow() {
		s.dropped.Add(1)
		return true, nil
	}
	return false, nil
}

func (s *Server) contentFormat() message.MediaType {
	if s.cfg.Format == FormatText {
		return message.TextPlain
	}
	return message.AppJSON
}

// outcome is what the probe answers at one instant.
type outcome struct {
	body    []byte
	silent  bool // a dropout: no answer at all
	failure bool // FaultError: 5.00
}

func (s *Server) read(path string, now time.Time) outcome {
	sm := s.probes[path].Read(now)
	if s.cfg.Fault == FaultError && float64(sm.Nonce>>11)/(1<<53) < s.cfg.FaultRate {
		return outcome{failure: true, body: []byte("simulated sensor failure")}
	}
	switch {
	case !sm.OK:
		return outcome{silent: true}
	case sm.Garbage:
		return outcome{body: probepayload.EncodeGarbage(s.cfg.Format, sm.Value, s.unit[path], now, sm.Nonce)}
	}
	return outcome{body: probepayload.Encode(s.cfg.Format, sm.Value, s.unit[path], now)}
}

// handle answers one request. It runs on the library's goroutine of the peer.
func (s *Server) handle(w *responsewriter.ResponseWriter[*client.Conn], r *pool.Message) {
	s.requests.Add(1)
	path, err := r.Options().Path()
	if err != nil {
		path = "/"
	}
	if path == "/.well-known/core" && r.Code() == codes.GET {
		s.respond(w, codes.Content, message.AppLinkFormat, s.linkBody)
		return
	}
	if _, ok := s.probes[path]; !ok {
		names := make([]string, 0, len(s.cfg.Params))
		for _, p := range s.cfg.Params {
			names = append(names, "/"+string(p))
		}
		s.respond(w, codes.NotFound, message.TextPlain, []byte("no such resource; serving "+strings.Join(names, ", ")))
		return
	}
	if r.Code() != codes.GET {
		s.respond(w, codes.MethodNotAllowed, message.TextPlain, []byte("GET only"))
		return
	}
	key := obsKey{cc: w.Conn(), token: string(r.Token())}
	obs, obsErr := r.Options().Observe()
	register := obsErr == nil && obs == 0 && len(key.token) > 0
	if obsErr == nil && obs == 1 {
		if s.deregister(key) {
			s.deregistrations.Add(1)
		}
	}

	out := s.read(path, s.cfg.Now())
	switch {
	case out.silent:
		return // the library acknowledges a confirmable request; the answer never comes
	case out.failure:
		s.deregister(key)
		s.serverErrors.Add(1)
		s.respond(w, codes.InternalServerError, message.TextPlain, out.body)
		return
	}
	s.respond(w, codes.Content, s.contentFormat(), out.body)
	w.Message().SetOptionUint32(message.MaxAge, s.maxAge)
	if register && s.register(key, path) {
		w.Message().SetObserve(firstSeq)
	}
}

func (s *Server) respond(w *responsewriter.ResponseWriter[*client.Conn], code codes.Code, cf message.MediaType, body []byte) {
	if err := w.SetResponse(code, cf, bytes.NewReader(body)); err != nil {
		s.log.Debug("set response", "err", err)
	}
}

// firstSeq is the Observe value of a registration's response; notifications count on.
const firstSeq = 1

// register adds an observation, replacing one with the same token from the same peer, and
// starts its goroutine. It returns false when the server is full or closing: the response
// then goes without the Observe option, which tells the client it is not observing.
func (s *Server) register(key obsKey, path string) bool {
	o := &observer{key: key, path: path, stop: make(chan struct{}), seq: firstSeq}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.observers[key]; old != nil {
		s.endLocked(old)
	}
	if s.closed || len(s.observers) >= s.cfg.MaxObservers {
		s.dropped.Add(1)
		return false
	}
	s.observers[key] = o
	s.registrations.Add(1)
	s.log.Debug("observer registered", "peer", key.cc.RemoteAddr(), "path", path)
	s.wg.Go(func() { s.notify(o) })
	return true
}

// deregister ends the observation under key, if any, and reports whether there was one.
func (s *Server) deregister(key obsKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.observers[key]
	if o == nil {
		return false
	}
	s.endLocked(o)
	return true
}

func (s *Server) endLocked(o *observer) {
	if s.observers[o.key] == o {
		delete(s.observers, o.key)
	}
	o.ended = true
	o.once.Do(func() { close(o.stop) })
}

// notify sends o its notifications until it ends. It owns o.seq.
func (s *Server) notify(o *observer) {
	defer func() {
		s.mu.Lock()
		if !o.ended {
			s.endLocked(o)
		}
		s.mu.Unlock()
		s.log.Debug("observer ended", "peer", o.key.cc.RemoteAddr(), "path", o.path)
	}()
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-o.key.cc.Context().Done():
			return
		case <-t.C:
		}
		out := s.read(o.path, s.cfg.Now())
		if out.silent {
			continue
		}
		o.seq = (o.seq + 1) & 0xffffff // the Observe option holds 24 bits
		if err := s.send(o, out); err != nil {
			s.log.Debug("observer gone", "peer", o.key.cc.RemoteAddr(), "err", err)
			return
		}
		if out.failure {
			return // a 5.00 notification ends the observation
		}
		s.notifications.Add(1)
	}
}

// send writes one confirmable notification and waits for its acknowledgement.
func (s *Server) send(o *observer, out outcome) error {
	ctx, cancel := context.WithTimeout(o.key.cc.Context(), s.cfg.AckTimeout)
	defer cancel()
	m := o.key.cc.AcquireMessage(ctx)
	defer o.key.cc.ReleaseMessage(m)
	m.SetToken([]byte(o.key.token))
	m.SetType(message.Confirmable)
	if out.failure {
		s.serverErrors.Add(1)
		m.SetCode(codes.InternalServerError)
		m.SetContentFormat(message.TextPlain)
	} else {
		m.SetCode(codes.Content)
		m.SetObserve(o.seq)
		m.SetOptionUint32(message.MaxAge, s.maxAge)
		m.SetContentFormat(s.contentFormat())
	}
	m.SetBody(bytes.NewReader(out.body))
	return o.key.cc.WriteMessage(m)
}

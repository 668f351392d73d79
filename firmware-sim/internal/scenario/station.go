package scenario

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/purehealth/purehealth/firmware-sim/internal/coapsim"
	"github.com/purehealth/purehealth/firmware-sim/internal/ezo"
	"github.com/purehealth/purehealth/firmware-sim/internal/httpsim"
	"github.com/purehealth/purehealth/firmware-sim/internal/mqttsim"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Endpoint is where a simulated probe can be reached: what a station agent's
// configuration names.
type Endpoint struct {
	Probe  string
	Kind   Kind
	Params []telemetry.Param
	// Address is the pseudo-terminal of a serial probe (/dev/pts/N), the URL of one
	// resource of a CoAP or HTTP probe, or mqtt://host:port, the broker an MQTT probe
	// publishes to.
	Address string
	// Link is the symlink a serial probe keeps pointing at Address, if any.
	Link string
}

// String is the endpoint as `ph-sim station` prints it: the probe, its kind, its
// parameters (comma-separated) and where to reach it — for a serial probe with a link,
// the link, then "->" and the pseudo-terminal:
//
//	ph-1 serial ph ./tmp/demo/tty-ph -> /dev/pts/5
//	sonde-1 coap do coap://127.0.0.1:15683/do
//	lab-1 mqtt bod,fc mqtt://127.0.0.1:18834
func (e Endpoint) String() string {
	params := make([]string, len(e.Params))
	for i, p := range e.Params {
		params[i] = string(p)
	}
	s := e.Probe + " " + string(e.Kind) + " " + strings.Join(params, ",") + " "
	if e.Link != "" {
		return s + e.Link + " -> " + e.Address
	}
	return s + e.Address
}

// Options are what a Station needs besides its scenario. The zero value discards the log
// and the endpoints.
type Options struct {
	// OnEndpoint is told of each endpoint once it can be reached: the resources of CoAP
	// and HTTP probes once every listener is bound, MQTT probes just before they connect
	// (each in scenario order, before any probe serves), and a serial probe each time it
	// appears on a new pseudo-terminal (after an unplug too). Calls never overlap. An
	// error stops the station with that error.
	OnEndpoint func(Endpoint) error
	Logger     *slog.Logger
	// Start is when the station starts, for the scenario's relative times (plume starts,
	// fault_at durations). Zero means when NewStation is called.
	Start time.Time
}

// Station runs the probes of one scenario. Create it with NewStation; Run it once.
type Station struct {
	sc    *Scenario
	log   *slog.Logger
	units []*unit
	ran   atomic.Bool

	announceMu sync.Mutex
	onEndpoint func(Endpoint) error
}

// unit is one probe's simulator, as Run drives it.
type unit struct {
	probe *Probe
	// bind acquires what the probe serves on (a socket, a link's directory); release
	// gives it back when Run stops before serve could.
	bind    func() error
	release func()
	// endpoints are announced after every bind succeeded; serial probes announce their
	// own, as they attach.
	endpoints func() []Endpoint
	// serve runs until ctx ends, releasing what bind acquired.
	serve func(ctx context.Context) error
}

// wrap names the probe (and its line) in err.
func (u *unit) wrap(err error) error {
	if err == nil {
		return nil
	}
	if u.probe.Line > 0 {
		return fmt.Errorf("probe %q (%s, line %d): %w", u.probe.Name, u.probe.Kind, u.probe.Line, err)
	}
	return fmt.Errorf("probe %q (%s): %w", u.probe.Name, u.probe.Kind, err)
}

// NewStation validates sc and builds every probe's simulator. It starts nothing, opens
// nothing and binds nothing. sc must not change afterwards.
func NewStation(sc *Scenario, opts Options) (*Station, error) {
	plans, err := sc.plans()
	if err != nil {
		return nil, err
	}
	start := opts.Start
	if start.IsZero() {
		start = time.Now()
	}
	plumes := sc.plumes(start)
	for i := range plans {
		pl := &plans[i]
		origin := pl.probe.FaultAt.Resolve(start) // zero: the simulator's own start
		pl.serial.Origin, pl.serial.Plumes = origin, plumes
		pl.coap.Origin, pl.coap.Plumes = origin, plumes
		pl.http.Origin, pl.http.Plumes = origin, plumes
		pl.mqtt.Origin, pl.mqtt.Plumes = origin, plumes
	}
	s := &Station{sc: sc, log: opts.Logger, onEndpoint: opts.OnEndpoint}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.onEndpoint == nil {
		s.onEndpoint = func(Endpoint) error { return nil }
	}
	for _, pl := range plans {
		u := &unit{probe: pl.probe, bind: func() error { return nil }, release: func() {},
			endpoints: func() []Endpoint { return nil }}
		log := s.log.With("probe", pl.probe.Name, "kind", string(pl.probe.Kind))
		var err error
		switch pl.probe.Kind {
		case KindSerial:
			err = s.serialUnit(u, pl, log)
		case KindCoAP:
			err = coapUnit(u, pl, log)
		case KindHTTP:
			err = httpUnit(u, pl, log)
		case KindMQTT:
			err = mqttUnit(u, pl, log)
		}
		if err != nil {
			return nil, u.wrap(err)
		}
		s.units = append(s.units, u)
	}
	return s, nil
}

// announce passes e on, one call at a time.
func (s *Station) announce(e Endpoint) error {
	s.announceMu.Lock()
	defer s.announceMu.Unlock()
	return s.onEndpoint(e)
}

// Run binds every probe's listener — stopping, with nothing served, at the first that
// fails — announces the endpoints and serves every probe until ctx ends. A probe that
// fails stops the others, and Run returns its error, naming it. Run returns after every
// goroutine it started has stopped; the end of ctx is not an error. Call it once.
func (s *Station) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("station: Run called twice")
	}
	for i, u := range s.units {
		if err := u.bind(); err != nil {
			for _, v := range s.units[:i] {
				v.release()
			}
			return u.wrap(err)
		}
	}
	for _, u := range s.units {
		for _, e := range u.endpoints() {
			if err := s.announce(e); err != nil {
				for _, v := range s.units {
					v.release()
				}
				return fmt.Errorf("announce %s: %w", e.Probe, err)
			}
		}
	}
	s.log.Info("station running", "station", s.sc.Station, "probes", len(s.units), "seed", s.sc.Seed,
		"speed", s.sc.speed())
	g, gctx := errgroup.WithContext(ctx)
	for _, u := range s.units {
		g.Go(func() error { return u.wrap(u.serve(gctx)) })
	}
	return g.Wait()
}

func (s *Station) serialUnit(u *unit, pl plan, log *slog.Logger) error {
	dev, err := ezo.NewDevice(pl.serial)
	if err != nil {
		return err
	}
	opts := pl.serialOpts
	opts.Logger = log
	opts.OnAttach = func(path string) error {
		return s.announce(Endpoint{Probe: pl.probe.Name, Kind: KindSerial, Params: pl.params,
			Address: path, Link: opts.Link})
	}
	em, err := ezo.New(dev, opts)
	if err != nil {
		return err
	}
	if opts.Link != "" {
		u.bind = func() error {
			if err := os.MkdirAll(filepath.Dir(opts.Link), 0o755); err != nil {
				return fmt.Errorf("link: %w", err)
			}
			return nil
		}
	}
	u.serve = em.Run
	return nil
}

func coapUnit(u *unit, pl plan, log *slog.Logger) error {
	srv, err := coapsim.New(pl.coap, log)
	if err != nil {
		return err
	}
	var conn *net.UDPConn
	u.bind = func() error {
		addr, err := net.ResolveUDPAddr("udp", pl.listen)
		if err != nil {
			return fmt.Errorf("listen %s: %w", pl.listen, err)
		}
		conn, err = net.ListenUDP("udp", addr)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		return nil
	}
	u.release = func() { closeQuietly(conn, log) }
	u.endpoints = func() []Endpoint { return resourceEndpoints(pl, KindCoAP, srv.URLs(conn.LocalAddr())) }
	u.serve = func(ctx context.Context) error { return srv.Serve(ctx, conn) }
	return nil
}

func httpUnit(u *unit, pl plan, log *slog.Logger) error {
	srv, err := httpsim.New(pl.http, log)
	if err != nil {
		return err
	}
	var l net.Listener
	u.bind = func() error {
		var err error
		l, err = net.Listen("tcp", pl.listen)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		return nil
	}
	u.release = func() { closeQuietly(l, log) }
	u.endpoints = func() []Endpoint { return resourceEndpoints(pl, KindHTTP, srv.URLs(l.Addr())) }
	u.serve = func(ctx context.Context) error { return srv.Serve(ctx, l) }
	return nil
}

// resourceEndpoints pairs a network probe's parameters with its resource URLs (both in
// Params order).
func resourceEndpoints(pl plan, kind Kind, urls []string) []Endpoint {
	out := make([]Endpoint, 0, len(urls))
	for i, u := range urls {
		out = append(out, Endpoint{Probe: pl.probe.Name, Kind: kind, Params: pl.params[i : i+1], Address: u})
	}
	return out
}

func closeQuietly(c interface{ Close() error }, log *slog.Logger) {
	if c == nil {
		return
	}
	if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		log.Warn("close listener", "err", err)
	}
}

// mqttRetry bounds the wait between attempts to reach a broker that is not there yet.
const (
	mqttRetryMin = time.Second
	mqttRetryMax = 30 * time.Second
)

func mqttUnit(u *unit, pl plan, log *slog.Logger) error {
	pub, err := mqttsim.New(pl.mqtt, log)
	if err != nil {
		return err
	}
	u.endpoints = func() []Endpoint {
		return []Endpoint{{Probe: pl.probe.Name, Kind: KindMQTT, Params: pl.params, Address: "mqtt://" + pub.Addr()}}
	}
	u.serve = func(ctx context.Context) error {
		wait := mqttRetryMin
		for {
			report, err := pub.Run(ctx)
			var ce *mqttsim.ConnectError
			if !errors.As(err, &ce) {
				if err == nil {
					log.Info("mqtt probe stopped", "report", report.String())
				}
				return err
			}
			// A field device keeps trying: the agent's broker may come up after us.
			log.Warn("broker not reachable; trying again", "err", err, "in", wait)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			wait = min(2*wait, mqttRetryMax)
		}
	}
	return nil
}

package coapprobe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/purehealth/purehealth/agent/internal/probestatus"
	"github.com/purehealth/purehealth/internal/backoff"
	"github.com/purehealth/purehealth/internal/periodic"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// The error kinds the probe records through Health.
const (
	KindTimeout = "timeout"  // no response, or no answer to a registration, in time
	KindBadCode = "bad_code" // a 4.xx or 5.xx response
	KindDecode  = "decode"   // a payload that is not a reading
	KindConnect = "connect"  // the connection could not be made, or the library dropped it
)

// Config describes one CoAP probe. Name, Param and URL are required.
type Config struct {
	Station string // station id put on every observation ("" = the agent's own)
	Name    string // the sensor name: the probe's name in the configuration
	Param   telemetry.Param
	// URL is the resource, coap://host[:port]/path[?query]; the port defaults to 5683.
	URL string
	// Interval is the poll period, and when observing the expected notification period.
	// Default 60s.
	Interval time.Duration
	// Timeout bounds each request and each observe registration. Default min(Interval, 10s).
	Timeout time.Duration
	// Observe subscribes to the resource (RFC 7641) instead of polling it.
	Observe bool
	// Location is the station's time zone, for payload timestamps without an offset.
	// nil means UTC.
	Location *time.Location
}

// Limits and pacing. The backoff applies between connections; polls inside a working
// connection keep the configured interval.
const (
	DefaultInterval = 60 * time.Second
	maxTimeout      = 10 * time.Second
	maxMessageSize  = 16 << 10 // bytes, after blockwise reassembly
	noteQueue       = 16       // notifications waiting for the Run goroutine
	maxFailures     = 3        // transport failures in a row before a new connection
	periodicTick    = time.Second
	backoffBase     = 500 * time.Millisecond // between connections, and polls that failed
	backoffMax      = 30 * time.Second
	minSlack        = 2 * time.Second
	cancelTimeout   = 500 * time.Millisecond
	payloadShown    = 256 // bytes of payload an Exchange carries
)

// ErrDTLS refuses a coaps:// URL.
var ErrDTLS = errors.New("coaps (CoAP over DTLS) is not supported")

// Probe reads one CoAP resource. Create it with New.
type Probe struct {
	cfg     Config
	target  string           // host:port
	path    string           // resource path
	queries []message.Option // Uri-Query options
	rec     *probestatus.Recorder
	log     *slog.Logger

	running  atomic.Bool
	sessions atomic.Uint64 // connection generations, to tell late notifications apart

	mu     sync.Mutex
	status Status // all but its Counts, which rec keeps
}

// Status is a snapshot of a probe's health.
type Status struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Mode is "observe" or "poll"; "poll" also while observing was asked for but the server
	// answered without the Observe option.
	Mode          string `json:"mode"`
	Connected     bool   `json:"connected"`       // a connection is up (observing: registered)
	Local         string `json:"local,omitempty"` // local UDP address of the connection
	Notifications uint64 `json:"notifications"`   // responses and notifications received
	// Dropped counts notifications over the queue, and messages from the server that were
	// requests or carried a token the probe never issued.
	Dropped uint64 `json:"dropped"`
	// Readings, errors by kind, reconnects (new connections and re-registrations after
	// the first), the last error.
	probestatus.Counts
}

// New checks cfg and returns a probe. It starts nothing. log may be nil.
func New(cfg Config, sink probestatus.Sink, health probestatus.Health, log *slog.Logger) (*Probe, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	problems := probestatus.Check(cfg.Name, cfg.Param, sink, health)
	if cfg.Interval < 0 || cfg.Timeout < 0 {
		problems = append(problems, errors.New("interval and timeout must not be negative"))
	}
	target, path, queries, err := parseURL(cfg.URL)
	if err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("coap probe %q: %w", cfg.Name, errors.Join(problems...))
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = min(cfg.Interval, maxTimeout)
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	mode := "poll"
	if cfg.Observe {
		mode = "observe"
	}
	log = log.With("probe", cfg.Name, "url", cfg.URL)
	return &Probe{
		cfg: cfg, target: target, path: path, queries: queries, log: log,
		rec:    probestatus.New(cfg.Name, cfg.Param, sink, health, log),
		status: Status{Name: cfg.Name, URL: cfg.URL, Mode: mode},
	}, nil
}

// parseURL splits coap://host[:port]/path?query into the dial target, the path and the
// Uri-Query options.
func parseURL(raw string) (target, path string, queries []message.Option, err error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", "", nil, fmt.Errorf("url: %w", err)
	case u.Scheme == "coaps":
		return "", "", nil, fmt.Errorf("url %q: %w", raw, ErrDTLS)
	case u.Scheme != "coap" || u.Hostname() == "":
		return "", "", nil, fmt.Errorf("url %q: want coap://host[:port]/path", raw)
	}
	port := u.Port()
	if port == "" {
		port = "5683"
	}
	path = u.Path
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" {
		for q := range strings.SplitSeq(u.RawQuery, "&") {
			v, err := url.QueryUnescape(q)
			if err != nil {
				return "", "", nil, fmt.Errorf("url %q: query: %w", raw, err)
			}
			queries = append(queries, message.Option{ID: message.URIQuery, Value: []byte(v)})
		}
	}
	return net.JoinHostPort(u.Hostname(), port), path, queries, nil
}

// Status returns a snapshot. Safe for concurrent use.
func (p *Probe) Status() Status {
	p.mu.Lock()
	s := p.status
	p.mu.Unlock()
	s.Counts = p.rec.Counts()
	return s
}

// Run reads the probe until ctx ends, then returns nil after every goroutine it started
// has stopped. It returns an error only when called while another Run of the same probe is
// running.
func (p *Probe) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return fmt.Errorf("coap probe %q: already running", p.cfg.Name)
	}
	defer p.running.Store(false)

	// Notifications arrive on the library's goroutines; they are handled here, in order.
	notes := make(chan note, noteQueue)
	bo := backoff.New(backoffBase, backoffMax, backoff.Equal)
	for first := true; ; first = false {
		if !first {
			p.rec.Reconnected()
		}
		if p.session(ctx, notes) {
			bo.Reset()
		}
		if ctx.Err() != nil || !p.wait(ctx, notes, bo.Next()) {
			return nil
		}
	}
}

// session lives as long as one connection. It reports whether the server answered with
// success at least once, which resets the backoff.
func (p *Probe) session(ctx context.Context, notes chan note) bool {
	id := p.sessions.Add(1)
	conn, closeConn, err := p.dial(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.rec.Fail(KindConnect, err)
		}
		return false
	}
	defer closeConn()
	p.setConnected(conn.LocalAddr().String(), !p.cfg.Observe)
	defer p.setConnected("", false)

	if p.cfg.Observe {
		answered, unsupported := p.observe(ctx, conn, notes, id)
		if !unsupported {
			return answered
		}
		p.log.Warn("the server does not support Observe; polling instead")
		p.setMode("poll")
		defer p.setMode("observe") // the next connection tries again
		p.setConnected(conn.LocalAddr().String(), true)
		return p.poll(ctx, conn, notes, id) || answered
	}
	return p.poll(ctx, conn, notes, id)
}

// dial opens a connection with bounded memory: a size limit per message, an inactivity
// monitor that closes a connection nothing arrives on, and screen in front of the
// library. The returned function closes it and waits for the library's goroutines. The
// connection does not follow ctx (its owner closes it), so that the end of ctx is never
// mistaken for a dropped connection.
func (p *Probe) dial(ctx context.Context) (*client.Conn, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	tick := periodic.New(periodicTick)
	inactive := max(4*p.cfg.Interval, 2*time.Minute) + p.cfg.Timeout
	var issued tokens
	conn, err := udp.Dial(p.target,
		options.WithDialer(&net.Dialer{Timeout: p.cfg.Timeout}),
		options.WithMaxMessageSize(maxMessageSize),
		options.WithInactivityMonitor(inactive, func(cc *client.Conn) {
			p.log.Debug("nothing received for a while; closing the connection", "after", inactive)
			p.closeConn(cc)
		}),
		options.WithGetToken(issued.issue),
		options.WithRequestMonitor(func(_ *client.Conn, m *pool.Message) (bool, error) {
			return p.screen(&issued, m), nil
		}),
		options.WithPeriodicRunner(tick.Run),
		options.WithErrors(func(err error) { p.log.Debug("coap library", "err", err) }),
	)
	if err != nil {
		tick.Close()
		return nil, nil, fmt.Errorf("dial %s: %w", p.target, err)
	}
	return conn, func() {
		p.closeConn(conn)
		<-conn.Done()
		tick.Close()
	}, nil
}

func (p *Probe) closeConn(cc *client.Conn) {
	if err := cc.Close(); err != nil {
		p.log.Debug("close connection", "err", err)
	}
}

// screen sees every message from the server before the library handles it, and reports
// whether to drop it. A probe serves nothing, so requests are dropped; so are confirmable
// and non-confirmable messages with a token the probe did not issue, which the library
// would otherwise acknowledge and remember for the exchange lifetime (247 s) each.
// Acknowledgements, resets and pings pass.
func (p *Probe) screen(issued *tokens, m *pool.Message) bool {
	switch m.Type() {
	case message.Confirmable, message.NonConfirmable:
	default:
		return false
	}
	c := m.Code()
	if c == codes.Empty || c >= codes.Created && issued.known(m.Token()) {
		return false
	}
	p.count(func(s *Status) { s.Dropped++ })
	return true
}

// poll GETs the resource every interval until ctx ends or the connection fails. After a
// poll that brought no reading the next waits longer (the same backoff as between
// connections); after maxFailures
// polls in a row without any response the connection is given up.
func (p *Probe) poll(ctx context.Context, conn *client.Conn, notes chan note, id uint64) bool {
	t := time.NewTimer(0)
	defer t.Stop()
	answered := false
	silent := 0
	pace := backoff.New(backoffBase, backoffMax, backoff.Equal) // after polls that brought no reading
	for {
		select {
		case <-ctx.Done():
			return answered
		case <-conn.Context().Done():
			if ctx.Err() == nil {
				p.rec.Fail(KindConnect, errors.New("connection closed"))
			}
			return answered
		case n := <-notes: // from an earlier observation
			p.handle(ctx, n)
			continue
		case <-t.C:
		}
		next := time.Now().Add(p.cfg.Interval)
		n, err := p.get(ctx, conn)
		read := false
		switch {
		case ctx.Err() != nil:
			return answered
		case err != nil:
			p.rec.Fail(p.transportKind(conn, err), err)
			if silent++; silent >= maxFailures || conn.Context().Err() != nil {
				return answered
			}
		default:
			silent = 0
			n.session = id
			answered = answered || n.success()
			read = p.handle(ctx, n)
		}
		if read {
			pace.Reset()
		} else if later := time.Now().Add(pace.Next()); later.After(next) {
			next = later
		}
		t.Reset(time.Until(next))
	}
}

// get performs one GET with the probe's timeout.
func (p *Probe) get(ctx context.Context, conn *client.Conn) (note, error) {
	rctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	resp, err := conn.Get(rctx, p.path, p.queries...)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return note{}, fmt.Errorf("GET %s: no response within %s", p.path, p.cfg.Timeout)
		}
		return note{}, fmt.Errorf("GET %s: %w", p.path, err)
	}
	defer conn.ReleaseMessage(resp)
	return noteFrom(resp, 0), nil
}

// transportKind classifies an error of a request that got no response.
func (p *Probe) transportKind(conn *client.Conn, err error) string {
	var op *net.OpError
	if conn.Context().Err() != nil || errors.As(err, &op) {
		return KindConnect
	}
	return KindTimeout
}

// observe registers an observation and handles notifications until ctx ends, the
// connection fails, the observation ends, or the watchdog sees notifications stop. It
// reports whether the server answered with success, and whether it declined to be
// observed (answering without the Observe option).
func (p *Probe) observe(ctx context.Context, conn *client.Conn, notes chan note, id uint64) (answered, unsupported bool) {
	rctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	obs, err := conn.Observe(rctx, p.path, func(m *pool.Message) {
		select {
		case notes <- noteFrom(m, id):
		default:
			p.count(func(s *Status) { s.Dropped++ })
		}
	}, p.queries...)
	cancel()
	if err != nil {
		var op *net.OpError
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, context.DeadlineExceeded):
			p.rec.Fail(KindTimeout, fmt.Errorf("observe %s: no answer to the registration within %s", p.path, p.cfg.Timeout))
		case conn.Context().Err() != nil || errors.As(err, &op):
			p.rec.Fail(KindConnect, fmt.Errorf("observe %s: %w", p.path, err))
		default:
			// The server answered with an error code: its response reaches the callback
			// too, and is counted when handled.
			p.log.Debug("observe registration refused", "err", err)
		}
		return false, false
	}
	defer func() {
		// Tell the server; a server that is gone does not hold shutdown up for long.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
		defer cancel()
		if err := obs.Cancel(cctx); err != nil {
			p.log.Debug("cancel observation", "err", err)
		}
	}()

	wd := time.NewTimer(p.watchdog(0, false))
	defer wd.Stop()
	first := true
	for {
		select {
		case <-ctx.Done():
			return answered, false
		case <-conn.Context().Done():
			if ctx.Err() == nil {
				p.rec.Fail(KindConnect, errors.New("connection closed while observing"))
			}
			return answered, false
		case n := <-notes:
			p.handle(ctx, n)
			if n.session != id {
				continue // late, from an earlier connection
			}
			answered = answered || n.success()
			if first && n.success() && !n.observe {
				return answered, true
			}
			first = false
			if !n.observe {
				// A final response ends the observation (RFC 7641 §3.2): an error, or
				// the server dropping us.
				p.log.Info("the server ended the observation; registering again", "code", codeString(n.code))
				return answered, false
			}
			p.setConnected(conn.LocalAddr().String(), true)
			wd.Reset(p.watchdog(n.maxAge, n.hasMaxAge))
		case <-wd.C:
			p.log.Info("notifications stopped; registering again")
			return answered, false
		}
	}
}

// watchdog is how long to wait for the next notification: the freshness the server
// promised (Max-Age, when present and not zero), else three intervals; never less than one
// interval; plus slack for the network and the server's timer.
func (p *Probe) watchdog(maxAge uint32, hasMaxAge bool) time.Duration {
	fresh := 3 * p.cfg.Interval
	if hasMaxAge && maxAge > 0 {
		fresh = time.Duration(maxAge) * time.Second
	}
	return max(fresh, p.cfg.Interval) + max(minSlack, p.cfg.Timeout)
}

// handle turns one response or notification into a reading. It reports whether it was a
// success response with a payload that decoded (stored or refused by the sink).
func (p *Probe) handle(ctx context.Context, n note) bool {
	p.count(func(s *Status) { s.Notifications++ })
	if !n.success() {
		p.rec.Fail(KindBadCode, fmt.Errorf("response %s%s", codeString(n.code), diagnostic(n.body)))
		return false
	}
	if n.code == codes.Valid {
		return true // the cached value is still valid; nothing new to store
	}
	obs, err := decodePayload(p.cfg.Param, n.format, n.hasFormat, n.body, p.cfg.Location)
	if err != nil {
		p.rec.Fail(KindDecode, err)
		return false
	}
	obs.Station, obs.Sensor = p.cfg.Station, p.cfg.Name
	p.rec.Store(ctx, obs) // whatever the outcome, the probe answered with a reading
	return true
}

func (p *Probe) setConnected(local string, up bool) {
	p.count(func(s *Status) { s.Local, s.Connected = local, up })
}

func (p *Probe) setMode(mode string) { p.count(func(s *Status) { s.Mode = mode }) }

func (p *Probe) count(f func(*Status)) {
	p.mu.Lock()
	f(&p.status)
	p.mu.Unlock()
}

// wait sleeps d, handling notifications that arrive late from a closed connection. It
// reports false when ctx ended.
func (p *Probe) wait(ctx context.Context, notes chan note, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case n := <-notes:
			p.handle(ctx, n)
		case <-t.C:
			return true
		}
	}
}

// note is a response or notification, copied out of the library's pooled message.
type note struct {
	session   uint64
	code      codes.Code
	format    message.MediaType
	hasFormat bool
	maxAge    uint32
	hasMaxAge bool
	observe   bool
	body      []byte
}

func noteFrom(m *pool.Message, session uint64) note {
	n := note{session: session, code: m.Code(), observe: m.HasOption(message.Observe)}
	if cf, err := m.ContentFormat(); err == nil {
		n.format, n.hasFormat = cf, true
	}
	if age, err := m.GetOptionUint32(message.MaxAge); err == nil {
		n.maxAge, n.hasMaxAge = age, true
	}
	if body, err := m.ReadBody(); err == nil {
		n.body = body // a copy: the message goes back to the pool
	}
	return n
}

func (n note) success() bool { return n.code>>5 == 2 }

// codeString writes a CoAP code as "2.05 Content".
func codeString(c codes.Code) string {
	return fmt.Sprintf("%d.%02d %s", c>>5, c&0x1f, c)
}

// diagnostic quotes the start of an error response's payload, which CoAP servers use for a
// human-readable reason.
func diagnostic(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	const limit = 64
	s := string(body)
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return fmt.Sprintf(" (%q)", strings.ToValidUTF8(s, "?"))
}

package httpprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/agent/internal/payload"
	"github.com/purehealth/purehealth/agent/internal/probestatus"
	"github.com/purehealth/purehealth/internal/backoff"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/version"
)

// The error kinds the probe records through Health, besides "http_<code>".
const (
	KindTimeout = "timeout" // no complete answer within the timeout
	KindConnect = "connect" // the connection failed or broke
	KindDecode  = "decode"  // a body that is not a reading, or one over MaxBody
)

// MaxBody is the largest body the probe reads; a larger one is refused.
const MaxBody = 64 << 10

// Config describes one HTTP probe. Name, Param and URL are required.
type Config struct {
	Station string // station id put on every observation ("" = the agent's own)
	Name    string // the sensor name: the probe's name in the configuration
	Param   telemetry.Param
	URL     string // http:// or https://
	// Interval is the poll period. Default 60s.
	Interval time.Duration
	// Timeout bounds each request, from connecting to the end of the body. Default
	// min(Interval, 10s).
	Timeout time.Duration
	// Location is the station's time zone, for payload timestamps without an offset.
	// nil means UTC.
	Location *time.Location
}

const (
	DefaultInterval = 60 * time.Second
	maxTimeout      = 10 * time.Second
	backoffBase     = time.Second
	backoffMax      = 30 * time.Second
	payloadShown    = 256
)

// Probe polls one URL. Create it with New.
type Probe struct {
	cfg    Config
	client *http.Client
	rec    *probestatus.Recorder
	log    *slog.Logger

	running atomic.Bool
	polls   atomic.Uint64
	// lost is set while the device cannot be reached; the next answer counts as a
	// reconnect. Owned by the Run goroutine.
	lost bool
}

// Status is a snapshot of a probe's health.
type Status struct {
	Name  string `json:"name"`
	URL   string `json:"url"`
	Polls uint64 `json:"polls"`
	// Readings, errors by kind, reconnects (answers after the device could not be
	// reached), the last error.
	probestatus.Counts
}

// New checks cfg and returns a probe. It starts nothing. log may be nil.
func New(cfg Config, sink probestatus.Sink, health probestatus.Health, log *slog.Logger) (*Probe, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	problems := probestatus.Check(cfg.Name, cfg.Param, sink, health)
	if u, err := url.Parse(cfg.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Errorf("url %q: want http://host[:port]/path", cfg.URL))
	}
	if cfg.Interval < 0 || cfg.Timeout < 0 {
		problems = append(problems, errors.New("interval and timeout must not be negative"))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("http probe %q: %w", cfg.Name, errors.Join(problems...))
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
	transport := &http.Transport{
		// A device on the station's network: no proxy from the environment.
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:    cfg.Timeout,
		ResponseHeaderTimeout:  cfg.Timeout,
		MaxIdleConns:           1,
		MaxIdleConnsPerHost:    1,
		MaxConnsPerHost:        2, // the poll, and a Test alongside
		MaxResponseHeaderBytes: 16 << 10,
		// Kept from one poll to the next; the device may close it sooner.
		IdleConnTimeout: cfg.Interval + cfg.Timeout + 30*time.Second,
	}
	log = log.With("probe", cfg.Name, "url", cfg.URL)
	return &Probe{
		cfg:    cfg,
		client: &http.Client{Transport: transport},
		rec:    probestatus.New(cfg.Name, cfg.Param, sink, health, log),
		log:    log,
	}, nil
}

// Status returns a snapshot. Safe for concurrent use.
func (p *Probe) Status() Status {
	return Status{Name: p.cfg.Name, URL: p.cfg.URL, Polls: p.polls.Load(), Counts: p.rec.Counts()}
}

// Run polls until ctx ends, then closes its idle connection and returns nil. It returns an
// error only when called while another Run of the same probe is running.
func (p *Probe) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return fmt.Errorf("http probe %q: already running", p.cfg.Name)
	}
	defer p.running.Store(false)
	defer p.client.CloseIdleConnections()

	// Polls are spaced out after failures, so a dead device is not hammered.
	pace := backoff.New(backoffBase, backoffMax, backoff.Equal)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		start := time.Now()
		next := start.Add(p.cfg.Interval)
		if p.poll(ctx) {
			pace.Reset()
		} else if ctx.Err() == nil {
			next = maxTime(next, time.Now().Add(pace.Next()))
		}
		t.Reset(time.Until(next))
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// response is what one GET brought back.
type response struct {
	status      int
	statusLine  string
	contentType string
	body        []byte
	tooLarge    bool
}

// fetch performs one GET with the probe's timeout. closeAfter asks for the connection to
// be closed afterwards instead of kept for the next poll.
func (p *Probe) fetch(ctx context.Context, closeAfter bool) (response, error) {
	rctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, p.cfg.URL, nil)
	if err != nil {
		return response{}, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Accept", "application/json, text/plain;q=0.5")
	req.Header.Set("User-Agent", "ph-agent/"+version.Version)
	req.Close = closeAfter
	// timedOut names the probe's own deadline rather than the library's words for it,
	// whichever of the two timers (the request's deadline, the transport's header timeout,
	// both set to the probe's timeout) fired first.
	timedOut := func(err error) error {
		var ne net.Error
		if ctx.Err() == nil && (errors.Is(rctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) {
			return fmt.Errorf("no complete answer within %s: %w", p.cfg.Timeout, context.DeadlineExceeded)
		}
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return response{}, timedOut(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return response{}, fmt.Errorf("read body: %w", timedOut(err))
	}
	r := response{status: resp.StatusCode, statusLine: resp.Status,
		contentType: resp.Header.Get("Content-Type"), body: body}
	if len(body) > MaxBody {
		// The rest stays unread: closing the body drops the connection with it.
		r.body, r.tooLarge = body[:MaxBody], true
	}
	return r, nil
}

// errorKind classifies a failed request.
func errorKind(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return KindTimeout
	}
	return KindConnect
}

// poll performs one GET and stores its reading. It reports whether the device answered
// with a reading (stored or refused by the sink).
func (p *Probe) poll(ctx context.Context) bool {
	p.polls.Add(1)
	r, err := p.fetch(ctx, false)
	if err != nil {
		if ctx.Err() == nil {
			p.lost = true
			p.rec.Fail(errorKind(err), fmt.Errorf("GET: %w", err))
		}
		return false
	}
	if p.lost {
		p.lost = false
		p.rec.Reconnected()
	}
	obs, kind, err := p.decode(r)
	if err != nil {
		p.rec.Fail(kind, err)
		return false
	}
	p.rec.Store(ctx, obs) // whatever the outcome, the device answered with a reading
	return true
}

// decode checks the status and turns the body into an observation; on failure it returns
// the error kind.
func (p *Probe) decode(r response) (telemetry.Observation, string, error) {
	if r.status < 200 || r.status > 299 {
		return telemetry.Observation{}, "http_" + strconv.Itoa(r.status),
			fmt.Errorf("status %s%s", r.statusLine, excerpt(r.body))
	}
	if r.tooLarge {
		return telemetry.Observation{}, KindDecode,
			fmt.Errorf("%w: body over %d bytes", payload.ErrTooLarge, MaxBody)
	}
	obs, err := payload.Decode(string(p.cfg.Param), r.body, p.cfg.Location)
	if err != nil {
		return telemetry.Observation{}, KindDecode, fmt.Errorf("decode: %w", err)
	}
	if len(obs) != 1 { // a parameter leaf yields exactly one; guard the contract anyway
		return telemetry.Observation{}, KindDecode, fmt.Errorf("decode: want one reading, got %d", len(obs))
	}
	o := obs[0]
	o.Station, o.Sensor = p.cfg.Station, p.cfg.Name
	return o, "", nil
}

// excerpt quotes the start of an error body, which often says why.
func excerpt(body []byte) string {
	s := strings.TrimSpace(string(body))
	if s == "" {
		return ""
	}
	const limit = 64
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return fmt.Sprintf(" (%q)", strings.ToValidUTF8(s, "?"))
}

// Exchange is one request and its response, for a technician checking a probe by hand.
type Exchange struct {
	Request     string `json:"request"`                // "GET http://turbidity.local/turbidity"
	Response    string `json:"response,omitempty"`     // "200 OK"; "" without a response
	ContentType string `json:"content_type,omitempty"` // the Content-Type header
	// Payload is the body as text, cut to 256 bytes (Truncated then), invalid UTF-8
	// replaced.
	Payload   string        `json:"payload"`
	Truncated bool          `json:"truncated,omitempty"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	// Value, Unit and Time are the decoded reading, as the device sent it (not yet
	// normalized by the pipeline); Time is zero when the body carries none.
	Value *float64  `json:"value,omitempty"`
	Unit  string    `json:"unit,omitempty"`
	Time  time.Time `json:"time,omitzero"`
	Error string    `json:"error,omitempty"`
}

// Test sends one GET now, on a connection closed afterwards, and reports the exchange. It
// stores nothing and counts nothing, and may run while Run runs. The error says what went
// wrong; the Exchange holds what got that far.
func (p *Probe) Test(ctx context.Context) (Exchange, error) {
	ex := Exchange{Request: "GET " + p.cfg.URL}
	start := time.Now()
	r, err := p.fetch(ctx, true)
	ex.Elapsed = time.Since(start)
	if err == nil {
		ex.Response, ex.ContentType = r.statusLine, r.contentType
		body := r.body
		if len(body) > payloadShown {
			body, ex.Truncated = body[:payloadShown], true
		}
		ex.Payload = strings.ToValidUTF8(string(body), "\uFFFD")
		var obs telemetry.Observation
		if obs, _, err = p.decode(r); err == nil {
			ex.Value, ex.Unit, ex.Time = &obs.Value, obs.Unit, obs.Time
		}
	}
	if err != nil {
		ex.Error = err.Error()
	}
	return ex, err
}

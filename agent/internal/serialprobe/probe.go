package serialprobe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/agent/internal/probestatus"
	"github.com/purehealth/purehealth/internal/backoff"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Temperature gives the station's latest water temperature, for temperature compensation.
// It must be safe for concurrent use.
type Temperature interface {
	Latest(p telemetry.Param) (float64, time.Time, bool)
}

// Config configures one serial probe. Zero durations take the defaults.
type Config struct {
	// Station is stamped on observations; "" lets the pipeline use its own.
	Station string
	// Name is the probe's name: the sensor of its readings and of its health (required).
	Name string
	// Param is what the probe measures: ph, do, conductivity, tds (an EC circuit's TDS
	// output) or temp (an RTD circuit).
	Param telemetry.Param
	// Device is the port's path, opened again at every reconnection. Prefer the stable
	// /dev/serial/by-id/... name: a replugged adapter may come back as another ttyUSBn.
	Device string
	Baud   int // default 9600, the circuits' factory setting
	// Interval between readings (default 60s). Readings are scheduled on a fixed grid;
	// slots missed while a reading overran are skipped, not caught up.
	Interval time.Duration
	// Timeout bounds one whole exchange, command to last reply line (default 2s; a pH
	// reading takes about 900 ms, a DO reading 600 ms).
	Timeout time.Duration
	// TempMaxAge is the oldest water temperature used for compensation (default 10m).
	TempMaxAge time.Duration
	// BackoffMin and BackoffMax bound the wait between attempts to reopen the port
	// (defaults 1s and 30s).
	BackoffMin, BackoffMax time.Duration
}

// Defaults.
const (
	DefaultBaud       = 9600
	DefaultInterval   = 60 * time.Second
	DefaultTimeout    = 2 * time.Second
	DefaultTempMaxAge = 10 * time.Minute
	DefaultBackoffMin = time.Second
	DefaultBackoffMax = 30 * time.Second
)

// Errors from Run, Test and Calibrate.
var (
	ErrRunning      = errors.New("probe is already running")
	ErrNotRunning   = errors.New("probe is not running")
	ErrNotConnected = errors.New("probe is not connected")
	ErrWrongCircuit = errors.New("wrong circuit for the configured parameter")
	ErrTimeout      = errors.New("no complete answer from the circuit in time")
	ErrRejected     = errors.New("the circuit answered *ER")
	ErrReset        = errors.New("the circuit reset")
	ErrNoValue      = errors.New("no reading in the answer")
)

// Exchange is what went over the wire for a technician's request: the raw lines, so what
// the circuit said can be read as it said it.
type Exchange struct {
	Sent     []string      `json:"sent"`            // commands, without the carriage return
	Received []string      `json:"received"`        // lines, Go-quoted when not printable
	Value    *float64      `json:"value,omitempty"` // the reading, when there was one
	Err      string        `json:"error,omitempty"`
	Took     time.Duration `json:"took"`
}

// Status is a probe's connection and circuit, for the technician.
type Status struct {
	Name   string          `json:"name"`
	Device string          `json:"device"`
	Param  telemetry.Param `json:"param"`
	// Open: the port is open. Identified: the circuit answered i at the last
	// identification.
	Open       bool `json:"open"`
	Identified bool `json:"identified"`
	// Circuit and Firmware as the circuit reports them (i), e.g. "pH" and "2.16". They
	// and WrongCircuit describe the last identification, also while the port is closed.
	Circuit  string `json:"circuit,omitempty"`
	Firmware string `json:"firmware,omitempty"`
	// WrongCircuit: the circuit does not measure Param; no readings are taken until a
	// matching one answers.
	WrongCircuit bool `json:"wrong_circuit"`
	// ResponseCodes: the circuit ends answers with *OK (false after *OK,0).
	ResponseCodes bool `json:"response_codes"`
	// Calibration is the number of calibrated points the circuit reports (Cal,?).
	Calibration string `json:"calibration,omitempty"`
	// LastCalibration is the circuit's reply to the last Calibrate, at LastCalibrationAt.
	LastCalibration   string    `json:"last_calibration,omitempty"`
	LastCalibrationAt time.Time `json:"last_calibration_at,omitzero"`
	// TempCompensation is the last temperature sent with T, °C (nil: none sent since the
	// circuit was identified).
	TempCompensation *float64 `json:"temp_compensation,omitempty"`
	// RestartReason and Voltage as reported by Status.
	RestartReason string `json:"restart_reason,omitempty"`
	Voltage       string `json:"voltage,omitempty"`

	// Unsolicited counts lines nobody asked for (continuous-mode leftovers, late replies).
	Unsolicited uint64 `json:"unsolicited"`
	// Readings, faults by kind (as counted in Health), reconnects, the last error.
	probestatus.Counts
}

// Probe polls one EZO circuit on a serial port. Create it with New and start it with Run;
// Test, Calibrate and Status may be called from any goroutine while it runs.
//
// Run owns the port: the goroutine that calls it is the only one that writes to it, and a
// reader goroutine it starts per connection is the only one that reads. Test and Calibrate
// hand their work to that goroutine over a channel, so an exchange is never interleaved
// with a poll.
type Probe struct {
	cfg  Config
	circ circuit
	rec  *probestatus.Recorder
	temp Temperature
	log  *slog.Logger

	reqs    chan request
	started atomic.Bool
	exited  chan struct{}

	mu sync.Mutex
	st Status
}

// New validates cfg and returns a Probe. It starts nothing. temp may be nil (no
// temperature compensation); log may be nil.
func New(cfg Config, sink probestatus.Sink, health probestatus.Health, temp Temperature, log *slog.Logger) (*Probe, error) {
	if cfg.Baud == 0 {
		cfg.Baud = DefaultBaud
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TempMaxAge == 0 {
		cfg.TempMaxAge = DefaultTempMaxAge
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	errs := probestatus.Check(cfg.Name, cfg.Param, sink, health)
	if cfg.Device == "" {
		errs = append(errs, errors.New("device is required"))
	}
	circ, ok := circuitFor[cfg.Param]
	if !ok && cfg.Param.Valid() {
		errs = append(errs, fmt.Errorf("param: no EZO circuit measures %q (want ph, do, conductivity, tds or temp)", cfg.Param))
	}
	if cfg.Baud < 0 {
		errs = append(errs, fmt.Errorf("baud: %d must be positive", cfg.Baud))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"interval", cfg.Interval}, {"timeout", cfg.Timeout}, {"temp max age", cfg.TempMaxAge},
		{"backoff min", cfg.BackoffMin}, {"backoff max", cfg.BackoffMax}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %s must not be negative", d.name, d.v))
		}
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		errs = append(errs, fmt.Errorf("backoff max %s is below backoff min %s", cfg.BackoffMax, cfg.BackoffMin))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("serial probe %q: %w", cfg.Name, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("probe", cfg.Name, "device", cfg.Device, "param", string(cfg.Param))
	return &Probe{
		cfg: cfg, circ: circ, temp: temp, log: log,
		rec:  probestatus.New(cfg.Name, cfg.Param, sink, health, log),
		reqs: make(chan request), exited: make(chan struct{}),
		st: Status{Name: cfg.Name, Device: cfg.Device, Param: cfg.Param, ResponseCodes: true},
	}, nil
}

// Status returns a snapshot. It is safe for concurrent use.
func (p *Probe) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.st
	s.Counts = p.rec.Counts()
	if p.st.TempCompensation != nil {
		t := *p.st.TempCompensation
		s.TempCompensation = &t
	}
	return s
}

func (p *Probe) update(f func(s *Status)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.st)
}

// Run opens the port, identifies the circuit and takes a reading every Interval until ctx
// ends; then it closes the port and returns nil after every goroutine it started has
// exited. A lost port (unplugged, device gone) is closed and the same configured path is
// reopened with jittered exponential backoff; each reopening after a loss is counted as a
// reconnect. Run may be called once.
func (p *Probe) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer close(p.exited)
	// Equal jitter: probes that lost power together do not retry in step, and no wait is
	// ever much shorter than the ceiling.
	bo := backoff.New(p.cfg.BackoffMin, p.cfg.BackoffMax, backoff.Equal)
	connected, failing := false, false
	for {
		c, err := dial(p.cfg.Device, p.cfg.Baud)
		if err == nil {
			if connected {
				p.rec.Reconnected()
			}
			connected, failing = true, false
			p.log.Info("serial port open")
			p.update(func(s *Status) { s.Open = true })
			s := &session{p: p, c: c, okCodes: true}
			lostErr := s.run(ctx)
			if err := c.close(); err != nil {
				p.log.Debug("close serial port", "err", err)
			}
			p.update(func(s *Status) { s.Open, s.Identified = false, false })
			if ctx.Err() != nil {
				return nil
			}
			if s.worked {
				bo.Reset()
			}
			p.log.Warn("serial port lost; reopening", "err", lostErr)
			p.rec.Fault("disconnect", fmt.Errorf("port lost: %w", lostErr))
		} else {
			if !failing {
				p.log.Warn("cannot open serial port; retrying with backoff", "err", err)
			}
			failing = true
			p.rec.Note(err)
		}
		if !p.idle(ctx, bo.Next()) {
			return nil
		}
	}
}

// idle waits d while disconnected, answering requests with ErrNotConnected. It returns
// false when ctx ended.
func (p *Probe) idle(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case r := <-p.reqs:
			r.reply <- response{ex: Exchange{Err: ErrNotConnected.Error()}, err: ErrNotConnected}
		}
	}
}

// request is work for the Run goroutine from Test or Calibrate.
type request struct {
	calibrate bool
	cmd       string // calibration command
	reply     chan response
}

type response struct {
	ex  Exchange
	err error
}

// Test takes one reading now, through the running loop, and returns the exchange. The
// reading is not stored: it is a check, not a measurement.
func (p *Probe) Test(ctx context.Context) (Exchange, error) {
	return p.do(ctx, request{})
}

// Calibrate sends one calibration command and confirms it with Cal,?. Points: pH mid,
// low, high with the buffer's pH; DO air (Cal) and zero (Cal,0); EC dry, single, low, high
// with the standard's µS/cm; RTD single with the reference °C; any circuit clear. The error
// is nil only when the circuit accepted the command; the Exchange holds its raw reply
// either way. A circuit that does not measure the configured parameter is refused.
func (p *Probe) Calibrate(ctx context.Context, point string, value float64) (Exchange, error) {
	cmd, err := calCommand(p.circ, point, value)
	if err != nil {
		return Exchange{Err: err.Error()}, err
	}
	return p.do(ctx, request{calibrate: true, cmd: cmd})
}

func (p *Probe) do(ctx context.Context, r request) (Exchange, error) {
	if !p.started.Load() {
		return Exchange{Err: ErrNotRunning.Error()}, ErrNotRunning
	}
	r.reply = make(chan response, 1) // the Run goroutine never waits for a caller gone
	select {
	case p.reqs <- r:
	case <-p.exited:
		return Exchange{Err: ErrNotRunning.Error()}, ErrNotRunning
	case <-ctx.Done():
		return Exchange{Err: ctx.Err().Error()}, ctx.Err()
	}
	select {
	case resp := <-r.reply:
		return resp.ex, resp.err
	case <-ctx.Done():
		return Exchange{Err: ctx.Err().Error()}, ctx.Err()
	}
}

package mqttsim

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/internal/backoff"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Publisher simulates a station's sensors publishing over MQTT. Create it with New; Run
// does the work. A Publisher holds only its configuration: Run may be called again, and
// concurrently, each run with its own connections.
type Publisher struct {
	cfg   Config
	addr  string
	model *device.Model
	log   *slog.Logger
}

// New validates cfg and returns a Publisher. It connects nothing. A nil log discards.
func New(cfg Config, log *slog.Logger) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	addr, err := ParseBroker(cfg.Broker)
	if err != nil {
		return nil, err // unreachable: Validate parsed it
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{
		cfg:   cfg,
		addr:  addr,
		model: device.New(device.ForStation(cfg.Station), cfg.Seed).WithPlumes(cfg.Plumes...),
		log:   log,
	}, nil
}

// Addr is the broker address the publisher connects to, host:port.
func (p *Publisher) Addr() string { return p.addr }

// Run connects every sensor, publishes until each has sent Count messages (or, with Count
// 0, until ctx ends), waits for the outstanding acknowledgements — after ctx ends, for at
// most the grace period — disconnects and reports.
//
// A failure to connect at the start ends the run with a *ConnectError and nothing
// published. A connection lost later is re-established with backoff; its unacknowledged
// publishes count as failed. The end of ctx is a normal end of the run, not an error.
func (p *Publisher) Run(ctx context.Context) (Report, error) {
	cfg := p.cfg
	origin := cfg.Origin
	if origin.IsZero() {
		origin = time.Now()
	}
	st := &stats{}
	sensors := make([]*sensor, cfg.Sensors)
	for i := range sensors {
		sensors[i] = p.newSensor(i, origin, st)
	}
	if err := p.connectAll(ctx, sensors); err != nil {
		if ctx.Err() != nil {
			return p.report(st, time.Now(), time.Now()), nil // stopped while connecting
		}
		return p.report(st, time.Now(), time.Now()), err
	}
	p.log.Info("connected", "broker", p.addr, "sensors", len(sensors),
		"protocol", protocolName(cfg.Protocol), "qos", cfg.QoS, "rate", cfg.Rate,
		"count", cfg.Count, "station", cfg.Station, "generic_model", device.Generic(cfg.Station))

	start := time.Now()
	st.last.Store(start.UnixNano())
	var wg sync.WaitGroup
	for _, s := range sensors {
		wg.Go(func() { s.run(ctx) })
	}
	wg.Wait()
	return p.report(st, start, time.Unix(0, st.last.Load())), nil
}

// connectAll opens every sensor's connection, a few at a time. If any fails, it closes the
// others and returns the failure of the lowest-numbered sensor.
func (p *Publisher) connectAll(ctx context.Context, sensors []*sensor) error {
	// All the sensors connect from one address, and brokers limit the handshakes one
	// address may have open at once (ph-agent's allows 8 and resets the socket beyond).
	const parallel = 8
	sem := make(chan struct{}, parallel)
	errs := make([]error, len(sensors))
	var wg sync.WaitGroup
	for i, s := range sensors {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = s.connect(ctx)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			for _, s := range sensors {
				s.disconnect()
			}
			return err
		}
	}
	return nil
}

func (p *Publisher) report(st *stats, start, end time.Time) Report {
	cfg := p.cfg
	r := Report{
		Station: cfg.Station, Protocol: cfg.Protocol, QoS: int(cfg.QoS), Sensors: cfg.Sensors,
		Batch: cfg.Batch,
		Sent:  st.sent.Load(), Acked: st.acked.Load(), Failed: st.failed.Load(),
		Rejected: st.rejected.Load(), Readings: st.readings.Load(), Garbage: st.garbage.Load(),
		Dropouts: st.dropouts.Load(), Reconnects: st.reconnects.Load(),
	}
	if e := st.firstErr.Load(); e != nil {
		r.FirstError = *e
	}
	secs := end.Sub(start).Seconds()
	if secs < 0 {
		secs = 0
	}
	r.Seconds = round(secs, 3)
	completed := r.Acked
	if cfg.QoS == 0 {
		completed = r.Sent - r.Failed
	}
	if secs > 0 {
		r.RatePerS = round(float64(completed)/secs, 1)
	}
	if cfg.QoS > 0 && r.Acked > 0 {
		r.LatencyMS = &Latency{
			P50: round(st.latency.quantile(0.50), 3),
			P90: round(st.latency.quantile(0.90), 3),
			P99: round(st.latency.quantile(0.99), 3),
			Max: round(st.latency.maxMS(), 3),
		}
	}
	return r
}

// stats are the run's counters, shared by all sensors.
type stats struct {
	sent, acked, failed, rejected atomic.Int64
	readings, garbage, dropouts   atomic.Int64
	reconnects                    atomic.Int64
	last                          atomic.Int64 // UnixNano of the latest outcome
	firstErr                      atomic.Pointer[string]
	latency                       histogram
}

func (st *stats) touch(t time.Time) {
	ns := t.UnixNano()
	for {
		old := st.last.Load()
		if ns <= old || st.last.CompareAndSwap(old, ns) {
			return
		}
	}
}

// sensor is one simulated device with its own connection. Its run loop is the only
// goroutine that publishes on its session.
type sensor struct {
	p        *Publisher
	index    int
	clientID string
	topic    string
	probes   []*device.Probe
	sensors  []string // sensor name per probe, "<param>-<i>"
	st       *stats
	log      *slog.Logger

	conn *conn // current connection; owned by the run goroutine after connect
}

// conn is one session with its in-flight window: a slot is taken before each publish and
// given back by its outcome, so taking every slot means nothing is outstanding.
type conn struct {
	sess  session
	slots chan struct{}
}

func (p *Publisher) newSensor(i int, origin time.Time, st *stats) *sensor {
	cfg := p.cfg
	s := &sensor{
		p: p, index: i, st: st,
		clientID: cfg.Station + "-sim-" + strconv.Itoa(i),
	}
	params := []telemetry.Param{cfg.Params[i%len(cfg.Params)]}
	s.topic = Topic(cfg.Station, params[0])
	if cfg.Batch {
		params = cfg.Params
		s.topic = BatchTopic(cfg.Station)
	}
	for _, param := range params {
		s.probes = append(s.probes, device.NewProbe(p.model, param, i, cfg.Fault, origin))
		s.sensors = append(s.sensors, string(param)+"-"+strconv.Itoa(i))
	}
	s.log = p.log.With("sensor", s.clientID)
	return s
}

func (s *sensor) dial(ctx context.Context) (*conn, error) {
	var (
		sess session
		err  error
	)
	if s.p.cfg.Protocol == MQTT5 {
		sess, err = dial5(ctx, s.p.cfg, s.p.addr, s.clientID)
	} else {
		sess, err = dial311(ctx, s.p.cfg, s.p.addr, s.clientID)
	}
	if err != nil {
		return nil, err
	}
	return &conn{sess: sess, slots: make(chan struct{}, sess.window())}, nil
}

func (s *sensor) connect(ctx context.Context) error {
	c, err := s.dial(ctx)
	if err != nil {
		return err
	}
	s.conn = c
	return nil
}

func (s *sensor) disconnect() {
	if s.conn != nil {
		s.conn.sess.close()
		s.conn = nil
	}
}

// run publishes until the count is reached or ctx ends, then drains and disconnects.
func (s *sensor) run(ctx context.Context) {
	cfg := s.p.cfg
	defer s.disconnect()
	sched := newSchedule(cfg.Rate, s.index, cfg.Sensors)
	for n := 0; cfg.Count == 0 || n < cfg.Count; {
		if !s.ensureConnected(ctx) {
			break
		}
		c := s.conn
		if !sched.wait(ctx, c.sess.lost()) {
			if ctx.Err() != nil {
				break
			}
			continue // the connection went while waiting: reconnect, keep the tick
		}
		if !s.acquire(ctx, c) {
			if ctx.Err() != nil {
				break
			}
			continue
		}
		select {
		case <-c.sess.lost():
			// The slot was freed by the loss itself: reconnect first.
			<-c.slots
			continue
		default:
		}
		s.publish(c)
		n++
	}
	s.drain(ctx)
}

// ensureConnected reconnects a lost connection, with jittered exponential backoff, until it
// succeeds or ctx ends.
func (s *sensor) ensureConnected(ctx context.Context) bool {
	select {
	case <-s.conn.sess.lost():
	default:
		return ctx.Err() == nil
	}
	s.log.Warn("connection lost; reconnecting")
	s.disconnect() // fails what was still waiting and frees the client
	// Jittered, so that many sensors do not reconnect in lockstep.
	bo := backoff.New(100*time.Millisecond, 5*time.Second, backoff.Equal)
	for attempt := 1; ; attempt++ {
		c, err := s.dial(ctx)
		if err == nil {
			s.conn = c
			s.st.reconnects.Add(1)
			s.log.Info("reconnected", "attempts", attempt)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if attempt == 1 || attempt%10 == 0 {
			s.log.Warn("reconnect failed", "attempts", attempt, "err", err)
		}
		if backoff.Sleep(ctx, bo.Next()) != nil {
			return false
		}
	}
}

// acquire takes an in-flight slot. When none frees up for the ack timeout, the connection
// is treated as dead and closed (its outstanding publishes fail); the caller reconnects.
func (s *sensor) acquire(ctx context.Context, c *conn) bool {
	select {
	case c.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(s.p.cfg.AckTimeout)
	defer t.Stop()
	select {
	case c.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	case <-c.sess.lost():
		return false
	case <-t.C:
		s.log.Warn("no acknowledgement within the ack timeout; dropping the connection",
			"timeout", s.p.cfg.AckTimeout, "outstanding", cap(c.slots))
		c.sess.close()
		return false
	}
}

// publish samples the probes now and sends one message, holding a slot already.
func (s *sensor) publish(c *conn) {
	now := time.Now().UTC()
	readings := make([]reading, 0, len(s.probes))
	var (
		garbage bool
		nonce   uint64
	)
	for i, pr := range s.probes {
		smp := pr.Read(now)
		if !smp.OK {
			continue
		}
		if smp.Garbage && !garbage {
			garbage, nonce = true, smp.Nonce
		}
		info, _ := telemetry.Info(pr.Param())
		readings = append(readings, reading{Param: pr.Param(), Value: smp.Value,
			Unit: info.Unit, Time: now, Sensor: s.sensors[i]})
	}
	if len(readings) == 0 {
		// The probe said nothing this tick (a dropout): no message.
		s.st.dropouts.Add(1)
		s.st.touch(now)
		<-c.slots
		return
	}
	var payload []byte
	switch {
	case garbage:
		payload = encodeGarbage(readings, s.p.cfg.Batch, nonce)
		s.st.garbage.Add(1)
	case s.p.cfg.Batch:
		payload = encodeBatch(readings)
		s.st.readings.Add(int64(len(readings)))
	default:
		payload = encodeReading(readings[0])
		s.st.readings.Add(1)
	}
	s.st.sent.Add(1)
	sentAt := time.Now()
	// The publish is ours to finish even if ctx ends meanwhile: the drain waits for it.
	c.sess.send(context.Background(), s.topic, payload, func(o outcome, err error) {
		done := time.Now()
		switch o {
		case outcomeAcked:
			s.st.acked.Add(1)
			s.st.latency.record(done.Sub(sentAt))
		case outcomeWritten:
		case outcomeRejected:
			s.st.rejected.Add(1)
			s.st.failed.Add(1)
		case outcomeFailed:
			s.st.failed.Add(1)
		}
		if err != nil {
			msg := err.Error()
			if s.st.firstErr.CompareAndSwap(nil, &msg) {
				s.log.Warn("publish failed", "err", err)
			}
		}
		s.st.touch(done)
		<-c.slots
	})
}

// drain waits until nothing is outstanding on the current connection: for the ack timeout
// after a completed count, for the grace period once ctx has ended.
func (s *sensor) drain(ctx context.Context) {
	c := s.conn
	if c == nil {
		return
	}
	cfg := s.p.cfg
	limit := time.NewTimer(cfg.AckTimeout)
	defer limit.Stop()
	done := ctx.Done()
	if ctx.Err() != nil {
		limit.Reset(cfg.Grace)
		done = nil
	}
	for taken := 0; taken < cap(c.slots); {
		select {
		case c.slots <- struct{}{}:
			taken++
		case <-done:
			// Interrupted while waiting: give the rest only the grace period.
			done = nil
			limit.Reset(cfg.Grace)
		case <-limit.C:
			// Closing fails what is left; their outcomes then free the slots at once.
			s.log.Warn("giving up on outstanding acknowledgements",
				"outstanding", cap(c.slots)-taken)
			c.sess.close()
			for ; taken < cap(c.slots); taken++ {
				c.slots <- struct{}{}
			}
			return
		}
	}
}

// schedule paces one sensor: a tick every 1/rate seconds, sensors spread evenly over the
// first interval. It never bursts to catch up: a sensor that fell behind by more than an
// interval (a reconnect, a full window) resumes from now.
type schedule struct {
	interval time.Duration // 0: no pacing
	next     time.Time
}

func newSchedule(rate float64, index, sensors int) *schedule {
	if rate == 0 {
		return &schedule{}
	}
	interval := time.Duration(float64(time.Second) / rate)
	offset := time.Duration(int64(interval) / int64(sensors) * int64(index))
	return &schedule{interval: interval, next: time.Now().Add(offset)}
}

// wait blocks until the next tick. It returns false, without consuming the tick, if ctx ends
// or lost is closed first.
func (s *schedule) wait(ctx context.Context, lost <-chan struct{}) bool {
	if s.interval == 0 {
		select {
		case <-ctx.Done():
			return false
		case <-lost:
			return false
		default:
			return true
		}
	}
	now := time.Now()
	if now.Sub(s.next) > s.interval {
		s.next = now
	}
	if d := s.next.Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-lost:
			return false
		case <-t.C:
		}
	} else {
		select {
		case <-ctx.Done():
			return false
		case <-lost:
			return false
		default:
		}
	}
	s.next = s.next.Add(s.interval)
	return true
}

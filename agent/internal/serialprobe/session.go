package serialprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/purehealth/purehealth/shared/telemetry"
)

const (
	// settleTime is how long a setting command waits for *ER when the circuit has
	// response codes off: silence then means it was accepted. Circuits take about 300 ms.
	settleTime = 500 * time.Millisecond
	// calSettle is the same for calibration, which takes a reading first.
	calSettle = 2 * time.Second
	// minCalTimeout bounds a calibration exchange from below, whatever Timeout is.
	minCalTimeout = 3 * time.Second
	// identifyAttempts is how often identification starts over when the circuit resets or
	// wakes up in the middle of it.
	identifyAttempts = 3
)

var (
	errAsleep  = errors.New("the circuit is asleep (*SL)")
	errWoke    = errors.New("the circuit woke up (*WA) and dropped the command")
	errGarbage = fmt.Errorf("%w in the answer", ErrGarbage)
)

// session is one open connection and what is known about the circuit behind it. The Run
// goroutine owns it.
type session struct {
	p *Probe
	c *conn
	// lost is set once the port has failed; nothing more is sent.
	lost error

	okCodes      bool // the circuit ends answers with *OK
	identified   bool
	needIdentify bool // a reset was seen: identify before the next reading
	resetPending bool // *RS seen, *RE not yet (count one reset, not two)
	wrong        bool // the circuit does not measure the configured parameter
	field        int  // index of the parameter among a reading's values
	unit         string
	tempSent     bool
	tempTenths   int // last temperature compensation sent, in 0.1 °C
	contSeen     int // unsolicited readings since C,0 was sent
	worked       bool
}

// want says what answers an exchange: a reading, a ?<reply> line, or (neither) just a
// response code.
type want struct {
	value   bool
	reply   string        // query name, upper case
	onReply func(Line)    // called as soon as the reply line arrives
	settle  time.Duration // codes off, setting command: silence this long means accepted
}

// none: the answer is a response code only.
func (w want) none() bool { return !w.value && w.reply == "" }

// result is one exchange. When err is nil and a reading or reply was wanted, data is set.
type result struct {
	sent, lines []string
	data        *Line
	at          time.Time // when data arrived
	ov, uv      bool
	garbage     bool
	err         error
}

// run polls until ctx ends (nil) or the port fails (the failure).
func (s *session) run(ctx context.Context) error {
	interval := s.p.cfg.Interval
	next := time.Now()
	t := time.NewTimer(0) // identify and read at once
	defer t.Stop()
	for s.lost == nil {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-s.c.events:
			s.unsolicited(ev, ok)
		case r := <-s.p.reqs:
			r.reply <- s.serve(ctx, r)
		case <-t.C:
			s.poll(ctx)
			now := time.Now()
			next = next.Add(interval)
			if !next.After(now) {
				next = next.Add((now.Sub(next)/interval + 1) * interval) // skip missed slots
			}
			t.Reset(next.Sub(now))
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return s.lost
}

func (s *session) lose(err error) {
	if err == nil {
		err = io.EOF
	}
	if s.lost == nil {
		s.lost = err
	}
}

// exchange sends cmd and collects the answer until it is complete, the circuit reports
// a problem, or timeout passes.
func (s *session) exchange(ctx context.Context, cmd string, w want, timeout time.Duration) result {
	r := result{sent: []string{cmd}}
	s.drain()
	if s.lost != nil {
		r.err = s.lost
		return r
	}
	if err := s.c.write(cmd); err != nil {
		s.lose(fmt.Errorf("write: %w", err))
		r.err = s.lost
		return r
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var settle <-chan time.Time
	if w.none() && !s.okCodes {
		if w.settle == 0 {
			w.settle = settleTime
		}
		t := time.NewTimer(min(timeout, w.settle))
		defer t.Stop()
		settle = t.C
	}
	for {
		select {
		case <-ctx.Done():
			r.err = ctx.Err()
			return r
		case <-settle:
			return r // no *ER: accepted
		case <-deadline.C:
			switch {
			case r.data != nil:
				// The answer came without its *OK: response codes are off (*OK,0).
				s.setCodes(false)
			case r.garbage:
				r.err = errGarbage
			default:
				r.err = ErrTimeout
			}
			return r
		case ev, ok := <-s.c.events:
			if !ok || ev.err != nil {
				s.lose(ev.err)
				r.err = s.lost
				return r
			}
			if ev.overlong {
				r.lines = append(r.lines, fmt.Sprintf("(a line over %d bytes, dropped)", MaxLine))
				r.garbage = true
				s.p.rec.Fault("overlong", fmt.Errorf("%w: a line over %d bytes", ErrGarbage, MaxLine))
				continue
			}
			r.lines = append(r.lines, quoteLine(ev.line))
			l, err := ParseLine([]byte(ev.line))
			if err != nil {
				r.garbage = true
				s.p.rec.Fault("garbage", err)
				continue
			}
			if s.take(&r, l, w) {
				return r
			}
		}
	}
}

// take adds l to r and reports whether the exchange is complete.
func (s *session) take(r *result, l Line, w want) bool {
	switch l.Kind {
	case KindCode:
		switch l.Code {
		case CodeOK, CodeDONE:
			if r.data != nil || w.none() {
				return true
			}
			if r.garbage {
				r.err = errGarbage // the reading was lost to line noise
				return true
			}
			return false // a late *OK of an earlier command
		case CodeER:
			r.err = ErrRejected
			return true
		case CodeOV:
			r.ov = true
			return r.data != nil || w.none() // *OV stands in for *OK
		case CodeUV:
			r.uv = true
			return r.data != nil || w.none()
		case CodeRS, CodeRE:
			s.noteReset(l.Code)
			r.err = ErrReset
			return true
		case CodeSL:
			r.err = errAsleep
			return true
		case CodeWA:
			r.err = errWoke
			return true
		}
	case KindValue:
		if w.value && r.data == nil {
			r.data, r.at = &l, time.Now()
			return !s.okCodes || r.ov || r.uv
		}
		s.noteUnsolicited(l)
	case KindReply:
		if w.reply != "" && r.data == nil && l.Query == w.reply {
			r.data, r.at = &l, time.Now()
			if w.onReply != nil {
				w.onReply(l)
			}
			return !s.okCodes
		}
		s.noteUnsolicited(l)
	}
	return false
}

// drain handles what arrived between exchanges.
func (s *session) drain() {
	for s.lost == nil {
		select {
		case ev, ok := <-s.c.events:
			s.unsolicited(ev, ok)
		default:
			return
		}
	}
}

// unsolicited handles a line nobody asked for.
func (s *session) unsolicited(ev event, ok bool) {
	switch {
	case !ok || ev.err != nil:
		s.lose(ev.err)
		return
	case ev.overlong:
		s.p.rec.Fault("overlong", fmt.Errorf("%w: a line over %d bytes", ErrGarbage, MaxLine))
		return
	}
	l, err := ParseLine([]byte(ev.line))
	if err != nil {
		s.p.rec.Fault("garbage", err)
		return
	}
	if l.Kind == KindCode {
		switch l.Code {
		case CodeRS, CodeRE:
			s.noteReset(l.Code)
			return
		case CodeSL:
			s.p.log.Info("circuit went to sleep; the next command wakes it")
			return
		}
	}
	s.noteUnsolicited(l)
}

func (s *session) noteUnsolicited(l Line) {
	if l.Kind == KindValue {
		s.contSeen++ // continuous mode is on again
	}
	s.p.log.Debug("unsolicited line", "kind", l.Kind, "code", l.Code, "values", l.Values)
	s.p.update(func(st *Status) { st.Unsolicited++ })
}

// noteReset counts a restart of the circuit once (*RS then *RE is one) and schedules
// identification: settings kept in RAM, such as temperature compensation, are gone.
func (s *session) noteReset(c Code) {
	if c == CodeRS || !s.resetPending {
		s.p.log.Warn("circuit reset", "code", "*"+string(c))
		s.p.rec.Fault("reset", fmt.Errorf("%w (*%s)", ErrReset, c))
	}
	s.resetPending, s.needIdentify = true, true
}

func (s *session) setCodes(on bool) {
	if s.okCodes != on {
		s.p.log.Info("circuit response codes", "ok", on)
	}
	s.okCodes = on
	s.p.update(func(st *Status) { st.ResponseCodes = on })
}

// quoteLine shows a line as received: as is when printable ASCII, Go-quoted otherwise.
func quoteLine(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] < 0x20 || line[i] > 0x7e {
			return strconv.Quote(line)
		}
	}
	if !utf8.ValidString(line) {
		return strconv.Quote(line)
	}
	return line
}

// identify asks the circuit what it is and sets it up for polling: response codes
// learned, continuous mode off, the parameter's output enabled and located. It reports
// whether the circuit answered (a wrong circuit answers too; see s.wrong).
func (s *session) identify(ctx context.Context) bool {
	var err error
	for range identifyAttempts {
		err = s.identifyOnce(ctx)
		if !errors.Is(err, ErrReset) && !errors.Is(err, errWoke) && !errors.Is(err, errAsleep) {
			break
		}
	}
	switch {
	case err == nil:
		s.worked = true
		return true
	case s.lost != nil || ctx.Err() != nil:
	default:
		s.countFailure(fmt.Errorf("identify: %w", err))
		s.p.log.Warn("circuit not identified", "err", err)
	}
	return false
}

func (s *session) identifyOnce(ctx context.Context) error {
	timeout := s.p.cfg.Timeout
	r := s.exchange(ctx, "*OK,?", want{reply: "*OK", onReply: func(l Line) {
		s.setCodes(len(l.Fields) > 0 && l.Fields[0] == "1")
	}}, timeout)
	if r.err != nil && !errors.Is(r.err, ErrRejected) { // old firmware may not know *OK,?
		return r.err
	}
	if r := s.exchange(ctx, "C,0", want{}, timeout); r.err != nil {
		return fmt.Errorf("continuous mode off: %w", r.err)
	}
	s.contSeen = 0
	r = s.exchange(ctx, "i", want{reply: "I"}, timeout)
	if r.err != nil {
		return r.err
	}
	if r.data == nil || len(r.data.Fields) < 2 {
		return fmt.Errorf("%w: device information %q", ErrUnknown, strings.Join(r.lines, " "))
	}
	typ, fw := r.data.Fields[0], r.data.Fields[1]
	s.p.update(func(st *Status) { st.Circuit, st.Firmware = typ, fw })
	if !sameCircuit(typ, s.p.circ) {
		err := fmt.Errorf("%w: %s answers on %s, configured for %s (a %s circuit)",
			ErrWrongCircuit, describeCircuit(typ), s.p.cfg.Device, s.p.cfg.Param, s.p.circ.name)
		if !s.wrong {
			s.p.log.Error("wrong circuit: no readings are taken from it", "err", err)
		}
		s.wrong, s.identified, s.needIdentify, s.resetPending = true, true, false, false
		s.p.update(func(st *Status) { st.WrongCircuit, st.Identified = true, true })
		s.p.rec.Fault("wrong_circuit", err)
		return nil
	}
	if s.wrong {
		s.p.log.Info("a matching circuit answers now", "circuit", typ)
	}
	s.wrong = false

	s.field, s.unit = 0, s.p.circ.unit
	if s.p.circ.output != "" {
		if err := s.locateOutput(ctx); err != nil {
			return err
		}
	}
	if s.p.circ.name == "RTD" {
		r := s.exchange(ctx, "S,?", want{reply: "S"}, timeout)
		if err := fatal(r.err); err != nil {
			return err
		}
		if r.err == nil && len(r.data.Fields) > 0 {
			if u, ok := rtdUnits[strings.ToLower(r.data.Fields[0])]; ok {
				s.unit = u
			}
		}
	}
	r = s.exchange(ctx, "Cal,?", want{reply: "CAL"}, timeout)
	if err := fatal(r.err); err != nil {
		return err
	}
	if r.err == nil && len(r.data.Fields) > 0 {
		s.p.update(func(st *Status) { st.Calibration = r.data.Fields[0] })
	}
	r = s.exchange(ctx, "Status", want{reply: "STATUS"}, timeout)
	if err := fatal(r.err); err != nil {
		return err
	}
	if r.err == nil && len(r.data.Fields) >= 2 {
		s.p.update(func(st *Status) { st.RestartReason, st.Voltage = r.data.Fields[0], r.data.Fields[1] })
	}

	s.identified, s.needIdentify, s.resetPending, s.tempSent = true, false, false, false
	s.p.update(func(st *Status) {
		st.Identified, st.WrongCircuit, st.TempCompensation = true, false, nil
	})
	s.p.log.Info("circuit identified", "circuit", typ, "firmware", fw, "ok_codes", s.okCodes,
		"field", s.field, "unit", s.unit)
	return nil
}

// fatal keeps the errors that end identification: the port, a reset, a wake-up, the
// context. An optional query that is refused or unanswered is not one of them.
func fatal(err error) error {
	if err == nil || errors.Is(err, ErrRejected) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrGarbage) {
		return nil
	}
	return err
}

// locateOutput finds the parameter among the outputs the circuit reports (O,?),
// enabling it first when it is off.
func (s *session) locateOutput(ctx context.Context) error {
	name := s.p.circ.output
	for attempt := 0; attempt < 2; attempt++ {
		r := s.exchange(ctx, "O,?", want{reply: "O"}, s.p.cfg.Timeout)
		if errors.Is(r.err, ErrRejected) {
			return nil // no selectable outputs: the one value is ours
		}
		if r.err != nil {
			return fmt.Errorf("outputs: %w", r.err)
		}
		for i, f := range r.data.Fields {
			if strings.EqualFold(f, name) {
				s.field = i
				return nil
			}
		}
		if attempt == 0 {
			s.p.log.Info("enabling the circuit output", "output", name)
			if r := s.exchange(ctx, "O,"+name+",1", want{}, s.p.cfg.Timeout); r.err != nil {
				return fmt.Errorf("enable output %s: %w", name, r.err)
			}
		}
	}
	return fmt.Errorf("%w: the circuit does not report its %s output", ErrNoValue, name)
}

// poll takes one reading and hands it to the sink.
func (s *session) poll(ctx context.Context) {
	if !s.identified || s.needIdentify || s.wrong {
		if !s.identify(ctx) || s.wrong {
			return
		}
	}
	if s.contSeen >= 2 {
		// Readings keep arriving unasked: continuous mode is back on (a power cycle
		// restores the stored setting). Turn it off again.
		r := s.exchange(ctx, "C,0", want{}, s.p.cfg.Timeout)
		if r.err == nil {
			s.contSeen = 0
		}
	}
	s.compensate(ctx)
	if s.lost != nil || s.needIdentify || ctx.Err() != nil {
		return
	}
	r := s.read(ctx)
	v, probeErr, err := s.value(r)
	if err != nil {
		if s.lost == nil && ctx.Err() == nil {
			s.countFailure(fmt.Errorf("read: %w", err))
		}
		return
	}
	s.worked = true
	if r.ov {
		s.p.rec.Fault("ov", errors.New("reading taken with the supply over voltage (*OV)"))
	}
	if r.uv {
		s.p.rec.Fault("uv", errors.New("reading taken with the supply under voltage (*UV)"))
	}
	s.p.rec.Store(ctx, telemetry.Observation{
		Station: s.p.cfg.Station, Sensor: s.p.cfg.Name, Param: string(s.p.cfg.Param),
		Value: v, Unit: s.unit, Time: r.at.UTC(), Source: telemetry.SourceSensor,
		ProbeError: probeErr,
	})
}

// countFailure counts a failed exchange under its kind. Resets, garbage and overlong
// lines were counted as they arrived.
func (s *session) countFailure(err error) {
	switch {
	case errors.Is(err, ErrReset), errors.Is(err, ErrGarbage):
		return
	case errors.Is(err, ErrTimeout):
		s.p.rec.Fault("timeout", err)
	case errors.Is(err, ErrRejected):
		s.p.rec.Fault("er", err)
	case errors.Is(err, errAsleep), errors.Is(err, errWoke):
		s.p.rec.Fault("asleep", err)
	default:
		s.p.rec.Fault("invalid", err)
	}
}

// read sends R, asking again when the circuit was asleep.
func (s *session) read(ctx context.Context) result {
	r := s.exchange(ctx, "R", want{value: true}, s.p.cfg.Timeout)
	for i := 0; i < 2 && (errors.Is(r.err, errAsleep) || errors.Is(r.err, errWoke)); i++ {
		s.p.log.Info("circuit was asleep; asking again", "err", r.err)
		again := s.exchange(ctx, "R", want{value: true}, s.p.cfg.Timeout)
		again.sent = append(r.sent, again.sent...)
		again.lines = append(r.lines, again.lines...)
		r = again
	}
	return r
}

// value extracts the parameter from a reading. probeErr flags a reading the circuit took
// in a bad state (supply voltage out of range, RTD without its sensor).
func (s *session) value(r result) (v float64, probeErr bool, err error) {
	if r.err != nil {
		return 0, false, r.err
	}
	if s.wrong {
		return 0, false, ErrWrongCircuit
	}
	if r.data == nil {
		return 0, false, ErrNoValue
	}
	if s.field >= len(r.data.Values) {
		s.needIdentify = true // the outputs changed behind our back
		return 0, false, fmt.Errorf("%w: %d values, the %s output is number %d",
			ErrNoValue, len(r.data.Values), s.p.circ.output, s.field+1)
	}
	v = r.data.Values[s.field]
	// An RTD circuit reports -1023 when no sensor is connected.
	probeErr = r.ov || r.uv || (s.p.circ.name == "RTD" && v <= -1023)
	return v, probeErr, nil
}

// compensate sends the water temperature to circuits that correct for it, when it is
// fresh and has moved by 0.5 °C or more since it was last sent.
func (s *session) compensate(ctx context.Context) {
	if !s.p.circ.tempComp || s.p.temp == nil {
		return
	}
	v, at, ok := s.p.temp.Latest(telemetry.Temp)
	info, _ := telemetry.Info(telemetry.Temp)
	if !ok || time.Since(at) > s.p.cfg.TempMaxAge || !info.Physical.Contains(v) {
		return
	}
	tenths := int(math.Round(v * 10))
	if s.tempSent && abs(tenths-s.tempTenths) < 5 {
		return
	}
	t := float64(tenths) / 10
	cmd := "T," + strconv.FormatFloat(t, 'f', 1, 64)
	r := s.exchange(ctx, cmd, want{}, s.p.cfg.Timeout)
	switch {
	case r.err == nil:
		s.tempSent, s.tempTenths = true, tenths
		s.p.update(func(st *Status) { st.TempCompensation = &t })
		s.p.log.Debug("temperature compensation", "temp", t)
	case s.lost != nil || ctx.Err() != nil:
	default:
		s.countFailure(fmt.Errorf("temperature compensation %s: %w", cmd, r.err))
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// serve carries out a technician's request.
func (s *session) serve(ctx context.Context, req request) response {
	start := time.Now()
	if !s.identified || s.needIdentify {
		s.identify(ctx)
	}
	if req.calibrate {
		return s.calibrate(ctx, req.cmd, start)
	}
	r := s.read(ctx)
	ex := Exchange{Sent: r.sent, Received: r.lines, Took: time.Since(start)}
	v, _, err := s.value(r)
	if err != nil {
		ex.Err = err.Error()
		return response{ex: ex, err: fmt.Errorf("test: %w", err)}
	}
	ex.Value = &v
	return response{ex: ex}
}

func (s *session) calibrate(ctx context.Context, cmd string, start time.Time) response {
	fail := func(ex Exchange, err error) response {
		ex.Err, ex.Took = err.Error(), time.Since(start)
		return response{ex: ex, err: err}
	}
	switch {
	case s.wrong:
		return fail(Exchange{}, ErrWrongCircuit)
	case !s.identified:
		return fail(Exchange{}, fmt.Errorf("calibrate: circuit not identified: %w", ErrTimeout))
	}
	r := s.exchange(ctx, cmd, want{settle: calSettle}, max(s.p.cfg.Timeout, minCalTimeout))
	ex := Exchange{Sent: r.sent, Received: r.lines}
	if r.err != nil {
		return fail(ex, fmt.Errorf("calibrate: %w", r.err))
	}
	q := s.exchange(ctx, "Cal,?", want{reply: "CAL"}, s.p.cfg.Timeout)
	ex.Sent = append(ex.Sent, q.sent...)
	ex.Received = append(ex.Received, q.lines...)
	reply := strings.Join(ex.Received, " ")
	s.p.update(func(st *Status) {
		st.LastCalibration, st.LastCalibrationAt = reply, time.Now()
		if q.err == nil && len(q.data.Fields) > 0 {
			st.Calibration = q.data.Fields[0]
		}
	})
	if q.err != nil {
		return fail(ex, fmt.Errorf("calibration sent but not confirmed: %w", q.err))
	}
	s.p.log.Info("calibrated", "command", cmd, "reply", reply)
	ex.Took = time.Since(start)
	return response{ex: ex}
}

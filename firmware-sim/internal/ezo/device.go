package ezo

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Fault is a way the circuit or its serial link misbehaves, on top of the probe faults of
// package device. Except for FaultUnplug (timed by the Emulator) and FaultMute, a fault hits
// every Config.FaultEvery-th R command.
type Fault string

// The circuit and link faults. When several hit the same reading, the first in this list
// wins.
const (
	// FaultER: the circuit answers *ER (it did not understand the command).
	FaultER Fault = "er"
	// FaultReset: the circuit resets instead of answering (brown-out, watchdog): *RS, then
	// *RE when it has booted; settings that live in RAM (temperature compensation) are lost.
	FaultReset Fault = "reset"
	// FaultSleep: the circuit falls asleep instead of answering (*SL), as if another host
	// had sent Sleep; the next command only wakes it (*WA) and is lost.
	FaultSleep Fault = "sleep"
	// FaultFlood: a megabyte without a carriage return (a babbling line) comes before the
	// reading.
	FaultFlood Fault = "flood"
	// FaultOV: the reading is taken with the supply over voltage: *OV instead of *OK.
	FaultOV Fault = "ov"
	// FaultUV: the reading is taken with the supply under voltage: *UV instead of *OK.
	FaultUV Fault = "uv"
	// FaultMute: the circuit never answers anything (unpowered behind a live USB adapter).
	FaultMute Fault = "mute"
	// FaultUnplug: the probe is unplugged every Options.UnplugEvery and plugged back in
	// after Options.UnplugFor, behind the same link (handled by the Emulator).
	FaultUnplug Fault = "unplug"
)

// Faults lists the circuit and link faults, in precedence order.
func Faults() []Fault {
	return []Fault{FaultER, FaultReset, FaultSleep, FaultFlood, FaultOV, FaultUV, FaultMute,
		FaultUnplug}
}

// ParseFaults reads a comma-separated list of faults: at most one probe fault of package
// device (noise, drift, stuck, dropout, garbage, spike) and any circuit and link faults.
// "" and "none" mean none.
func ParseFaults(s string) (device.Fault, []Fault, error) {
	probe := device.FaultNone
	var (
		out  []Fault
		errs []error
	)
	for item := range strings.SplitSeq(s, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		if item == "" || item == string(device.FaultNone) {
			continue
		}
		if f := Fault(item); slices.Contains(Faults(), f) {
			if slices.Contains(out, f) {
				errs = append(errs, fmt.Errorf("fault %s listed twice", f))
				continue
			}
			out = append(out, f)
			continue
		}
		pf, err := device.ParseFault(item)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("unknown fault %q (want probe faults %s or circuit faults %s)",
				item, faultNames(device.Faults()[1:]), faultNames(Faults())))
		case probe != device.FaultNone:
			errs = append(errs, fmt.Errorf("faults %s and %s: a probe has one probe fault at a time", probe, pf))
		default:
			probe = pf
		}
	}
	return probe, out, errors.Join(errs...)
}

func faultNames[F ~string](fs []F) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}

// Config describes the emulated circuit.
type Config struct {
	// Param is what the probe measures: ph (a pH circuit), do (DO), conductivity or tds (an
	// EC circuit; R reports the outputs enabled with O, in the order EC, TDS, S, SG) or temp
	// (RTD).
	Param telemetry.Param
	// Station is the station whose river model gives the values (any id; an unknown one
	// gets a generic river). Empty means MH-PUNE-001.
	Station string
	Seed    int64
	// ProbeFault makes the probe misbehave (device.FaultNone or empty: healthy).
	ProbeFault device.Fault
	// Faults of the circuit and its link.
	Faults []Fault
	// FaultEvery: every FaultEvery-th R command is hit by Faults (0 means 3).
	FaultEvery int
	// Now is the model clock: the instant whose river a reading shows. Nil means time.Now;
	// a fixed instant gives the same reading every time.
	Now func() time.Time
	// Origin is when a probe fault sets in (a drift starts, a stuck value freezes); before
	// it the probe is healthy. Zero means when the simulator is created.
	Origin time.Time
	// Plumes are discharges upstream that the river carries past the station.
	Plumes []device.Plume
	// Firmware is the version reported by i (default 2.16).
	Firmware string
	// OKOff starts the circuit with response codes off, as after *OK,0.
	OKOff bool
	// Continuous starts the circuit in continuous mode (C,1), as circuits leave the factory.
	Continuous bool
}

// circuit is what differs between the EZO circuit types.
type circuit struct {
	name     string        // as reported by i
	readTime time.Duration // how long a reading takes (data sheets; science §5)
	outputs  []string      // selectable outputs in reply order; nil: one fixed value
	tempComp bool          // takes T,<°C>
	defTemp  float64       // temperature compensation at power-up, °C
}

var (
	phCircuit = circuit{name: "pH", readTime: 900 * time.Millisecond, tempComp: true, defTemp: 25}
	doCircuit = circuit{name: "DO", readTime: 600 * time.Millisecond, tempComp: true, defTemp: 20,
		outputs: []string{"mg", "%"}}
	ecCircuit = circuit{name: "EC", readTime: 600 * time.Millisecond, tempComp: true, defTemp: 25,
		outputs: []string{"EC", "TDS", "S", "SG"}}
	rtdCircuit = circuit{name: "RTD", readTime: 600 * time.Millisecond}

	circuits = map[telemetry.Param]circuit{
		telemetry.PH: phCircuit, telemetry.DO: doCircuit, telemetry.Conductivity: ecCircuit,
		telemetry.TDS: ecCircuit, telemetry.Temp: rtdCircuit,
	}
)

// Params lists the parameters an EZO circuit can measure here.
func Params() []telemetry.Param {
	return []telemetry.Param{telemetry.PH, telemetry.DO, telemetry.Conductivity, telemetry.TDS, telemetry.Temp}
}

// Timing of everything but a reading (data sheets): most commands take 300 ms, a circuit
// boots in about a second.
const (
	commandTime = 300 * time.Millisecond
	bootTime    = time.Second
	// maxCommand is the longest command line the circuit buffers; longer ones are errors.
	maxCommand = 40
	// FloodBytes is how many bytes FaultFlood sends without a carriage return.
	FloodBytes = 1 << 20
)

// Chunk is part of a reply: Data goes out after the circuit has thought for Wait (device
// time, before any speed-up).
type Chunk struct {
	Wait time.Duration
	Data []byte
}

// Device is one emulated circuit. It is not safe for concurrent use: one goroutine (the
// Emulator's) drives it.
type Device struct {
	cfg     Config
	circ    circuit
	probes  map[telemetry.Param]*device.Probe
	primary telemetry.Param // the parameter of the first output
	reads   int             // R commands so far, for the fault schedule

	// State that survives a reset (EEPROM on a real circuit).
	okOn    bool
	contSec int    // continuous mode period in seconds; 0 = off
	enabled []bool // per output of circ.outputs
	scale   byte   // RTD: c, k or f
	cal     map[string]bool
	name    string
	led     bool

	// State lost on a reset (RAM).
	temp   float64
	asleep bool
	reason string // of the last restart: P power-on, S software, B brown-out, W watchdog
}

// NewDevice returns a powered-up circuit.
func NewDevice(cfg Config) (*Device, error) {
	circ, ok := circuits[cfg.Param]
	if !ok {
		return nil, fmt.Errorf("no EZO circuit measures %q (want one of %s)", cfg.Param, faultNames(Params()))
	}
	if cfg.FaultEvery < 0 {
		return nil, fmt.Errorf("fault every %d: must not be negative", cfg.FaultEvery)
	}
	for _, f := range cfg.Faults {
		if !slices.Contains(Faults(), f) {
			return nil, fmt.Errorf("unknown fault %q", f)
		}
	}
	if cfg.ProbeFault == "" {
		cfg.ProbeFault = device.FaultNone
	}
	if _, err := device.ParseFault(string(cfg.ProbeFault)); err != nil {
		return nil, err
	}
	if cfg.FaultEvery == 0 {
		cfg.FaultEvery = 3
	}
	if cfg.Station == "" {
		cfg.Station = "MH-PUNE-001"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Firmware == "" {
		cfg.Firmware = "2.16"
	}
	d := &Device{cfg: cfg, circ: circ, probes: map[telemetry.Param]*device.Probe{}, primary: cfg.Param,
		okOn: !cfg.OKOff, scale: 'c', cal: map[string]bool{}}
	if cfg.Continuous {
		d.contSec = 1
	}
	model := device.New(device.ForStation(cfg.Station), cfg.Seed).WithPlumes(cfg.Plumes...)
	origin := cfg.Now()
	if !cfg.Origin.IsZero() {
		origin = cfg.Origin
	}
	params := []telemetry.Param{cfg.Param}
	if circ.name == "EC" {
		params = []telemetry.Param{telemetry.Conductivity, telemetry.TDS}
		d.primary = telemetry.Conductivity
	}
	for _, p := range params {
		d.probes[p] = device.NewProbe(model, p, 0, cfg.ProbeFault, origin)
	}
	d.enabled = make([]bool, len(circ.outputs))
	for i := range d.enabled {
		// DO reports mg/L only until O,%,1; EC reports everything, as shipped.
		d.enabled[i] = circ.name == "EC" || i == 0
	}
	d.powerUp("P")
	return d, nil
}

// Circuit returns the circuit type as i reports it: pH, DO, EC or RTD.
func (d *Device) Circuit() string { return d.circ.name }

// ReadTime returns how long the circuit takes for a reading.
func (d *Device) ReadTime() time.Duration { return d.circ.readTime }

// Unplugged reports whether the configuration asks for periodic unplugging.
func (d *Device) Unplugged() bool { return slices.Contains(d.cfg.Faults, FaultUnplug) }

func (d *Device) has(f Fault) bool { return slices.Contains(d.cfg.Faults, f) }

// powerUp clears what a restart clears.
func (d *Device) powerUp(reason string) {
	d.temp = d.circ.defTemp
	d.asleep = false
	d.reason = reason
}

// PowerOn is the circuit being plugged in: RAM state is cleared and it announces *RE.
func (d *Device) PowerOn() []Chunk {
	d.powerUp("P")
	return []Chunk{{Wait: bootTime, Data: line("*RE")}}
}

// ContinuousPeriod returns the period of continuous readings, 0 when the mode is off or
// the circuit sleeps.
func (d *Device) ContinuousPeriod() time.Duration {
	if d.asleep || d.has(FaultMute) {
		return 0
	}
	return time.Duration(d.contSec) * time.Second
}

// Tick is one continuous-mode reading (nil when the mode is off or the probe drops out).
// Continuous readings come without *OK.
func (d *Device) Tick() []Chunk {
	if d.ContinuousPeriod() == 0 {
		return nil
	}
	data, ok := d.reading()
	if !ok {
		return nil
	}
	return []Chunk{{Data: data}}
}

// line terminates s with a carriage return.
func line(s string) []byte { return []byte(s + "\r") }

// Handle answers one command line (without its carriage return).
func (d *Device) Handle(cmd []byte) []Chunk {
	if d.has(FaultMute) {
		return nil
	}
	if d.asleep {
		// Any character wakes the circuit; the command itself is lost.
		d.asleep = false
		return []Chunk{{Data: line("*WA")}}
	}
	if len(cmd) > maxCommand || !printable(cmd) {
		return d.er()
	}
	c := strings.ToLower(string(cmd))
	switch {
	case c == "r":
		return d.read()
	case c == "i":
		return d.ok(commandTime, "?i,"+d.circ.name+","+d.cfg.Firmware)
	case c == "status":
		return d.ok(commandTime, "?Status,"+d.reason+","+d.voltage())
	case c == "sleep":
		d.asleep = true
		return []Chunk{{Wait: commandTime, Data: line("*SL")}}
	case c == "find", c == "l,1", c == "l,0":
		d.led = c != "l,0"
		return d.ok(commandTime)
	case c == "l,?":
		return d.ok(commandTime, "?L,"+boolDigit(d.led))
	case c == "factory":
		d.okOn, d.contSec, d.scale, d.name = true, 1, 'c', ""
		clear(d.cal)
		for i := range d.enabled {
			d.enabled[i] = d.circ.name == "EC" || i == 0
		}
		d.powerUp("S")
		return []Chunk{{Wait: commandTime, Data: line("*RS")}, {Wait: bootTime, Data: line("*RE")}}
	case strings.HasPrefix(c, "*ok,"):
		return d.okCommand(c[len("*ok,"):])
	case strings.HasPrefix(c, "c,"):
		return d.continuous(c[len("c,"):])
	case strings.HasPrefix(c, "t,"):
		return d.tempComp(c[len("t,"):])
	case c == "cal" || strings.HasPrefix(c, "cal,"):
		return d.calibrate(strings.TrimPrefix(strings.TrimPrefix(c, "cal"), ","))
	case strings.HasPrefix(c, "o,"):
		return d.output(string(cmd[len("o,"):]))
	case strings.HasPrefix(c, "s,") && d.circ.name == "RTD":
		return d.scaleCommand(c[len("s,"):])
	case strings.HasPrefix(c, "name,"):
		arg := string(cmd[len("name,"):])
		if arg == "?" {
			return d.ok(commandTime, "?Name,"+d.name)
		}
		if len(arg) > 16 {
			return d.er()
		}
		d.name = arg
		return d.ok(commandTime)
	}
	return d.er()
}

// ok is a reply of data lines followed by *OK when response codes are on.
func (d *Device) ok(wait time.Duration, data ...string) []Chunk {
	var b []byte
	for _, s := range data {
		b = append(b, line(s)...)
	}
	if d.okOn {
		b = append(b, line("*OK")...)
	}
	if len(b) == 0 {
		return nil
	}
	return []Chunk{{Wait: wait, Data: b}}
}

// er is the reply to a command the circuit does not understand. It is sent whatever the
// response-code setting: *OK,0 silences only *OK.
func (d *Device) er() []Chunk { return []Chunk{{Wait: commandTime, Data: line("*ER")}} }

func (d *Device) voltage() string {
	switch {
	case d.has(FaultOV):
		return "5.61"
	case d.has(FaultUV):
		return "3.02"
	}
	return "5.04"
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func (d *Device) okCommand(arg string) []Chunk {
	switch arg {
	case "?":
		return d.ok(commandTime, "?*OK,"+boolDigit(d.okOn))
	case "0":
		d.okOn = false
		return nil
	case "1":
		d.okOn = true
		return d.ok(commandTime)
	}
	return d.er()
}

func (d *Device) continuous(arg string) []Chunk {
	if arg == "?" {
		return d.ok(commandTime, "?C,"+strconv.Itoa(d.contSec))
	}
	n, err := strconv.Atoi(arg)
	if err != nil || n < 0 || n > 99 {
		return d.er()
	}
	d.contSec = n
	return d.ok(commandTime)
}

func (d *Device) tempComp(arg string) []Chunk {
	if !d.circ.tempComp {
		return d.er()
	}
	if arg == "?" {
		return d.ok(commandTime, "?T,"+strconv.FormatFloat(d.temp, 'f', 1, 64))
	}
	t, err := strconv.ParseFloat(arg, 64)
	if err != nil || math.IsNaN(t) || t < -126 || t > 1254 {
		return d.er()
	}
	d.temp = t
	return d.ok(commandTime)
}

// calibrate handles Cal[,…] (arg is what follows "Cal,", lower case).
func (d *Device) calibrate(arg string) []Chunk {
	wait := d.circ.readTime
	if arg == "?" {
		return d.ok(commandTime, "?Cal,"+strconv.Itoa(d.calPoints()))
	}
	if arg == "clear" {
		clear(d.cal)
		return d.ok(commandTime)
	}
	point, value, hasValue := strings.Cut(arg, ",")
	if hasValue {
		if _, err := strconv.ParseFloat(value, 64); err != nil {
			return d.er()
		}
	}
	switch d.circ.name {
	case "pH":
		if !hasValue || (point != "mid" && point != "low" && point != "high") {
			return d.er()
		}
		if point == "mid" {
			clear(d.cal) // a new midpoint invalidates the slope
		}
		d.cal[point] = true
	case "DO":
		switch {
		case arg == "": // atmospheric oxygen
			d.cal["atm"] = true
		case arg == "0":
			d.cal["zero"] = true
		default:
			return d.er()
		}
	case "EC":
		switch {
		case arg == "dry":
			d.cal["dry"] = true
		case !hasValue && point != "":
			if _, err := strconv.ParseFloat(point, 64); err != nil {
				return d.er()
			}
			clear(d.cal)
			d.cal["one"] = true
		case hasValue && (point == "low" || point == "high"):
			d.cal[point] = true
		default:
			return d.er()
		}
	case "RTD":
		if arg == "" || hasValue {
			return d.er()
		}
		if _, err := strconv.ParseFloat(point, 64); err != nil {
			return d.er()
		}
		d.cal["one"] = true
	}
	return d.ok(wait)
}

func (d *Device) calPoints() int {
	n := 0
	for k, v := range d.cal {
		if v && k != "dry" {
			n++
		}
	}
	return n
}

// output handles O,? and O,<name>,<0|1> of DO and EC circuits (arg keeps its case).
func (d *Device) output(arg string) []Chunk {
	if d.circ.outputs == nil {
		return d.er()
	}
	if arg == "?" {
		var on []string
		for i, name := range d.circ.outputs {
			if d.enabled[i] {
				on = append(on, name)
			}
		}
		return d.ok(commandTime, "?O,"+strings.Join(on, ","))
	}
	name, state, _ := strings.Cut(arg, ",")
	i := slices.IndexFunc(d.circ.outputs, func(o string) bool { return strings.EqualFold(o, name) })
	if i < 0 || (state != "0" && state != "1") {
		return d.er()
	}
	d.enabled[i] = state == "1"
	if !slices.Contains(d.enabled, true) {
		d.enabled[i] = true // a circuit always reports something
		return d.er()
	}
	return d.ok(commandTime)
}

func (d *Device) scaleCommand(arg string) []Chunk {
	switch arg {
	case "?":
		return d.ok(commandTime, "?S,"+string(d.scale))
	case "c", "k", "f":
		d.scale = arg[0]
		return d.ok(commandTime)
	}
	return d.er()
}

// read answers R, misbehaving as configured.
func (d *Device) read() []Chunk {
	d.reads++
	wait := d.circ.readTime
	if d.reads%d.cfg.FaultEvery == 0 {
		for _, f := range Faults() {
			if !d.has(f) {
				continue
			}
			switch f {
			case FaultER:
				return []Chunk{{Wait: wait, Data: line("*ER")}}
			case FaultReset:
				d.powerUp("B")
				return []Chunk{{Wait: wait, Data: line("*RS")}, {Wait: bootTime, Data: line("*RE")}}
			case FaultSleep:
				d.asleep = true
				return []Chunk{{Wait: wait, Data: line("*SL")}}
			case FaultFlood:
				flood := make([]byte, FloodBytes)
				for i := range flood {
					flood[i] = '0' + byte(i%10)
				}
				rest := d.readReply("*OK")
				if rest == nil {
					return []Chunk{{Wait: wait, Data: flood}}
				}
				return []Chunk{{Wait: wait, Data: flood}, {Data: append([]byte{'\r'}, rest...)}}
			case FaultOV:
				return d.chunk(wait, d.readReply("*OV"))
			case FaultUV:
				return d.chunk(wait, d.readReply("*UV"))
			}
		}
	}
	return d.chunk(wait, d.readReply("*OK"))
}

func (d *Device) chunk(wait time.Duration, data []byte) []Chunk {
	if data == nil {
		return nil
	}
	return []Chunk{{Wait: wait, Data: data}}
}

// readReply is a reading followed by code; *OK only when response codes are on. Nil when
// the probe drops out (no reply at all).
func (d *Device) readReply(code string) []byte {
	data, ok := d.reading()
	if !ok {
		return nil
	}
	if code != "*OK" || d.okOn {
		data = append(data, line(code)...)
	}
	return data
}

// reading is one reading line (with its carriage return), or garbage when the probe
// produces garbage; ok is false on a dropout.
func (d *Device) reading() ([]byte, bool) {
	t := d.cfg.Now()
	samples := map[telemetry.Param]device.Sample{}
	for p, pr := range d.probes {
		samples[p] = pr.Read(t)
	}
	s := samples[d.primary]
	if !s.OK {
		return nil, false
	}
	if s.Garbage {
		return garbage(s.Nonce, s.Value), true
	}
	var fields []string
	switch d.circ.name {
	case "pH":
		fields = []string{strconv.FormatFloat(s.Value, 'f', 3, 64)}
	case "RTD":
		v := s.Value
		switch d.scale {
		case 'k':
			v += 273.15
		case 'f':
			v = v*9/5 + 32
		}
		fields = []string{strconv.FormatFloat(v, 'f', 3, 64)}
	case "DO":
		if d.enabled[0] {
			fields = append(fields, strconv.FormatFloat(s.Value, 'f', 2, 64))
		}
		if d.enabled[1] {
			fields = append(fields, strconv.FormatFloat(100*s.Value/saturation(d.temp), 'f', 1, 64))
		}
	case "EC":
		ec, tds := s.Value, samples[telemetry.TDS].Value
		psu := 0.4665 * math.Pow(ec/1000, 1.0878) // practical salinity, a common approximation
		values := []string{
			strconv.FormatFloat(ec, 'f', -1, 64),
			strconv.FormatFloat(tds, 'f', -1, 64),
			strconv.FormatFloat(psu, 'f', 2, 64),
			strconv.FormatFloat(1+0.00075*psu, 'f', 3, 64),
		}
		for i, v := range values {
			if d.enabled[i] {
				fields = append(fields, v)
			}
		}
	}
	return line(strings.Join(fields, ",")), true
}

// saturation is the oxygen solubility of fresh water at 1 atm, mg/L (Benson & Krause
// 1984, APHA 4500-O), for the % saturation output.
func saturation(tempC float64) float64 {
	tk := tempC + 273.15
	return math.Exp(-139.34411 + 1.575701e5/tk - 6.642308e7/(tk*tk) +
		1.243800e10/(tk*tk*tk) - 8.621949e11/(tk*tk*tk*tk))
}

// garbage is a corrupted reading, chosen by nonce: line noise, a corrupted digit, broken
// UTF-8, or noise before a good reading with no carriage return between. Every kind
// contains a byte outside printable ASCII, so a receiver can tell it from a reading.
func garbage(nonce uint64, v float64) []byte {
	good := strconv.FormatFloat(v, 'f', 2, 64)
	switch nonce % 4 {
	case 0:
		b := make([]byte, 5+(nonce>>8)%16)
		for i := range b {
			b[i] = byte(nonce >> (i % 8 * 8))
			if b[i] == '\r' {
				b[i] = 0xff
			}
		}
		b[0] = 0x00
		return append(b, '\r')
	case 1:
		b := []byte(good)
		b[1] = 0xb8 // a flipped high bit
		return append(b, '\r')
	case 2:
		return []byte("\xc3\x28\xa0\xa1" + good + "\r")
	default:
		return []byte("\x00\xff\xfe" + good + "\r")
	}
}

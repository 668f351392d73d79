package ezo

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// t0 is the frozen model time of the tests (and of the captured frames).
var t0 = time.Date(2025, 3, 1, 6, 30, 0, 0, time.UTC)

func frozen() time.Time { return t0 }

func newDevice(t *testing.T, cfg Config) *Device {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = frozen
	}
	d, err := NewDevice(cfg)
	require.NoError(t, err)
	return d
}

// reply joins what the device sends for cmd.
func reply(d *Device, cmd string) string {
	var b bytes.Buffer
	for _, c := range d.Handle([]byte(cmd)) {
		b.Write(c.Data)
	}
	return b.String()
}

// modelValue is what the river model says a probe of p reads at t0, for the station and
// seed a zero Config means (MH-PUNE-001, seed 0).
func modelValue(p telemetry.Param) float64 {
	m := device.New(device.ForStation("MH-PUNE-001"), 0)
	return device.NewProbe(m, p, 0, device.FaultNone, t0).Read(t0).Value
}

func TestCommands(t *testing.T) {
	ph := strconv.FormatFloat(modelValue(telemetry.PH), 'f', 3, 64)
	do := strconv.FormatFloat(modelValue(telemetry.DO), 'f', 2, 64)
	tests := []struct {
		name  string
		param telemetry.Param
		cfg   func(*Config)
		cmds  []string
		want  []string // reply per command
	}{
		{"pH basics", telemetry.PH, nil,
			[]string{"i", "I", "R", "r", "Status", "*OK,?", "C,?", "T,?", "L,?", "Find", "Name,?"},
			[]string{"?i,pH,2.16\r*OK\r", "?i,pH,2.16\r*OK\r", ph + "\r*OK\r", ph + "\r*OK\r",
				"?Status,P,5.04\r*OK\r", "?*OK,1\r*OK\r", "?C,0\r*OK\r", "?T,25.0\r*OK\r", "?L,0\r*OK\r",
				"*OK\r", "?Name,\r*OK\r"}},
		{"temperature compensation", telemetry.PH, nil,
			[]string{"T,24.3", "T,?", "T,abc", "T,"},
			[]string{"*OK\r", "?T,24.3\r*OK\r", "*ER\r", "*ER\r"}},
		{"pH calibration", telemetry.PH, nil,
			[]string{"Cal,?", "Cal,mid,7.00", "Cal,?", "Cal,low,4.00", "Cal,high,10.00", "Cal,?",
				"Cal,mid,7.00", "Cal,?", "Cal,clear", "Cal,?", "Cal,mid", "Cal,middle,7", "Cal"},
			[]string{"?Cal,0\r*OK\r", "*OK\r", "?Cal,1\r*OK\r", "*OK\r", "*OK\r", "?Cal,3\r*OK\r",
				"*OK\r", "?Cal,1\r*OK\r", "*OK\r", "?Cal,0\r*OK\r", "*ER\r", "*ER\r", "*ER\r"}},
		{"response codes off", telemetry.PH, nil,
			[]string{"*OK,0", "R", "i", "T,20.0", "Foo", "*OK,?", "*OK,1", "i"},
			[]string{"", ph + "\r", "?i,pH,2.16\r", "", "*ER\r", "?*OK,0\r", "*OK\r", "?i,pH,2.16\r*OK\r"}},
		{"starts with codes off", telemetry.PH, func(c *Config) { c.OKOff = true },
			[]string{"R", "*OK,?"}, []string{ph + "\r", "?*OK,0\r"}},
		{"continuous mode", telemetry.PH, func(c *Config) { c.Continuous = true },
			[]string{"C,?", "C,0", "C,?", "C,5", "C,?", "C,100", "C,x"},
			[]string{"?C,1\r*OK\r", "*OK\r", "?C,0\r*OK\r", "*OK\r", "?C,5\r*OK\r", "*ER\r", "*ER\r"}},
		{"sleep and wake", telemetry.PH, nil,
			[]string{"Sleep", "R", "R"}, []string{"*SL\r", "*WA\r", ph + "\r*OK\r"}},
		{"unknown commands", telemetry.PH, nil,
			[]string{"", "Foo", "R,2", "O,?", "S,?", "\x01R", "Name," + strings.Repeat("x", 17), strings.Repeat("R", 41)},
			[]string{"*ER\r", "*ER\r", "*ER\r", "*ER\r", "*ER\r", "*ER\r", "*ER\r", "*ER\r"}},
		{"factory reset", telemetry.PH, nil,
			[]string{"*OK,0", "Cal,mid,7.00", "Factory", "*OK,?", "Cal,?", "C,?"},
			[]string{"", "", "*RS\r*RE\r", "?*OK,1\r*OK\r", "?Cal,0\r*OK\r", "?C,1\r*OK\r"}},
		{"DO outputs and calibration", telemetry.DO, nil,
			[]string{"i", "O,?", "R", "Cal", "Cal,0", "Cal,?", "Cal,1", "O,mg,0", "O,%,0", "O,ppm,1"},
			[]string{"?i,DO,2.16\r*OK\r", "?O,mg\r*OK\r", do + "\r*OK\r", "*OK\r", "*OK\r",
				"?Cal,2\r*OK\r", "*ER\r", "*ER\r", "*OK\r", "*ER\r"}},
		{"EC", telemetry.Conductivity, nil,
			[]string{"i", "O,?", "O,S,0", "O,SG,0", "O,TDS,0", "O,?", "Cal,dry", "Cal,12880", "Cal,?",
				"Cal,low,1413", "Cal,high,12880", "Cal,?", "Cal,low"},
			[]string{"?i,EC,2.16\r*OK\r", "?O,EC,TDS,S,SG\r*OK\r", "*OK\r", "*OK\r", "*OK\r", "?O,EC\r*OK\r",
				"*OK\r", "*OK\r", "?Cal,1\r*OK\r", "*OK\r", "*OK\r", "?Cal,3\r*OK\r", "*ER\r"}},
		{"RTD", telemetry.Temp, nil,
			[]string{"i", "T,25.0", "O,?", "S,?", "S,f", "S,?", "S,x", "Cal,100.00", "Cal,?"},
			[]string{"?i,RTD,2.16\r*OK\r", "*ER\r", "*ER\r", "?S,c\r*OK\r", "*OK\r", "?S,f\r*OK\r", "*ER\r",
				"*OK\r", "?Cal,1\r*OK\r"}},
		{"mute", telemetry.PH, func(c *Config) { c.Faults = []Fault{FaultMute} },
			[]string{"i", "R"}, []string{"", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Len(t, tt.want, len(tt.cmds), "one reply per command")
			cfg := Config{Param: tt.param}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			d := newDevice(t, cfg)
			for i, cmd := range tt.cmds {
				assert.Equal(t, tt.want[i], reply(d, cmd), "reply to %q (command %d)", cmd, i)
			}
		})
	}
}

func TestReadingsFollowTheModel(t *testing.T) {
	tests := []struct {
		param telemetry.Param
		want  func() string
	}{
		{telemetry.PH, func() string { return strconv.FormatFloat(modelValue(telemetry.PH), 'f', 3, 64) }},
		{telemetry.DO, func() string { return strconv.FormatFloat(modelValue(telemetry.DO), 'f', 2, 64) }},
		{telemetry.Temp, func() string { return strconv.FormatFloat(modelValue(telemetry.Temp), 'f', 3, 64) }},
		{telemetry.Conductivity, func() string {
			return strconv.FormatFloat(modelValue(telemetry.Conductivity), 'f', -1, 64) + "," +
				strconv.FormatFloat(modelValue(telemetry.TDS), 'f', -1, 64)
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.param), func(t *testing.T) {
			d := newDevice(t, Config{Param: tt.param})
			got := reply(d, "R")
			assert.True(t, strings.HasPrefix(got, tt.want()), "R → %q, want it to start with the model's %q", got, tt.want())
			assert.True(t, strings.HasSuffix(got, "\r*OK\r"), "R → %q ends with *OK", got)
		})
	}
	t.Run("the clock moves the river", func(t *testing.T) {
		now := t0
		d := newDevice(t, Config{Param: telemetry.DO, Now: func() time.Time { return now }})
		first := reply(d, "R")
		now = now.Add(6 * time.Hour)
		assert.NotEqual(t, first, reply(d, "R"))
	})
}

func TestDOSaturationOutput(t *testing.T) {
	d := newDevice(t, Config{Param: telemetry.DO})
	require.Equal(t, "*OK\r", reply(d, "O,%,1"))
	require.Equal(t, "*OK\r", reply(d, "T,20.0"))
	fields := strings.Split(strings.TrimSuffix(reply(d, "R"), "\r*OK\r"), ",")
	require.Len(t, fields, 2, "mg/L and %%")
	mg, err := strconv.ParseFloat(fields[0], 64)
	require.NoError(t, err)
	pct, err := strconv.ParseFloat(fields[1], 64)
	require.NoError(t, err)
	// C* at 20 °C and 1 atm is 9.0924 mg/L (science §1).
	assert.InDelta(t, 100*mg/9.0924, pct, 0.06)
}

func TestFaults(t *testing.T) {
	ph := strconv.FormatFloat(modelValue(telemetry.PH), 'f', 3, 64)
	tests := []struct {
		fault Fault
		third string // the reply to every third R
	}{
		{FaultER, "*ER\r"},
		{FaultReset, "*RS\r*RE\r"},
		{FaultSleep, "*SL\r"},
		{FaultOV, ph + "\r*OV\r"},
		{FaultUV, ph + "\r*UV\r"},
	}
	for _, tt := range tests {
		t.Run(string(tt.fault), func(t *testing.T) {
			d := newDevice(t, Config{Param: telemetry.PH, Faults: []Fault{tt.fault}})
			assert.Equal(t, ph+"\r*OK\r", reply(d, "R"))
			assert.Equal(t, ph+"\r*OK\r", reply(d, "R"))
			assert.Equal(t, tt.third, reply(d, "R"))
		})
	}
	t.Run("reset forgets temperature compensation", func(t *testing.T) {
		d := newDevice(t, Config{Param: telemetry.PH, Faults: []Fault{FaultReset}, FaultEvery: 1})
		reply(d, "T,12.0")
		chunks := d.Handle([]byte("R"))
		require.Len(t, chunks, 2)
		assert.Equal(t, bootTime, chunks[1].Wait, "*RE comes after booting")
		assert.Equal(t, "?T,25.0\r*OK\r", reply(d, "T,?"))
	})
	t.Run("flood", func(t *testing.T) {
		d := newDevice(t, Config{Param: telemetry.PH, Faults: []Fault{FaultFlood}, FaultEvery: 1})
		chunks := d.Handle([]byte("R"))
		require.Len(t, chunks, 2)
		assert.Len(t, chunks[0].Data, FloodBytes)
		assert.NotContains(t, string(chunks[0].Data), "\r")
		assert.Equal(t, "\r"+ph+"\r*OK\r", string(chunks[1].Data))
	})
	t.Run("precedence", func(t *testing.T) {
		d := newDevice(t, Config{Param: telemetry.PH, Faults: []Fault{FaultOV, FaultER}, FaultEvery: 1})
		assert.Equal(t, "*ER\r", reply(d, "R"))
	})
	t.Run("probe garbage and dropouts", func(t *testing.T) {
		for _, pf := range []device.Fault{device.FaultGarbage, device.FaultDropout} {
			now := t0
			d := newDevice(t, Config{Param: telemetry.PH, ProbeFault: pf, Now: func() time.Time { return now }})
			var odd int
			for range 300 {
				now = now.Add(time.Second)
				got := reply(d, "R")
				switch {
				case pf == device.FaultDropout && got == "":
					odd++
				case pf == device.FaultGarbage && !printable(bytes.TrimSuffix([]byte(strings.TrimSuffix(got, "*OK\r")), []byte("\r"))):
					odd++
					assert.True(t, strings.HasSuffix(got, "\r*OK\r"), "the circuit thinks it answered: %q", got)
				default:
					_, err := strconv.ParseFloat(strings.TrimSuffix(got, "\r*OK\r"), 64)
					assert.NoError(t, err, "a good reading: %q", got)
				}
			}
			assert.InDelta(t, 100, odd, 60, "%s: about a third of 300 readings misbehave, got %d", pf, odd)
		}
	})
}

func TestContinuousTicks(t *testing.T) {
	d := newDevice(t, Config{Param: telemetry.PH, Continuous: true})
	assert.Equal(t, time.Second, d.ContinuousPeriod())
	ticks := d.Tick()
	require.Len(t, ticks, 1)
	assert.Equal(t, strconv.FormatFloat(modelValue(telemetry.PH), 'f', 3, 64)+"\r", string(ticks[0].Data), "no *OK in continuous mode")
	reply(d, "Sleep")
	assert.Zero(t, d.ContinuousPeriod(), "asleep")
	reply(d, "R") // wakes
	reply(d, "C,0")
	assert.Zero(t, d.ContinuousPeriod())
	assert.Nil(t, d.Tick())
}

func TestReplyTimes(t *testing.T) {
	for _, tt := range []struct {
		param telemetry.Param
		want  time.Duration
	}{{telemetry.PH, 900 * time.Millisecond}, {telemetry.DO, 600 * time.Millisecond}} {
		d := newDevice(t, Config{Param: tt.param})
		chunks := d.Handle([]byte("R"))
		require.Len(t, chunks, 1)
		assert.Equal(t, tt.want, chunks[0].Wait, "%s reading time (science §5)", tt.param)
		assert.Equal(t, commandTime, d.Handle([]byte("i"))[0].Wait)
	}
}

func TestParseFaults(t *testing.T) {
	tests := []struct {
		in      string
		probe   device.Fault
		faults  []Fault
		wantErr string
	}{
		{"", device.FaultNone, nil, ""},
		{"none", device.FaultNone, nil, ""},
		{"garbage", device.FaultGarbage, nil, ""},
		{"garbage, ER ,unplug", device.FaultGarbage, []Fault{FaultER, FaultUnplug}, ""},
		{"ov,uv,reset,sleep,flood,mute", device.FaultNone, []Fault{FaultOV, FaultUV, FaultReset, FaultSleep, FaultFlood, FaultMute}, ""},
		{"noise,drift", "", nil, "one probe fault at a time"},
		{"er,er", "", nil, "fault er listed twice"},
		{"fire", "", nil, `unknown fault "fire"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			probe, faults, err := ParseFaults(tt.in)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.probe, probe)
			assert.Equal(t, tt.faults, faults)
		})
	}
}

func TestNewDeviceRejects(t *testing.T) {
	for _, cfg := range []Config{
		{Param: telemetry.Turbidity},
		{Param: telemetry.PH, FaultEvery: -1},
		{Param: telemetry.PH, Faults: []Fault{"fire"}},
		{Param: telemetry.PH, ProbeFault: "fire"},
	} {
		_, err := NewDevice(cfg)
		assert.Error(t, err, "%+v", cfg)
	}
}

// Whatever arrives on the line, the circuit answers with whole lines of printable ASCII
// (a probe's garbage aside) and never panics.
func FuzzHandle(f *testing.F) {
	for _, s := range []string{"R", "i", "Cal,mid,7.00", "T,25.3", "*OK,0", "O,%,1", "C,1", "S,k",
		"Name,probe", "Sleep", "", "\xff\x00", strings.Repeat("R", 50)} {
		f.Add([]byte(s), uint8(0))
	}
	params := Params()
	f.Fuzz(func(t *testing.T, cmd []byte, which uint8) {
		d := newDevice(t, Config{Param: params[int(which)%len(params)]})
		for range 2 { // the second time in whatever state the first left
			for _, c := range d.Handle(cmd) {
				if len(c.Data) == 0 || c.Data[len(c.Data)-1] != '\r' {
					t.Fatalf("reply to %q is not whole lines: %q", cmd, c.Data)
				}
				if !printable(bytes.ReplaceAll(c.Data, []byte("\r"), nil)) {
					t.Fatalf("reply to %q is not printable: %q", cmd, c.Data)
				}
			}
			for _, c := range d.Tick() {
				if !bytes.HasSuffix(c.Data, []byte("\r")) {
					t.Fatalf("continuous reading %q", c.Data)
				}
			}
		}
	})
}

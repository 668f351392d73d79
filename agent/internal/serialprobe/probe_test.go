package serialprobe

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/probestatus"
	"github.com/purehealth/purehealth/agent/internal/probetest"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Readings of every circuit type arrive with the model's values (as captured from the
// simulator), the canonical parameter and the circuit's unit.
func TestReadsFollowTheModel(t *testing.T) {
	tests := []struct {
		param   telemetry.Param
		capture string
		field   int
		unit    string
		circuit string
	}{
		{telemetry.PH, "ph_session", 0, "", "pH"},
		{telemetry.DO, "do_session", 0, "mg/L", "DO"},
		{telemetry.Conductivity, "ec_session", 0, "uS/cm", "EC"},
		{telemetry.TDS, "ec_session", 1, "ppm", "EC"},
		{telemetry.Temp, "rtd_session", 0, "degC", "RTD"},
	}
	for _, tt := range tests {
		t.Run(string(tt.param), func(t *testing.T) {
			want := capturedReading(t, tt.capture, tt.field)
			link := filepath.Join(t.TempDir(), "probe")
			startSim(t, link, "--param", string(tt.param), "--time", frozenAt)
			h := newHarness(t, testConfig(link, tt.param))
			start := time.Now()
			h.run(t)
			eventually(t, func() bool { return h.sink.len() >= 3 }, "three readings")
			for _, o := range h.sink.observations() {
				assert.Equal(t, want, o.Value, "the model's value")
				assert.Equal(t, string(tt.param), o.Param)
				assert.Equal(t, tt.unit, o.Unit)
				assert.Equal(t, "MH-TEST-001", o.Station)
				assert.Equal(t, h.cfg.Name, o.Sensor)
				assert.Equal(t, telemetry.SourceSensor, o.Source)
				assert.False(t, o.ProbeError)
				assert.False(t, o.Time.Before(start), "stamped with the receive time")
				_, _, _, err := telemetry.Normalize(o.Param, o.Value, o.Unit)
				assert.NoError(t, err, "the pipeline accepts the unit")
			}
			st := h.probe.Status()
			assert.True(t, st.Open)
			assert.True(t, st.Identified)
			assert.Equal(t, tt.circuit, st.Circuit)
			assert.Equal(t, "2.16", st.Firmware)
			assert.Equal(t, "0", st.Calibration)
			assert.Equal(t, "P", st.RestartReason)
			assert.True(t, st.ResponseCodes)
			assert.False(t, st.WrongCircuit)
			assert.GreaterOrEqual(t, st.Readings, uint64(3))
			assert.Empty(t, st.Errors, "a healthy probe counts no errors")
		})
	}
}

// Each response code the circuit can send in place of a plain reading.
func TestResponseCodes(t *testing.T) {
	tests := []struct {
		fault     string
		kind      string // counted in Health
		probeErr  bool   // the reading is kept, flagged
		noReading bool
	}{
		{fault: "er", kind: "er", noReading: true},
		{fault: "ov", kind: "ov", probeErr: true},
		{fault: "uv", kind: "uv", probeErr: true},
		{fault: "reset", kind: "reset", noReading: true},
		{fault: "sleep", kind: "", noReading: false}, // asked again: the reading comes
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			link := filepath.Join(t.TempDir(), "probe")
			s := startSim(t, link, "--param", "ph", "--fault", tt.fault, "--fault-every", "2")
			h := newHarness(t, testConfig(link, telemetry.PH))
			h.run(t)
			eventually(t, func() bool { return count(s.commands(t), "R") >= 8 }, "eight readings asked for")
			st := h.probe.Status()
			obs := h.sink.observations()
			flagged := 0
			for _, o := range obs {
				if o.ProbeError {
					flagged++
				}
			}
			if tt.kind != "" {
				assert.Positive(t, st.ErrorsByKind[tt.kind], "counted as %s: %v", tt.kind, st.ErrorsByKind)
				assert.Equal(t, st.ErrorsByKind[tt.kind], h.sensor(t).ErrorsByKind[tt.kind], "the same count in Health")
			}
			if tt.probeErr {
				assert.Positive(t, flagged, "readings taken with a bad supply are kept, flagged")
				assert.Less(t, flagged, len(obs), "the others are not flagged")
				// Counted just before it is stored: one may be between the two looks.
				assert.InDelta(t, flagged, st.ErrorsByKind[tt.kind], 1)
			} else {
				assert.Zero(t, flagged)
			}
			assert.NotEmpty(t, obs, "readings go on between faults")
			if tt.noReading {
				assert.Less(t, len(obs), count(s.commands(t), "R"), "a failed reading stores nothing")
			}
			switch tt.fault {
			case "reset":
				// Every reset is followed by a new identification.
				assert.GreaterOrEqual(t, count(s.commands(t), "i"), 2)
				resets := st.ErrorsByKind["reset"]
				assert.LessOrEqual(t, resets, uint64(count(s.commands(t), "R")/2), "one count per reset (*RS and *RE are one)")
			case "sleep":
				assert.Zero(t, st.ErrorsByKind["asleep"], "the retry after *WA gets the reading: %v", st.ErrorsByKind)
				assert.Zero(t, st.ErrorsByKind["timeout"])
			}
		})
	}
}

func TestGarbage(t *testing.T) {
	link := filepath.Join(t.TempDir(), "probe")
	startSim(t, link, "--param", "ph", "--fault", "garbage")
	h := newHarness(t, testConfig(link, telemetry.PH))
	h.run(t)
	eventually(t, func() bool { return h.probe.Status().ErrorsByKind["garbage"] >= 3 && h.sink.len() >= 3 },
		"garbage counted and readings between")
	for _, o := range h.sink.observations() {
		assert.True(t, o.Value > 6 && o.Value < 9, "no number made of line noise: %v", o.Value)
	}
	st := h.probe.Status()
	assert.Zero(t, st.ErrorsByKind["timeout"], "garbage ends the exchange at its *OK, not at the timeout")
	assert.Equal(t, st.ErrorsByKind["garbage"], h.sensor(t).ErrorsByKind["garbage"])
}

// A megabyte without a carriage return before a reading: dropped as one overlong line,
// with memory bounded, and the reading after it still taken.
func TestMegabyteWithoutCarriageReturn(t *testing.T) {
	link := filepath.Join(t.TempDir(), "probe")
	s := startSim(t, link, "--param", "ph", "--fault", "flood", "--fault-every", "3")
	cfg := testConfig(link, telemetry.PH)
	cfg.Timeout = 10 * time.Second // a megabyte through a pseudo-terminal under the race detector
	h := newHarness(t, cfg)
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	h.run(t)
	// Waiting on Status only: it allocates little, so the measurement is the probe's.
	eventually(t, func() bool {
		st := h.probe.Status()
		return st.ErrorsByKind["overlong"] >= 2 && st.Readings >= 6
	}, "two floods and a reading after the second")
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20),
		"reading two megabytes of line noise allocated less than one")
	st := h.probe.Status()
	// One R may be in flight between the two looks.
	assert.InDelta(t, count(s.commands(t), "R"), st.Readings, 1, "every reading is taken, the flooded ones too")
	assert.Zero(t, st.ErrorsByKind["timeout"])
}

// A silent circuit: every exchange times out, is counted, and nothing spins.
func TestSilentCircuit(t *testing.T) {
	link := filepath.Join(t.TempDir(), "probe")
	startSim(t, link, "--param", "ph", "--fault", "mute")
	cfg := testConfig(link, telemetry.PH)
	cfg.Timeout = 200 * time.Millisecond
	h := newHarness(t, cfg)
	h.run(t)
	eventually(t, func() bool { return h.probe.Status().ErrorsByKind["timeout"] >= 2 }, "timeouts counted")

	var r0, r1 syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &r0))
	start := time.Now()
	time.Sleep(time.Second)
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &r1))
	cpu := time.Duration(r1.Utime.Nano()+r1.Stime.Nano()-r0.Utime.Nano()-r0.Stime.Nano()) * time.Nanosecond
	// Not a speed check: a read loop that spins on (0, nil) would burn a whole core.
	assert.Less(t, cpu, time.Since(start)/2, "waiting on a silent port costs little CPU")

	st := h.probe.Status()
	assert.True(t, st.Open, "a silent circuit is not an unplugged port")
	assert.False(t, st.Identified)
	assert.Zero(t, h.sink.len())
	assert.Zero(t, st.Reconnects)
	assert.Contains(t, st.LastError, ErrTimeout.Error())
}

// Unplugging: the probe reopens the same configured path when the circuit comes back on a
// new pseudo-terminal behind it, and counts the reconnection.
func TestUnplugAndReplug(t *testing.T) {
	t.Run("simulator restarted", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "probe")
		s := startSim(t, link, "--param", "ph")
		h := newHarness(t, testConfig(link, telemetry.PH))
		h.run(t)
		eventually(t, func() bool { return h.sink.len() >= 2 }, "readings")
		s.stop(t) // closes the terminal: the port hangs up, and the link goes away
		eventually(t, func() bool { return !h.probe.Status().Open }, "the port closed")
		n := h.sink.len()
		time.Sleep(300 * time.Millisecond) // a few backoff rounds against a missing device
		startSim(t, link, "--param", "ph")
		eventually(t, func() bool { return h.sink.len() >= n+2 }, "readings after the replug")
		st := h.probe.Status()
		assert.Equal(t, uint64(1), st.Reconnects)
		assert.Equal(t, uint64(1), h.sensor(t).Reconnects, "counted in Health")
		assert.Equal(t, uint64(1), st.ErrorsByKind["disconnect"])
		assert.True(t, st.Open)
		assert.Equal(t, link, st.Device)
	})
	t.Run("unplug fault", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "probe")
		startSim(t, link, "--param", "do", "--fault", "unplug", "--unplug-every", "700ms", "--unplug-for", "200ms")
		h := newHarness(t, testConfig(link, telemetry.DO))
		h.run(t)
		eventually(t, func() bool { return h.probe.Status().Reconnects >= 2 }, "two reconnections")
		n := h.sink.len()
		eventually(t, func() bool { return h.sink.len() > n }, "readings after them")
		st := h.probe.Status()
		assert.GreaterOrEqual(t, st.ErrorsByKind["disconnect"], uint64(2))
		assert.Equal(t, st.Reconnects, h.sensor(t).Reconnects)
	})
}

// A circuit of another type takes no readings, is reported (Health, Status, log) at every
// interval, refuses calibration, and is replaced by a matching one without a restart.
func TestWrongCircuit(t *testing.T) {
	link := filepath.Join(t.TempDir(), "probe")
	s := startSim(t, link, "--param", "do")
	h := newHarness(t, testConfig(link, telemetry.PH))
	h.run(t)
	eventually(t, func() bool { return h.probe.Status().ErrorsByKind["wrong_circuit"] >= 3 }, "wrong circuit counted at each interval")
	st := h.probe.Status()
	assert.True(t, st.WrongCircuit)
	assert.Equal(t, "DO", st.Circuit)
	assert.Contains(t, st.LastError, "circuit type DO (measures do) answers on "+link+", configured for ph")
	assert.Zero(t, count(s.commands(t), "R"), "no reading is asked of it")
	assert.Zero(t, h.sink.len())
	assert.Equal(t, st.ErrorsByKind["wrong_circuit"], h.sensor(t).ErrorsByKind["wrong_circuit"])

	ex, err := h.probe.Calibrate(t.Context(), "mid", 7)
	assert.ErrorIs(t, err, ErrWrongCircuit)
	assert.NotEmpty(t, ex.Err)
	assert.Zero(t, count(s.commands(t), "Cal,mid,7.00"), "nothing sent")

	s.stop(t)
	startSim(t, link, "--param", "ph")
	eventually(t, func() bool { return h.sink.len() >= 2 }, "readings from the matching circuit")
	assert.False(t, h.probe.Status().WrongCircuit)
}

// calStep is one calibration and what should go over the wire for it.
type calStep struct {
	point      string
	value      float64
	sent, recv []string
	points     string // calibrated points reported by Cal,? afterwards
}

func TestCalibration(t *testing.T) {
	tests := []struct {
		name  string
		param telemetry.Param
		args  []string
		steps []calStep
	}{
		{"pH", telemetry.PH, nil, []calStep{
			{"mid", 7, []string{"Cal,mid,7.00", "Cal,?"}, []string{"*OK", "?Cal,1", "*OK"}, "1"},
			{"low", 4, []string{"Cal,low,4.00", "Cal,?"}, []string{"*OK", "?Cal,2", "*OK"}, "2"},
			{"high", 10, []string{"Cal,high,10.00", "Cal,?"}, []string{"*OK", "?Cal,3", "*OK"}, "3"},
			{"clear", 0, []string{"Cal,clear", "Cal,?"}, []string{"*OK", "?Cal,0", "*OK"}, "0"},
		}},
		{"DO", telemetry.DO, nil, []calStep{
			{"air", 0, []string{"Cal", "Cal,?"}, []string{"*OK", "?Cal,1", "*OK"}, "1"},
			{"zero", 0, []string{"Cal,0", "Cal,?"}, []string{"*OK", "?Cal,2", "*OK"}, "2"},
		}},
		{"pH with response codes off", telemetry.PH, []string{"--ok=false"}, []calStep{
			{"mid", 7, []string{"Cal,mid,7.00", "Cal,?"}, []string{"?Cal,1"}, "1"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			link := filepath.Join(t.TempDir(), "probe")
			startSim(t, link, append([]string{"--param", string(tt.param)}, tt.args...)...)
			cfg := testConfig(link, tt.param)
			cfg.Interval = time.Hour // only the first reading: the exchanges below stand alone
			h := newHarness(t, cfg)
			h.run(t)
			eventually(t, func() bool { return h.sink.len() == 1 }, "identified and read")
			for _, step := range tt.steps {
				ex, err := h.probe.Calibrate(t.Context(), step.point, step.value)
				require.NoError(t, err, "%s: %+v", step.point, ex)
				assert.Equal(t, step.sent, ex.Sent)
				assert.Equal(t, step.recv, ex.Received)
				assert.Empty(t, ex.Err)
				assert.Nil(t, ex.Value)
				st := h.probe.Status()
				assert.Equal(t, step.points, st.Calibration)
				assert.NotZero(t, st.LastCalibrationAt)
			}
		})
	}
	t.Run("rejected point touches nothing", func(t *testing.T) {
		h := newHarness(t, testConfig("/dev/nonexistent", telemetry.PH))
		_, err := h.probe.Calibrate(t.Context(), "air", 0)
		assert.ErrorIs(t, err, ErrBadPoint)
	})
}

// T,<°C> goes out before a reading when the station's water temperature is fresh and has
// moved by 0.5 °C since it was last sent, and not otherwise.
func TestTemperatureCompensation(t *testing.T) {
	link := filepath.Join(t.TempDir(), "probe")
	s := startSim(t, link, "--param", "ph")
	h := newHarness(t, testConfig(link, telemetry.PH))
	h.setTemp(24.31, time.Now())
	h.run(t)

	readsAfter := func(n int) {
		t.Helper()
		base := count(s.commands(t), "R")
		eventually(t, func() bool { return count(s.commands(t), "R") >= base+n }, "%d more readings", n)
	}
	readsAfter(3)
	cmds := s.commands(t)
	assert.Equal(t, 1, count(cmds, "T,24.3"), "sent once: %v", cmds)
	i := indexOf(cmds, "T,24.3")
	require.GreaterOrEqual(t, i, 0)
	assert.Equal(t, "R", cmds[i+1], "before a reading")
	assert.Equal(t, 24.3, *h.probe.Status().TempCompensation)

	h.setTemp(24.7, time.Now()) // moved 0.4 °C: not worth a command
	readsAfter(3)
	assert.Zero(t, count(s.commands(t), "T,24.7"))

	h.setTemp(24.8, time.Now()) // 0.5 °C from what the circuit has
	readsAfter(3)
	assert.Equal(t, 1, count(s.commands(t), "T,24.8"))

	h.setTemp(30, time.Now().Add(-time.Hour)) // stale: older than TempMaxAge
	readsAfter(3)
	assert.Zero(t, count(s.commands(t), "T,30.0"))
	assert.Zero(t, h.probe.Status().ErrorsByKind["er"])
}

// The circuit forgets its temperature compensation when it resets: it is sent again.
func TestTemperatureCompensationAfterReset(t *testing.T) {
	link := filepath.Join(t.TempDir(), "probe")
	s := startSim(t, link, "--param", "do", "--fault", "reset", "--fault-every", "3")
	h := newHarness(t, testConfig(link, telemetry.DO))
	h.setTemp(18, time.Now())
	h.run(t)
	eventually(t, func() bool { return h.probe.Status().ErrorsByKind["reset"] >= 2 }, "two resets")
	eventually(t, func() bool { return count(s.commands(t), "T,18.0") >= 3 }, "T sent after each identification")
}

// Test takes one reading through the running loop and stores nothing.
func TestTestRequest(t *testing.T) {
	link := filepath.Join(t.TempDir(), "probe")
	want := capturedReading(t, "ph_session", 0)
	startSim(t, link, "--param", "ph", "--time", frozenAt)
	cfg := testConfig(link, telemetry.PH)
	cfg.Interval = time.Hour
	h := newHarness(t, cfg)

	_, err := h.probe.Test(t.Context())
	assert.ErrorIs(t, err, ErrNotRunning, "before Run")

	h.run(t)
	eventually(t, func() bool { return h.sink.len() == 1 }, "the first reading")
	ex, err := h.probe.Test(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"R"}, ex.Sent)
	assert.Equal(t, []string{"7.740", "*OK"}, ex.Received)
	require.NotNil(t, ex.Value)
	assert.Equal(t, want, *ex.Value)
	assert.Positive(t, ex.Took)
	assert.Equal(t, 1, h.sink.len(), "a test reading is not stored")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = h.probe.Test(ctx)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestTestWhileDisconnected(t *testing.T) {
	h := newHarness(t, testConfig(filepath.Join(t.TempDir(), "nothing-here"), telemetry.PH))
	h.run(t)
	eventually(t, func() bool { return h.probe.Status().LastError != "" }, "a failed open")
	ex, err := h.probe.Test(t.Context())
	assert.ErrorIs(t, err, ErrNotConnected)
	assert.Equal(t, ErrNotConnected.Error(), ex.Err)
	st := h.probe.Status()
	assert.False(t, st.Open)
	assert.Contains(t, st.LastError, "nothing-here")
}

// A circuit left with response codes off (*OK,0) answers without *OK: readings and
// settings work all the same, and no timeout is counted.
func TestResponseCodesOff(t *testing.T) {
	link := filepath.Join(t.TempDir(), "probe")
	s := startSim(t, link, "--param", "ph", "--ok=false")
	h := newHarness(t, testConfig(link, telemetry.PH))
	h.setTemp(21, time.Now())
	h.run(t)
	eventually(t, func() bool { return h.sink.len() >= 3 }, "readings")
	st := h.probe.Status()
	assert.False(t, st.ResponseCodes)
	assert.Empty(t, st.Errors)
	assert.Equal(t, 1, count(s.commands(t), "T,21.0"))
	assert.Equal(t, "0", st.Calibration)
}

// A circuit left in continuous mode, as they leave the factory, streams readings nobody
// asked for: the probe turns the mode off and tolerates what was already on the way.
func TestContinuousModeLeftovers(t *testing.T) {
	link := filepath.Join(t.TempDir(), "probe")
	s := startSim(t, link, "--param", "ph", "--continuous")
	time.Sleep(200 * time.Millisecond) // readings pile up before anyone opens the port
	h := newHarness(t, testConfig(link, telemetry.PH))
	h.run(t)
	eventually(t, func() bool { return h.sink.len() >= 3 }, "readings")
	assert.GreaterOrEqual(t, count(s.commands(t), "C,0"), 1)
	st := h.probe.Status()
	assert.Empty(t, st.Errors, "leftovers are not errors")
}

// When the sink cannot store, the reading is counted as lost and polling goes on.
func TestSinkFailure(t *testing.T) {
	link := filepath.Join(t.TempDir(), "probe")
	startSim(t, link, "--param", "ph")
	h := newHarness(t, testConfig(link, telemetry.PH))
	h.sink.setFailing(true)
	h.run(t)
	eventually(t, func() bool { return h.probe.Status().NotStored >= 3 }, "lost readings counted")
	st := h.probe.Status()
	assert.Contains(t, st.LastError, "store: disk full")
	assert.Zero(t, h.sensor(t).Errors, "a failing store is the pipeline's alert, not the sensor's fault")
	h.sink.setFailing(false)
	eventually(t, func() bool { return h.sink.len() >= 2 }, "polling went on")
}

func TestStoresTakenReadingAtShutdown(t *testing.T) {
	link := filepath.Join(t.TempDir(), "probe")
	startSim(t, link, "--param", "ph")
	cfg := testConfig(link, telemetry.PH)
	s, st := &probetest.Sink{}, newStation(cfg)
	p, err := New(cfg, s, st, st, nil)
	require.NoError(t, err)
	probetest.StoresTakenReadingAtShutdown(t, p, s)
	assert.Equal(t, uint64(1), p.Status().Readings)
}

func TestRunTwice(t *testing.T) {
	h := newHarness(t, testConfig(filepath.Join(t.TempDir(), "nothing-here"), telemetry.PH))
	h.run(t)
	eventually(t, func() bool { return h.probe.Status().LastError != "" }, "running")
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	assert.ErrorIs(t, h.probe.Run(ctx), ErrRunning)
}

func TestNewValidates(t *testing.T) {
	st := newHarness(t, testConfig("/dev/x", telemetry.PH)).station
	tests := []struct {
		name string
		cfg  Config
		sink probestatus.Sink
		want string
	}{
		{"no name", Config{Device: "/dev/x", Param: telemetry.PH}, &sink{}, "name is required"},
		{"no device", Config{Name: "p", Param: telemetry.PH}, &sink{}, "device is required"},
		{"turbidity", Config{Name: "p", Device: "/dev/x", Param: telemetry.Turbidity}, &sink{}, `no EZO circuit measures "turbidity"`},
		{"negative", Config{Name: "p", Device: "/dev/x", Param: telemetry.PH, Timeout: -1}, &sink{}, "timeout: -1ns must not be negative"},
		{"backoff", Config{Name: "p", Device: "/dev/x", Param: telemetry.PH, BackoffMin: time.Minute, BackoffMax: time.Second}, &sink{}, "backoff max 1s is below backoff min 1m0s"},
		{"no sink", Config{Name: "p", Device: "/dev/x", Param: telemetry.PH}, nil, "sink and health are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s probestatus.Sink
			if tt.sink != nil {
				s = tt.sink
			}
			_, err := New(tt.cfg, s, st, nil, nil)
			assert.ErrorContains(t, err, tt.want)
		})
	}
	p, err := New(Config{Name: "p", Device: "/dev/x", Param: telemetry.PH}, &sink{}, st, nil, nil)
	require.NoError(t, err)
	assert.Equal(t, DefaultInterval, p.cfg.Interval)
	assert.Equal(t, DefaultTimeout, p.cfg.Timeout)
	assert.Equal(t, DefaultBaud, p.cfg.Baud)
	assert.Equal(t, DefaultTempMaxAge, p.cfg.TempMaxAge)
	assert.Equal(t, DefaultBackoffMax, p.cfg.BackoffMax)
	assert.False(t, errors.Is(err, ErrRunning))
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

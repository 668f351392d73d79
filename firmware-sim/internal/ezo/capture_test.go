package ezo

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/shared/telemetry"
)

var update = flag.Bool("update", false, "rewrite the captured frames in the agent's testdata")

// captureDir is where the agent's serial probe tests read the frames this emulator sends:
// its parser is tested against them, so the two sides are written independently and meet
// only in these files.
const captureDir = "../../../agent/internal/serialprobe/testdata/ezo"

// tick in a script stands for one continuous-mode reading instead of a command.
const tick = "<tick>"

// captures are the scripted sessions. Every one runs on the river of MH-PUNE-001 with seed
// 1 (the defaults of `ph-sim serial`) frozen at t0, so the agent's tests can start the
// simulator with --time and expect the same readings.
var captures = []struct {
	name   string
	cfg    Config
	step   time.Duration // the model clock advances this much before each command
	script []string
}{
	{"ph_session", Config{Param: telemetry.PH}, 0, []string{
		"*OK,?", "C,0", "i", "Cal,?", "Status", "T,?", "R", "T,24.3", "T,?", "R"}},
	{"ph_series", Config{Param: telemetry.PH}, 10 * time.Minute, []string{"R", "R", "R", "R"}},
	{"ph_calibration", Config{Param: telemetry.PH}, 0, []string{
		"Cal,?", "Cal,mid,7.00", "Cal,?", "Cal,low,4.00", "Cal,?", "Cal,high,10.00", "Cal,?",
		"Cal,clear", "Cal,?", "Cal,mid"}},
	{"ph_ok_off", Config{Param: telemetry.PH, OKOff: true}, 0, []string{
		"*OK,?", "C,0", "i", "R", "T,25.0", "Foo", "*OK,1", "R"}},
	{"ph_continuous", Config{Param: telemetry.PH, Continuous: true}, time.Second, []string{
		tick, tick, "C,?", tick, "C,0", "C,?", "R"}},
	{"ph_unknown", Config{Param: telemetry.PH}, 0, []string{
		"", "Foo", "R,2", "Cal,mid", "T,abc", strings.Repeat("R", 41), "\x01R", "O,?"}},
	{"ph_faults", Config{Param: telemetry.PH, Faults: []Fault{FaultER}, FaultEvery: 2}, 0, []string{
		"R", "R", "R", "R"}},
	{"ph_voltage", Config{Param: telemetry.PH, Faults: []Fault{FaultOV}, FaultEvery: 2}, 0, []string{
		"R", "R", "Status"}},
	{"ph_undervoltage", Config{Param: telemetry.PH, Faults: []Fault{FaultUV}, FaultEvery: 1}, 0, []string{"R"}},
	{"ph_reset", Config{Param: telemetry.PH, Faults: []Fault{FaultReset}, FaultEvery: 2}, 0, []string{
		"T,18.0", "R", "R", "T,?", "Status"}},
	{"ph_sleep", Config{Param: telemetry.PH, Faults: []Fault{FaultSleep}, FaultEvery: 2}, 0, []string{
		"R", "R", "R", "R", "Sleep", "i", "i"}},
	{"ph_garbage", Config{Param: telemetry.PH, ProbeFault: device.FaultGarbage}, 37 * time.Second,
		slices.Repeat([]string{"R"}, 24)},
	{"do_session", Config{Param: telemetry.DO}, 0, []string{
		"*OK,?", "C,0", "i", "O,?", "R", "O,%,1", "O,?", "R", "T,15.0", "R", "Cal", "Cal,0",
		"Cal,?", "O,mg,0", "O,?", "R"}},
	{"ec_session", Config{Param: telemetry.Conductivity}, 0, []string{
		"i", "O,?", "R", "O,S,0", "O,SG,0", "O,EC,0", "O,?", "R", "O,EC,1", "Cal,dry", "Cal,12880",
		"Cal,?", "Cal,low,1413", "Cal,high,12880", "Cal,?"}},
	{"rtd_session", Config{Param: telemetry.Temp}, 0, []string{
		"i", "T,25.0", "S,?", "R", "S,f", "R", "S,k", "R", "Cal,100.00", "Cal,?"}},
}

func TestCapture(t *testing.T) {
	for _, c := range captures {
		t.Run(c.name, func(t *testing.T) {
			now := t0
			cfg := c.cfg
			cfg.Seed = 1
			cfg.Now = func() time.Time { return now }
			d, err := NewDevice(cfg)
			require.NoError(t, err)

			var b bytes.Buffer
			fmt.Fprintf(&b, "# %s circuit on the river of %s, seed %d, model time %s", d.Circuit(),
				d.cfg.Station, cfg.Seed, t0.Format(time.RFC3339))
			if c.step > 0 {
				fmt.Fprintf(&b, ", advancing %s before each command", c.step)
			}
			if cfg.ProbeFault != "" {
				fmt.Fprintf(&b, "; probe fault %s", cfg.ProbeFault)
			}
			if len(cfg.Faults) > 0 {
				fmt.Fprintf(&b, "; circuit faults %s every %d readings", faultNames(cfg.Faults), d.cfg.FaultEvery)
			}
			b.WriteString(".\n# Captured from the EZO emulator of ph-sim; regenerate with\n" +
				"# go test ./firmware-sim/internal/ezo -run TestCapture -update\n")
			for _, cmd := range c.script {
				now = now.Add(c.step)
				var chunks []Chunk
				if cmd == tick {
					chunks = d.Tick()
				} else {
					require.NoError(t, WriteFrame(&b, '>', []byte(cmd+"\r")))
					chunks = d.Handle([]byte(cmd))
				}
				for _, ch := range chunks {
					require.NoError(t, WriteFrame(&b, '<', ch.Data))
				}
			}

			path := filepath.Join(captureDir, c.name+".txt")
			if *update {
				require.NoError(t, os.MkdirAll(captureDir, 0o755))
				require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run with -update to capture")
			assert.Equal(t, string(want), b.String(), "the emulator's frames changed: review, then run with -update")
		})
	}
}

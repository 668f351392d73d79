package cli

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/purehealth/purehealth/firmware-sim/internal/ezo"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// serialCommands returns the serial probe simulator commands.
func serialCommands(d *deps) []*cobra.Command { return []*cobra.Command{newSerialCommand(d)} }

func newSerialCommand(d *deps) *cobra.Command {
	var (
		cfg                      ezo.Config
		opts                     ezo.Options
		param, faults, at, trace string
		okCodes                  bool
		paramNames               []string
	)
	for _, p := range ezo.Params() {
		paramNames = append(paramNames, string(p))
	}
	cmd := &cobra.Command{
		Use:   "serial --param P [--link PATH]",
		Short: "Emulate an Atlas Scientific EZO probe on a pseudo-terminal",
		Long: `Emulate an Atlas Scientific EZO circuit (pH, DO, EC or RTD) on a pseudo-terminal,
speaking the EZO UART protocol: R, i, Status, C,1/C,0/C,?, T,<°C>/T,?, Cal,...
(pH: Cal,mid|low|high,<value>; DO: Cal and Cal,0; EC: Cal,dry, Cal,<n>, Cal,low|high,<n>;
RTD: Cal,<°C>; all: Cal,clear, Cal,?), *OK,0/*OK,1/*OK,?, O,... (DO: O,%,1; EC: O,TDS,1),
S,c|k|f (RTD), Sleep, L, Find, Name, Factory. Anything else is answered with *ER.

The first line on stdout is the device path (the pseudo-terminal's slave, e.g. /dev/pts/5);
each time the probe is plugged back in on a new terminal its new path follows on a line
of its own. With --link the path is also kept behind a symlink, so a restarted or
replugged simulator looks like a probe plugged back into the same port.

Readings follow the river model of --station with --seed (or of one frozen instant with
--time), and take as long as a real circuit (pH 900 ms, DO/EC/RTD 600 ms) divided by
--speed. Faults (comma-separated): one probe fault (noise, drift, stuck, dropout: no reply,
garbage: corrupt bytes, spike) and any circuit faults, which hit every --fault-every-th
reading: er (*ER), reset (*RS, *RE), sleep (*SL, then *WA), flood (1 MiB without a
carriage return), ov (*OV), uv (*UV); mute (never answers); unplug (every --unplug-every,
away for --unplug-for; needs --link).

Stops on SIGINT/SIGTERM, removing the link.`,
		Example: `  ph-sim serial --param ph
  ph-sim serial --param do --link /tmp/do-probe --station MH-NASHIK-001
  ph-sim serial --param ph --link /tmp/ph --fault garbage,er,unplug --unplug-every 20s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var problems []error
			p, err := telemetry.ParseParam(param)
			switch {
			case param == "":
				problems = append(problems, errors.New("--param is required"))
			case err != nil:
				problems = append(problems, fmt.Errorf("invalid param: %w", err))
			case !slices.Contains(ezo.Params(), p):
				problems = append(problems, fmt.Errorf("invalid param %s: no EZO circuit measures it (want %s)", p, strings.Join(paramNames, ", ")))
			}
			cfg.Param = p
			if cfg.ProbeFault, cfg.Faults, err = ezo.ParseFaults(faults); err != nil {
				for _, e := range unjoin(err) {
					problems = append(problems, fmt.Errorf("invalid fault: %w", e))
				}
			}
			if cfg.FaultEvery < 1 {
				problems = append(problems, fmt.Errorf("invalid fault-every %d: must be at least 1", cfg.FaultEvery))
			}
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					problems = append(problems, fmt.Errorf("invalid time %q: want RFC 3339, e.g. 2025-03-01T06:30:00Z", at))
				}
				cfg.Now = func() time.Time { return t }
			}
			cfg.OKOff = !okCodes
			if !(opts.Speed > 0) || opts.Speed > 1e6 {
				problems = append(problems, fmt.Errorf("invalid speed %v: must be above 0 and at most 1e6", opts.Speed))
			}
			if opts.UnplugEvery <= 0 || opts.UnplugFor <= 0 {
				problems = append(problems, errors.New("invalid unplug timing: --unplug-every and --unplug-for must be positive"))
			}
			if slices.Contains(cfg.Faults, ezo.FaultUnplug) && opts.Link == "" {
				problems = append(problems, errors.New("fault unplug needs --link: a replugged probe comes back on a new device path, and only the link stays put"))
			}
			if len(problems) > 0 {
				return usage(cmd, oneLine(problems))
			}
			dev, err := ezo.NewDevice(cfg)
			if err != nil {
				return usage(cmd, err)
			}
			out := cmd.OutOrStdout()
			opts.OnAttach = func(path string) error {
				_, err := fmt.Fprintln(out, path)
				return err
			}
			opts.Logger = d.log.With("component", "ezo", "param", string(p))
			if trace != "" {
				f, err := os.Create(trace)
				if err != nil {
					return fail(fmt.Errorf("trace: %w", err))
				}
				opts.Trace = f
				err = runEmulator(cmd, dev, opts)
				if cerr := f.Close(); cerr != nil && err == nil {
					err = fmt.Errorf("trace: %w", cerr)
				}
				return fail(err)
			}
			return fail(runEmulator(cmd, dev, opts))
		},
	}
	f := cmd.Flags()
	f.StringVar(&param, "param", "", "what the probe measures: "+strings.Join(paramNames, ", ")+" (required)")
	f.StringVar(&opts.Link, "link", "", "keep a symlink at this path pointing at the current device")
	f.StringVar(&cfg.Station, "station", "MH-PUNE-001", "station whose river model gives the values")
	f.Int64Var(&cfg.Seed, "seed", 1, "seed of the simulated river and probe")
	f.StringVar(&at, "time", "", "freeze the river at this instant (RFC 3339): every reading shows it")
	f.Float64Var(&opts.Speed, "speed", 1, "divide every circuit delay by this (tests: 20)")
	f.StringVar(&faults, "fault", "none", "comma-separated faults: a probe fault (noise, drift, stuck, dropout, garbage, spike) and circuit faults (er, reset, sleep, flood, ov, uv, mute, unplug)")
	f.IntVar(&cfg.FaultEvery, "fault-every", 3, "circuit faults hit every n-th reading")
	f.DurationVar(&opts.UnplugEvery, "unplug-every", 30*time.Second, "with fault unplug: how long the probe stays plugged in")
	f.DurationVar(&opts.UnplugFor, "unplug-for", 2*time.Second, "with fault unplug: how long it stays away")
	f.BoolVar(&okCodes, "ok", true, "response codes on (--ok=false starts as after *OK,0)")
	f.BoolVar(&cfg.Continuous, "continuous", false, "start in continuous mode (C,1), as circuits leave the factory")
	f.StringVar(&cfg.Firmware, "firmware", "2.16", "firmware version reported by i")
	f.StringVar(&trace, "trace", "", "write a transcript of every frame received and sent to this file")
	return cmd
}

func runEmulator(cmd *cobra.Command, dev *ezo.Device, opts ezo.Options) error {
	em, err := ezo.New(dev, opts)
	if err != nil {
		return err
	}
	return em.Run(cmd.Context())
}

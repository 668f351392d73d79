package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/purehealth/purehealth/firmware-sim/internal/scenario"
)

func newStationCommand(d *deps) *cobra.Command {
	var file string
	var backfill, backfillStep time.Duration
	cmd := &cobra.Command{
		Use:   "station --scenario FILE",
		Short: "Simulate every probe of a station at once, from a scenario file",
		Long: `Run a whole station's simulated probes in one process, as a YAML scenario describes
them: EZO circuits on pseudo-terminals (serial), CoAP sondes (coap), HTTP sensors (http)
and MQTT publishers (mqtt), each as its own command would run it (see 'ph-sim serial
--help', 'coap', 'http' and 'mqtt').

  station: MH-KOLHAPUR-001   # the river model (and the MQTT topics)
  seed: 1                    # same seed, same values
  speed: 1                   # divides the serial circuits' delays (tests: 20)
  probes:
    - {name: ph-1, kind: serial, param: ph, link: ./tmp/demo/tty-ph, faults: [noise]}
    - {name: sonde-1, kind: coap, listen: "127.0.0.1:15683", params: [do, temp], interval: 5s}
    - {name: turb-1, kind: http, listen: "127.0.0.1:18090", params: [turbidity]}
    - {name: lab-1, kind: mqtt, broker: "127.0.0.1:18834", params: [bod, fc], rate: 0.1}

Keys per kind — serial: param, link, faults, fault_every, unplug_every, unplug_for;
coap: listen, params, interval, format, faults, fault_rate; http: listen, params, format,
faults, fault_rate, slow; mqtt: broker, params, sensors, rate, qos, batch, protocol,
username, password, faults. The file is decoded strictly: a mistake is reported with
its line, every mistake at once.

Every listener is bound before anything is served. Then one line per endpoint goes to
stdout, "<probe> <kind> <params> <where>": a resource URL, the MQTT broker, or a serial
probe's link and pseudo-terminal ("ph-1 serial ph ./tmp/demo/tty-ph -> /dev/pts/5"; a
replugged probe prints a new line). An MQTT probe whose broker is not up yet keeps
trying. A probe that fails stops the station with an error naming it. SIGINT or SIGTERM
stops every probe.

With --backfill DUR the station has been running for DUR already: first every MQTT probe
publishes to its broker what it would have reported every --backfill-step over the last
DUR (what 'ph-sim history' writes, the same river, plumes and faults; in time order, as
acknowledged readings arrays with the sensor names its live publisher uses), then the
probes run live from now on. The scenario's relative times (a plume's start, a probe's
fault_at) count from the start of that history. A line "backfilled N readings of M mqtt
probes from T to T in D" on stdout says when the history is delivered.`,
		Example: `  ph-sim station --scenario configs/demo-station.scenario.yaml
  ph-sim station --scenario configs/demo-pune.scenario.yaml --backfill 336h --backfill-step 5m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usage(cmd, errors.New("--scenario is required"))
			}
			sc, err := scenario.Load(file)
			if err != nil {
				return usage(cmd, err)
			}
			switch {
			case backfill < 0 || backfill > maxHistorySpan:
				return usage(cmd, fmt.Errorf("--backfill %s must be 0..%s", backfill, maxHistorySpan))
			case backfillStep <= 0:
				return usage(cmd, fmt.Errorf("--backfill-step %s must be positive", backfillStep))
			case backfill/backfillStep > maxHistoryReading:
				return usage(cmd, fmt.Errorf("--backfill-step %s makes %d readings per series; at most %d",
					backfillStep, backfill/backfillStep, maxHistoryReading))
			}
			out := cmd.OutOrStdout()
			// A history on whole steps: its readings fall on the step's round times.
			now := time.Now().UTC()
			if backfill > 0 {
				now = now.Truncate(backfillStep)
			}
			start := now.Add(-backfill)
			if backfill > 0 {
				rep, err := sc.Backfill(cmd.Context(), start, start, now, backfillStep, d.log.With("component", "backfill"))
				if err != nil {
					return fail(err)
				}
				if _, err := fmt.Fprintln(out, rep); err != nil {
					return fail(err)
				}
			}
			st, err := scenario.NewStation(sc, scenario.Options{
				Start: start,
				OnEndpoint: func(e scenario.Endpoint) error {
					_, err := fmt.Fprintln(out, e)
					return err
				},
				Logger: d.log.With("component", "station"),
			})
			if err != nil {
				return usage(cmd, err)
			}
			return fail(st.Run(cmd.Context()))
		},
	}
	cmd.Flags().StringVar(&file, "scenario", "", "the scenario file (YAML; required)")
	cmd.Flags().DurationVar(&backfill, "backfill", 0, "publish this much history first, to the MQTT probes' brokers (e.g. 336h)")
	cmd.Flags().DurationVar(&backfillStep, "backfill-step", 5*time.Minute, "time between the readings of the history")
	return cmd
}

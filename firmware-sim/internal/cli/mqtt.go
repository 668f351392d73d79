package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/firmware-sim/internal/mqttsim"
	"github.com/purehealth/purehealth/shared/telemetry"
)

func newMQTTCommand(d *deps) *cobra.Command {
	var (
		cfg                      mqttsim.Config
		qos, protocol            int
		params, fault, reportFmt string
	)
	defaultParams := make([]string, 0, len(mqttsim.DefaultParams()))
	for _, p := range mqttsim.DefaultParams() {
		defaultParams = append(defaultParams, string(p))
	}
	cmd := &cobra.Command{
		Use:   "mqtt --broker ADDR --station ID",
		Short: "Publish simulated sensor readings to an MQTT broker",
		Long: `Publish simulated readings on the contract topics: sensor i publishes parameter
params[i % len(params)] on purehealth/<station>/<param> with the payload
{"value": v, "unit": "<unit>", "timestamp": "<RFC 3339 UTC>", "sensor": "<param>-<i>"}
(with --batch: one array of every parameter per message on purehealth/<station>/readings).

Each sensor has its own connection (client id <station>-sim-<i>) and publishes --rate
messages per second, --count messages in all (0: until interrupted). --rate 0 publishes
as fast as acknowledgements allow, keeping up to --inflight publishes outstanding per
connection: a load generator. Lost connections are re-established with backoff.

Values follow a model of the station's river (MH-PUNE-001, MH-NASHIK-001, MH-SANGLI-001,
MH-KOLHAPUR-001; other ids get a generic river) and are reproducible with --seed.

On SIGINT/SIGTERM publishing stops, outstanding acknowledgements are awaited for up to
--grace, and the report is printed (last line; JSON with --report json).`,
		Example: `  ph-sim mqtt --broker 127.0.0.1:1883 --station MH-PUNE-001 --sensors 8 --rate 0.2
  ph-sim mqtt --broker 127.0.0.1:1883 --station MH-PUNE-001 --sensors 4 --rate 0 --count 10000 --report json
  ph-sim mqtt --broker 127.0.0.1:1883 --station MH-NASHIK-001 --fault garbage --protocol 5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var problems []error
			if cfg.Sensors < 1 { // 0 would mean the default in Config
				problems = append(problems, fmt.Errorf("invalid sensors %d: must be at least 1", cfg.Sensors))
			}
			if qos < 0 || qos > 2 {
				problems = append(problems, fmt.Errorf("invalid qos %d: must be 0, 1 or 2", qos))
			} else {
				cfg.QoS = byte(qos)
			}
			cfg.Protocol = protocol
			ps, err := parseParams(params)
			if err != nil {
				problems = append(problems, unjoin(err)...)
			}
			cfg.Params = ps
			if cfg.Fault, err = device.ParseFault(fault); err != nil {
				problems = append(problems, fmt.Errorf("invalid fault: %w", err))
			}
			if reportFmt != "text" && reportFmt != "json" {
				problems = append(problems, fmt.Errorf("invalid report %q: want text or json", reportFmt))
			}
			if err := cfg.Validate(); err != nil {
				problems = append(problems, unjoin(err)...)
			}
			if len(problems) > 0 {
				return usage(cmd, oneLine(problems))
			}
			pub, err := mqttsim.New(cfg, d.log.With("component", "mqttsim"))
			if err != nil {
				return usage(cmd, err) // unreachable: validated above
			}
			report, err := pub.Run(cmd.Context())
			if err != nil {
				return fail(err)
			}
			return fail(printReport(cmd, report, reportFmt))
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Broker, "broker", "", "broker address, host:port or tcp://host:port (required)")
	f.StringVar(&cfg.Station, "station", "", "station id used in the topics, e.g. MH-PUNE-001 (required)")
	f.IntVar(&cfg.Sensors, "sensors", 1, "number of simulated sensors, one connection each")
	f.Float64Var(&cfg.Rate, "rate", 1, "messages per second per sensor (fractions allowed; 0 = as fast as acks allow)")
	f.IntVar(&cfg.Count, "count", 0, "messages per sensor, then exit (0 = until interrupted)")
	f.IntVar(&qos, "qos", 1, "MQTT QoS of every publish: 0, 1 or 2")
	f.IntVar(&protocol, "protocol", mqttsim.MQTT311, "MQTT protocol version: 4 (3.1.1) or 5")
	f.StringVar(&cfg.Username, "username", "", "MQTT username")
	f.StringVar(&cfg.Password, "password", "", "MQTT password")
	f.StringVar(&params, "params", strings.Join(defaultParams, ","), "comma-separated parameters")
	f.BoolVar(&cfg.Batch, "batch", false, "publish arrays of all parameters on purehealth/<station>/readings")
	f.StringVar(&fault, "fault", string(device.FaultNone), "probe fault: none, noise, drift, stuck, dropout, garbage, spike")
	f.Int64Var(&cfg.Seed, "seed", 1, "seed of the simulated river and probes")
	f.StringVar(&reportFmt, "report", "text", "final report format: text or json")
	f.IntVar(&cfg.Inflight, "inflight", 0, "max unacknowledged publishes per connection (0 = the client's limit: the broker's receive maximum on MQTT 5, 1024 on 3.1.1)")
	f.DurationVar(&cfg.Grace, "grace", 5*time.Second, "after SIGINT/SIGTERM, how long to wait for outstanding acknowledgements")
	f.DurationVar(&cfg.AckTimeout, "ack-timeout", 30*time.Second, "how long without any acknowledgement before a connection counts as dead")
	f.DurationVar(&cfg.ConnectTimeout, "connect-timeout", 10*time.Second, "timeout of each connection attempt")
	return cmd
}

// parseParams resolves a comma-separated list of parameters (aliases allowed).
func parseParams(s string) ([]telemetry.Param, error) {
	items := splitList(s)
	if len(items) == 0 {
		return nil, errors.New("invalid params: empty")
	}
	var (
		out  []telemetry.Param
		errs []error
		seen = map[telemetry.Param]bool{}
	)
	for _, item := range items {
		p, err := telemetry.ParseParam(item)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("invalid params: %w", err))
		case seen[p]:
			errs = append(errs, fmt.Errorf("invalid params: %s listed twice", p))
		default:
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, errors.Join(errs...)
}

func printReport(cmd *cobra.Command, r mqttsim.Report, format string) error {
	w := cmd.OutOrStdout()
	if format == "json" {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode report: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintln(w, r.String())
	return err
}

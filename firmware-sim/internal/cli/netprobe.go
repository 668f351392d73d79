package cli

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/purehealth/purehealth/firmware-sim/internal/coapsim"
	"github.com/purehealth/purehealth/firmware-sim/internal/httpsim"
	"github.com/purehealth/purehealth/firmware-sim/internal/mqttsim"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// networkProbeCommands returns the CoAP and HTTP probe simulator commands.
func networkProbeCommands(d *deps) []*cobra.Command {
	return []*cobra.Command{newCoAPCommand(d), newHTTPCommand(d)}
}

// probeFlags are the flags the network probe simulators share.
type probeFlags struct {
	listen, params, station, format, fault string
	seed                                   int64
	faultRate                              float64
}

func (f *probeFlags) register(cmd *cobra.Command, listen string, faults string) {
	defaults := make([]string, 0, len(mqttsim.DefaultParams()))
	for _, p := range mqttsim.DefaultParams() {
		defaults = append(defaults, string(p))
	}
	fs := cmd.Flags()
	fs.StringVar(&f.listen, "listen", listen, "address to listen on, host:port (port 0: any free port)")
	fs.StringVar(&f.params, "params", strings.Join(defaults, ","), "comma-separated parameters, one resource each")
	fs.StringVar(&f.station, "station", "MH-PUNE-001", "station whose river is simulated (other ids get a generic river)")
	fs.Int64Var(&f.seed, "seed", 1, "seed of the simulated river and probes")
	fs.StringVar(&f.format, "format", "json", `payload format: json ({"value","unit","timestamp"}) or text (the number alone)`)
	fs.StringVar(&f.fault, "fault", "none", "probe fault: "+faults)
	fs.Float64Var(&f.faultRate, "fault-rate", 1.0/3, "share of responses hit by a transport fault, in (0, 1]")
}

// check resolves the shared flags, collecting every problem.
func (f *probeFlags) check() (params []telemetry.Param, problems []error) {
	params, err := parseParams(f.params)
	if err != nil {
		problems = append(problems, unjoin(err)...)
	}
	if f.format != "json" && f.format != "text" {
		problems = append(problems, fmt.Errorf("invalid format %q: want json or text", f.format))
	}
	if !(f.faultRate > 0 && f.faultRate <= 1) {
		problems = append(problems, fmt.Errorf("invalid fault-rate %v: must be within (0, 1]", f.faultRate))
	}
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		problems = append(problems, fmt.Errorf("invalid listen %q: want host:port", f.listen))
	}
	return params, problems
}

func faultNames[F ~string](faults []F) string {
	names := make([]string, 0, len(faults))
	for _, f := range faults {
		names = append(names, string(f))
	}
	return strings.Join(names, ", ")
}

func newCoAPCommand(d *deps) *cobra.Command {
	var (
		f        probeFlags
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "coap --listen ADDR --params do,temp,...",
		Short: "Serve simulated probe readings as CoAP resources (GET and Observe)",
		Long: `Serve one CoAP resource per parameter at coap://ADDR/<param> over UDP, the way a
CoAP-speaking sonde does. GET returns the current reading; a GET with Observe registers
for a confirmable notification every --interval (RFC 7641), with Max-Age set to the
interval. The payload is {"value": v, "unit": "<unit>", "timestamp": "<RFC 3339 UTC>"}
with content-format application/json (50), or with --format text the number alone as
text/plain (0). /.well-known/core lists the resources.

Values follow a model of the station's river and are reproducible with --seed. --fault
makes the probes misbehave: noise, drift, stuck, dropout (no answer at all), garbage
(corrupt payloads), spike, or error (5.00 Internal Server Error on --fault-rate of the
responses and notifications; a 5.00 notification ends the observation).

The resource URLs are printed on stdout, one per line, once the server listens. SIGINT or
SIGTERM stops it.`,
		Example: `  ph-sim coap --listen 127.0.0.1:5683 --params do,temp
  ph-sim coap --listen 127.0.0.1:0 --params ph --interval 1s --format text
  ph-sim coap --listen 0.0.0.0:5683 --station MH-NASHIK-001 --fault error --fault-rate 0.1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			params, problems := f.check()
			fault, err := coapsim.ParseFault(f.fault)
			if err != nil {
				problems = append(problems, fmt.Errorf("invalid fault: %w", err))
			}
			if interval < 10*time.Millisecond {
				problems = append(problems, fmt.Errorf("invalid interval %s: must be at least 10ms", interval))
			}
			if len(problems) > 0 {
				return usage(cmd, oneLine(problems))
			}
			srv, err := coapsim.New(coapsim.Config{
				Station: f.station, Seed: f.seed, Params: params, Interval: interval,
				Format: coapsim.Format(f.format), Fault: fault, FaultRate: f.faultRate,
			}, d.log.With("component", "coapsim"))
			if err != nil {
				return usage(cmd, err)
			}
			addr, err := net.ResolveUDPAddr("udp", f.listen)
			if err != nil {
				return usage(cmd, fmt.Errorf("invalid listen %q: %w", f.listen, err))
			}
			conn, err := net.ListenUDP("udp", addr)
			if err != nil {
				return fail(fmt.Errorf("listen: %w", err))
			}
			if err := printURLs(cmd, srv.URLs(conn.LocalAddr())); err != nil {
				return fail(errorsJoinClose(err, conn.Close()))
			}
			d.log.Info("serving CoAP", "addr", conn.LocalAddr().String(), "interval", interval,
				"format", f.format, "fault", fault)
			return fail(srv.Serve(cmd.Context(), conn))
		},
	}
	f.register(cmd, "127.0.0.1:5683", faultNames(coapsim.Faults()))
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "notification period of observed resources")
	return cmd
}

func newHTTPCommand(d *deps) *cobra.Command {
	var (
		f    probeFlags
		slow time.Duration
	)
	cmd := &cobra.Command{
		Use:   "http --listen ADDR --params do,temp,...",
		Short: "Serve simulated probe readings over HTTP",
		Long: `Serve one HTTP resource per parameter at http://ADDR/<param>: GET returns
{"value": v, "unit": "<unit>", "timestamp": "<RFC 3339 UTC>"} as application/json, or with
--format text the number alone as text/plain.

Values follow a model of the station's river and are reproducible with --seed. --fault
makes the probes misbehave: noise, drift, stuck, dropout (the connection closes without an
answer), garbage (corrupt bodies), spike; and on --fault-rate of the requests: error (500),
slow (the answer comes after --slow), oversized (a 1 MiB document).

The resource URLs are printed on stdout, one per line, once the server listens. SIGINT or
SIGTERM stops it.`,
		Example: `  ph-sim http --listen 127.0.0.1:8081 --params turbidity
  ph-sim http --listen 127.0.0.1:0 --params do,ph --fault slow --slow 20s --fault-rate 0.5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			params, problems := f.check()
			fault, err := httpsim.ParseFault(f.fault)
			if err != nil {
				problems = append(problems, fmt.Errorf("invalid fault: %w", err))
			}
			if slow < 0 {
				problems = append(problems, fmt.Errorf("invalid slow %s: must not be negative", slow))
			}
			if len(problems) > 0 {
				return usage(cmd, oneLine(problems))
			}
			srv, err := httpsim.New(httpsim.Config{
				Station: f.station, Seed: f.seed, Params: params, Format: httpsim.Format(f.format),
				Fault: fault, FaultRate: f.faultRate, SlowDelay: slow,
			}, d.log.With("component", "httpsim"))
			if err != nil {
				return usage(cmd, err)
			}
			l, err := net.Listen("tcp", f.listen)
			if err != nil {
				return fail(fmt.Errorf("listen: %w", err))
			}
			if err := printURLs(cmd, srv.URLs(l.Addr())); err != nil {
				return fail(errorsJoinClose(err, l.Close()))
			}
			d.log.Info("serving HTTP", "addr", l.Addr().String(), "format", f.format, "fault", fault)
			return fail(srv.Serve(cmd.Context(), l))
		},
	}
	f.register(cmd, "127.0.0.1:8081", faultNames(httpsim.Faults()))
	cmd.Flags().DurationVar(&slow, "slow", 30*time.Second, "how long the slow fault holds an answer")
	return cmd
}

func printURLs(cmd *cobra.Command, urls []string) error {
	for _, u := range urls {
		if _, err := fmt.Fprintln(cmd.OutOrStdout(), u); err != nil {
			return fmt.Errorf("print: %w", err)
		}
	}
	return nil
}

// errorsJoinClose keeps a close error beside the one that made us close.
func errorsJoinClose(err, closeErr error) error {
	if closeErr != nil {
		return fmt.Errorf("%w (and closing: %v)", err, closeErr)
	}
	return err
}

// Package cli is ph-agent's command line: the daemon (`run`) and the commands a technician
// uses over SSH to query it through its admin socket. Commands are built by constructors and
// write to the cobra command's streams, so tests drive them with SetArgs and SetOut.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/config"
	"github.com/purehealth/purehealth/agent/internal/daemon"
	"github.com/purehealth/purehealth/internal/exitcode"
	"github.com/purehealth/purehealth/internal/logging"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/version"
	"github.com/purehealth/purehealth/shared/wqi"
)

// ExitCode maps an error from Run to the process exit code: a start-up failure exits
// differently from a failure while running (see internal/exitcode).
func ExitCode(err error) int { return exitcode.Of(err) }

// DefaultConfig is where the commands look without --config (also $PH_AGENT_CONFIG).
const DefaultConfig = "/etc/ph-agent/agent.yaml"

// env carries what the commands share; there are no package globals.
type env struct {
	now func() time.Time
}

// Run executes ph-agent with args and reports errors as one line on stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(&env{now: time.Now})
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "ph-agent: %v\n", err)
	}
	return err
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "ph-agent",
		Short:         "Pure Health station agent: ingest, buffer, WQI and alerts at a river station",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Version, // --version, as `version` prints it
	}
	root.SetVersionTemplate("ph-agent {{.Version}}\n")
	root.AddCommand(
		newRunCommand(),
		newStatusCommand(e),
		newSensorsCommand(e),
		newReadingsCommand(e),
		newWQICommand(e),
		newAlertsCommand(e),
		newQueueCommand(e),
		newFlushCommand(e),
		newConfigCommand(),
		newVersionCommand(),
		newPasswdCommand(),
		newProbeCommand(e),
		newSampleCommand(e),
	)
	return root
}

func configPath(cmd *cobra.Command) string {
	if p, _ := cmd.Flags().GetString("config"); p != "" {
		return p
	}
	if p := os.Getenv("PH_AGENT_CONFIG"); p != "" {
		return p
	}
	return DefaultConfig
}

func addConfigFlag(cmd *cobra.Command) {
	cmd.Flags().String("config", "", "agent configuration file (default $PH_AGENT_CONFIG or "+DefaultConfig+")")
}

func newRunCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the station agent daemon (SIGHUP reloads thresholds, hooks and probes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// SIGHUP reloads the configuration; caught from the start, so that one sent
			// while the agent starts does not end it.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			path := configPath(cmd)
			cfg, err := config.Load(path)
			if err != nil {
				return exitcode.AtStartup(err)
			}
			tuneRuntime()
			log := logging.New(cmd.ErrOrStderr(), cfg.Log)
			for _, w := range cfg.Warnings() {
				log.Warn("risky setting allowed by the configuration: " + w)
			}
			d, err := daemon.New(cfg, log)
			if err != nil {
				return exitcode.AtStartup(err)
			}
			// A port in use or a second agent on the socket is a start-up failure too.
			if err := d.Listen(); err != nil {
				return exitcode.AtStartup(errors.Join(err, d.Close()))
			}
			g, ctx := errgroup.WithContext(cmd.Context())
			g.Go(func() error { return d.Run(ctx) })
			g.Go(func() error {
				for {
					select {
					case <-ctx.Done():
						return nil
					case <-hup:
						log.Info("SIGHUP: reloading the configuration", "path", path)
						d.ReloadFrom(ctx, path)
					}
				}
			})
			return g.Wait()
		},
	}
	addConfigFlag(cmd)
	return cmd
}

// queryCommand builds a command that asks the running agent and prints JSON or a table.
func queryCommand(e *env, use, short string, args cobra.PositionalArgs,
	fetch func(ctx context.Context, c *admin.Client, cmd *cobra.Command, args []string) (any, error),
	render func(w io.Writer, v any, now time.Time) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			sock, err := config.SocketPath(configPath(cmd))
			if err != nil {
				return err
			}
			if s, _ := cmd.Flags().GetString("socket"); s != "" {
				sock = s
			}
			v, err := fetch(cmd.Context(), admin.NewClient(sock), cmd, args)
			if err != nil {
				return err
			}
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			return render(newTerminal(cmd.OutOrStdout()), v, e.now())
		},
	}
	addConfigFlag(cmd)
	cmd.Flags().String("socket", "", "admin socket (default: from the configuration)")
	cmd.Flags().Bool("json", false, "print machine-readable JSON")
	return cmd
}

func newStatusCommand(e *env) *cobra.Command {
	return queryCommand(e, "status", "Station, uptime, broker, uplink, buffer, WQI and active alerts", cobra.NoArgs,
		func(ctx context.Context, c *admin.Client, _ *cobra.Command, _ []string) (any, error) {
			return c.Status(ctx)
		},
		func(w io.Writer, v any, now time.Time) error { return renderStatus(w, v.(admin.Status), now) })
}

func newSensorsCommand(e *env) *cobra.Command {
	return queryCommand(e, "sensors", "Health of every sensor", cobra.NoArgs,
		func(ctx context.Context, c *admin.Client, _ *cobra.Command, _ []string) (any, error) {
			return c.Sensors(ctx)
		},
		func(w io.Writer, v any, now time.Time) error { return renderSensors(w, v.(admin.Sensors).Sensors, now) })
}

func newReadingsCommand(e *env) *cobra.Command {
	cmd := queryCommand(e, "readings", "Stored readings, newest first", cobra.NoArgs,
		func(ctx context.Context, c *admin.Client, cmd *cobra.Command, _ []string) (any, error) {
			param, _ := cmd.Flags().GetString("param")
			if param != "" {
				p, err := telemetry.ParseParam(param)
				if err != nil {
					return nil, err
				}
				param = string(p)
			}
			since, _ := cmd.Flags().GetDuration("since")
			limit, _ := cmd.Flags().GetInt("limit")
			if limit < 1 {
				return nil, fmt.Errorf("--limit %d must be at least 1", limit)
			}
			return c.Readings(ctx, admin.ReadingsQuery{Param: param, Since: since, Limit: limit})
		},
		func(w io.Writer, v any, now time.Time) error {
			return renderReadings(w, v.(admin.Readings).Readings, now)
		})
	cmd.Flags().String("param", "", "only this parameter (ph, do, bod, fc, tds, temp, turbidity, ...)")
	cmd.Flags().Duration("since", 0, "only readings newer than this, e.g. 30m or 24h")
	cmd.Flags().Int("limit", 50, "at most this many readings")
	return cmd
}

func newWQICommand(e *env) *cobra.Command {
	cmd := queryCommand(e, "wqi", "Current CPCB Water Quality Index with sub-indices", cobra.NoArgs,
		func(ctx context.Context, c *admin.Client, _ *cobra.Command, _ []string) (any, error) {
			return c.WQI(ctx)
		},
		func(w io.Writer, v any, now time.Time) error { return renderWQI(w, v.(json.RawMessage), now) })
	cmd.AddCommand(newWQICalcCommand(e))
	return cmd
}

func newWQICalcCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "calc",
		Short: "Compute the WQI from values given on the command line (no daemon needed)",
		Long: "Compute the CPCB WQI offline. DO is in mg/L, converted to % saturation at --temp " +
			"(default 25 °C) and the pressure of --elevation (or --pressure). Leave a parameter " +
			"out for a partial index.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			values := map[telemetry.Param]float64{}
			for _, p := range []telemetry.Param{telemetry.PH, telemetry.DO, telemetry.BOD, telemetry.FC, telemetry.Temp} {
				if cmd.Flags().Changed(string(p)) {
					v, _ := cmd.Flags().GetFloat64(string(p))
					values[p] = v
				}
			}
			methodName, _ := cmd.Flags().GetString("do-method")
			method, err := wqi.ParseDOMethod(methodName)
			if err != nil {
				return err
			}
			pressure, _ := cmd.Flags().GetFloat64("pressure")
			if cmd.Flags().Changed("elevation") {
				if cmd.Flags().Changed("pressure") {
					return errors.New("give --elevation or --pressure, not both")
				}
				elev, _ := cmd.Flags().GetFloat64("elevation")
				pressure = wqi.PressureAtElevation(elev)
			}
			res, err := wqi.Compute(wqi.Input{Values: values, Method: method, PressureAtm: pressure})
			if err != nil {
				return err
			}
			raw, err := json.Marshal(res)
			if err != nil {
				return err
			}
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\n", raw)
				return err
			}
			return renderWQI(cmd.OutOrStdout(), raw, e.now())
		},
	}
	f := cmd.Flags()
	f.Float64("ph", 0, "pH")
	f.Float64("do", 0, "dissolved oxygen, mg/L")
	f.Float64("bod", 0, "BOD (5-day, 20 °C), mg/L")
	f.Float64("fc", 0, "fecal coliform, MPN/100 mL")
	f.Float64("temp", 0, "water temperature for DO saturation, °C (default 25)")
	f.String("do-method", "benson-krause", "DO % saturation method: benson-krause or mpcb (DO/6.5 mg/L)")
	f.Float64("elevation", 0, "station elevation in metres, for the air pressure")
	f.Float64("pressure", 0, "air pressure in atm (default 1)")
	f.Bool("json", false, "print machine-readable JSON")
	return cmd
}

func newAlertsCommand(e *env) *cobra.Command {
	cmd := queryCommand(e, "alerts", "Active alerts (--all: recent ones too)", cobra.NoArgs,
		func(ctx context.Context, c *admin.Client, cmd *cobra.Command, _ []string) (any, error) {
			all, _ := cmd.Flags().GetBool("all")
			return c.Alerts(ctx, all, 50)
		},
		nil)
	cmd.Flags().Bool("all", false, "include acknowledged and resolved alerts")
	cmd.RunE = wrapRender(cmd.RunE, e)
	cmd.AddCommand(queryCommand(e, "ack ID", "Acknowledge an alert", cobra.ExactArgs(1),
		func(ctx context.Context, c *admin.Client, _ *cobra.Command, args []string) (any, error) {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("alert id %q is not a number", args[0])
			}
			return c.Ack(ctx, id)
		},
		func(w io.Writer, v any, now time.Time) error {
			a := v.(alerting.Alert)
			_, err := fmt.Fprintf(w, "Alert %d acknowledged: %s\n", a.ID, a.Message)
			return err
		}))
	return cmd
}

// wrapRender gives `alerts` a renderer that knows about --all.
func wrapRender(runE func(*cobra.Command, []string) error, e *env) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
			return runE(cmd, args)
		}
		sock, err := config.SocketPath(configPath(cmd))
		if err != nil {
			return err
		}
		if s, _ := cmd.Flags().GetString("socket"); s != "" {
			sock = s
		}
		all, _ := cmd.Flags().GetBool("all")
		as, err := admin.NewClient(sock).Alerts(cmd.Context(), all, 50)
		if err != nil {
			return err
		}
		return renderAlerts(newTerminal(cmd.OutOrStdout()), as.Alerts, e.now(), all)
	}
}

func newQueueCommand(e *env) *cobra.Command {
	return queryCommand(e, "queue", "Uplink backlog in detail", cobra.NoArgs,
		func(ctx context.Context, c *admin.Client, _ *cobra.Command, _ []string) (any, error) {
			return c.Queue(ctx)
		},
		func(w io.Writer, v any, now time.Time) error { return renderQueue(w, v.(admin.Queue), now) })
}

func newFlushCommand(e *env) *cobra.Command {
	return queryCommand(e, "flush", "Forward the backlog to the cloud now", cobra.NoArgs,
		func(ctx context.Context, c *admin.Client, _ *cobra.Command, _ []string) (any, error) {
			return c.Flush(ctx)
		},
		func(w io.Writer, v any, now time.Time) error { return renderQueue(w, v.(admin.Queue), now) })
}

func newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Configuration tools"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Check a configuration file exactly as `run` would load it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(args[0])
			if err != nil {
				return err
			}
			for _, w := range cfg.Warnings() {
				fmt.Fprintf(cmd.ErrOrStderr(), "WARNING: %s\n", w)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (station %s, class %s, %d probes, %d MQTT users)\n",
				args[0], cfg.Station.ID, cfg.Station.Class, len(cfg.Probes), len(cfg.MQTT.Users))
			return err
		},
	})
	return cmd
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "ph-agent %s\n", version.Version)
			return err
		},
	}
}

func newPasswdCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "passwd",
		Short: "Read a password on standard input and print its bcrypt hash for mqtt.users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
			if err != nil {
				return fmt.Errorf("hash password: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", hash)
			return err
		},
	}
}

func readPassword(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1024))
	if err != nil {
		return "", err
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", errors.New("empty password on standard input")
	}
	return pw, nil
}

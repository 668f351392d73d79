// Package cli is ph-cloud's command line: the service (`serve`), schema migrations
// (`migrate`), station administration (`station add|list|rotate-token|set-river`), tokens of people
// and tools (`token add|list|revoke`), lab samples (`samples import`), CSV export
// (`export`) and the fleet's health (`fleet`). Commands are
// built by constructors and write to the cobra command's streams, so tests drive them with
// SetArgs and SetOut.
package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/purehealth/purehealth/cloud/internal/config"
	"github.com/purehealth/purehealth/cloud/internal/server"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/internal/exitcode"
	"github.com/purehealth/purehealth/internal/logging"
	"github.com/purehealth/purehealth/shared/version"
)

// ExitCode maps an error from Run to the process exit code: a start-up failure exits
// differently from a failure while running (see internal/exitcode).
func ExitCode(err error) int { return exitcode.Of(err) }

// DefaultConfig is where commands look without --config (also $PH_CLOUD_CONFIG).
const DefaultConfig = "/etc/ph-cloud/cloud.yaml"

// Run executes ph-cloud with args and reports an error as one line on stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "ph-cloud: %v\n", err)
	}
	return err
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "ph-cloud",
		Short:         "Pure Health cloud service: ingest from station agents, storage, JSON API",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitcode.AtStartup(err) })
	root.AddCommand(newServeCommand(), newMigrateCommand(), newStationCommand(), newConfigCommand(),
		newViewerTokenCommand(), newVersionCommand(), newAnalyzeCommand(), newTokenCommand(), newSamplesCommand(),
		newExportCommand(), newFleetCommand())
	return root
}

func addConfigFlag(cmd *cobra.Command) {
	cmd.Flags().String("config", "", "configuration file (default $PH_CLOUD_CONFIG or "+DefaultConfig+")")
}

func loadConfig(cmd *cobra.Command) (*config.Config, error) {
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		path = os.Getenv("PH_CLOUD_CONFIG")
	}
	if path == "" {
		path = DefaultConfig
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, exitcode.AtStartup(err)
	}
	return cfg, nil
}

func storeOptions(cfg *config.Config, log *slog.Logger) store.Options {
	return store.Options{
		MaxConns:      cfg.Database.MaxConns,
		QueryTimeout:  cfg.Database.QueryTimeout.Std(),
		IngestTimeout: cfg.Database.IngestTimeout.Std(),
		AheadDays:     cfg.Partitions.AheadDays,
		Retention:     retention(cfg),
		// Lab, government and satellite data are kept by their own rules (retention.external,
		// each source's retention), never by the raw readings' one.
		SourceRetention: cfg.SourceRetention(),
		LiveMaxAge:      cfg.WebSocket.LiveMaxAge.Std(),
		Log:             log.With("component", "store"),
	}
}

func retention(cfg *config.Config) store.Retention {
	return store.Retention{
		Measurements: cfg.Retention.Measurements.Std(), WQI: cfg.Retention.WQI.Std(), External: cfg.Retention.External.Std(),
		Alerts: cfg.Retention.Alerts.Std(), Rollups: cfg.Retention.Rollups.Std(),
		Health: cfg.Retention.Health.Std(), Forecasts: cfg.Retention.Forecasts.Std(),
	}
}

// openStore opens the database of cfg for a command; an unmigrated database or one out of
// reach is a start-up error.
func openStore(cmd *cobra.Command, cfg *config.Config, log *slog.Logger) (*store.Store, error) {
	st, err := store.Open(cmd.Context(), cfg.DatabaseURL, storeOptions(cfg, log))
	if err != nil {
		return nil, exitcode.AtStartup(fmt.Errorf("database: %w", err))
	}
	return st, nil
}

func newServeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the cloud service",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			log := logging.New(cmd.ErrOrStderr(), cfg.Log)
			st, err := openStore(cmd, cfg, log)
			if err != nil {
				return err
			}
			defer st.Close()
			srv, err := server.New(cfg, st, log)
			if err != nil {
				return exitcode.AtStartup(err)
			}
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return exitcode.AtStartup(err)
			}
			if cfg.Metrics.Listen != "" {
				mln, err := net.Listen("tcp", cfg.Metrics.Listen)
				if err != nil {
					ln.Close()
					return exitcode.AtStartup(fmt.Errorf("metrics.listen: %w", err))
				}
				srv.ServeMetricsOn(mln)
			}
			return srv.Run(cmd.Context(), ln)
		},
	}
	addConfigFlag(cmd)
	return cmd
}

func newMigrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the database schema (idempotent)",
		Long: `Apply the schema migrations this ph-cloud needs. The first run chooses the storage:
TimescaleDB when the server can enable the extension (installed and preloaded) (hypertables, continuous aggregates,
compression and retention policies), plain PostgreSQL with native daily partitions
otherwise (or as database.mode says). Later runs keep that choice. With TimescaleDB every
run also re-applies the retention policies from the configuration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			res, err := store.Migrate(cmd.Context(), cfg.DatabaseURL, store.MigrateOptions{
				Mode: store.Mode(cfg.Database.Mode), Retention: retention(cfg),
			})
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			out := cmd.OutOrStdout()
			if res.ModeReason != "" {
				fmt.Fprintf(out, "storage: %s; %s\n", res.Mode, res.ModeReason)
			} else {
				fmt.Fprintf(out, "storage: %s\n", res.Mode)
			}
			if len(res.Applied) == 0 {
				fmt.Fprintf(out, "schema: %d, up to date\n", res.To)
			} else {
				fmt.Fprintf(out, "schema: %d -> %d\n", res.From, res.To)
			}
			return nil
		},
	}
	addConfigFlag(cmd)
	return cmd
}

func newStationCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "station",
		Short: "Register stations and manage their tokens",
	}
	cmd.AddCommand(newStationAddCommand(), newStationListCommand(), newStationRotateCommand(), newStationRemoveCommand(),
		newStationSetAuthCommand(), newStationSetRiverCommand())
	return cmd
}

// withStore runs fn with an open store and a logger for a station command.
func withStore(cmd *cobra.Command, fn func(st *store.Store) error) error {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	st, err := openStore(cmd, cfg, logging.New(cmd.ErrOrStderr(), cfg.Log))
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

func newStationAddCommand() *cobra.Command {
	var name, class string
	var lat, lon float64
	var rf riverFlags
	cmd := &cobra.Command{
		Use:   "add ID",
		Short: "Register a station and print its new token (alone, on stdout)",
		Long: `Register a station and print its new token alone on stdout, for scripts:

  ph-cloud station add MH-PUNE-001 --name "Mula-Mutha at Sangam" --class B \
    --river Mula-Mutha --river-km 0.5 > token

Only a hash of the token is stored: it cannot be shown again, only replaced with
rotate-token.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := store.NewStation{ID: args[0], Name: name, Class: class}
			latSet, lonSet := cmd.Flags().Changed("lat"), cmd.Flags().Changed("lon")
			if latSet != lonSet {
				return exitcode.AtStartup(errors.New("give both --lat and --lon, or neither"))
			}
			if latSet {
				n.Lat, n.Lon = &lat, &lon
			}
			var err error
			if n.River, err = rf.river(cmd); err != nil {
				return err
			}
			return withStore(cmd, func(st *store.Store) error {
				token, err := st.AddStation(cmd.Context(), n)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), token)
				fmt.Fprintf(cmd.ErrOrStderr(), "station %s added; keep the token: it is not stored and cannot be shown again\n", n.ID)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "station name (required)")
	cmd.Flags().StringVar(&class, "class", "B", "CPCB designated-best-use class, A–E")
	cmd.Flags().Float64Var(&lat, "lat", 0, "latitude, degrees")
	cmd.Flags().Float64Var(&lon, "lon", 0, "longitude, degrees")
	rf.add(cmd)
	if err := cmd.MarkFlagRequired("name"); err != nil {
		panic(err) // the flag is defined just above
	}
	addConfigFlag(cmd)
	return cmd
}

func newStationRotateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate-token ID",
		Short: "Give a station a new token (printed alone on stdout); the old one stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd, func(st *store.Store) error {
				token, err := st.RotateToken(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), token)
				return nil
			})
		},
	}
	addConfigFlag(cmd)
	return cmd
}

func newStationSetAuthCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "set-auth ID token|cert|both",
		Short: "Say how a station proves who it is at ingest: its token, a client certificate, or both",
		Long: `Say how a station proves who it is when it sends data:

  token  its bearer token (the default)
  cert   a client certificate issued by the CA in tls.client_ca_file whose common name
         (or a DNS name) is the station's id; the token is then not needed
  both   the token and the certificate, naming the same station

The station's agent presents the certificate with uplink.cert_file and uplink.key_file.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd, func(st *store.Store) error {
				if err := st.SetStationAuth(cmd.Context(), args[0], args[1]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "station %s authenticates with %s\n", args[0], args[1])
				return nil
			})
		},
	}
	addConfigFlag(cmd)
	return cmd
}

func newStationRemoveCommand() *cobra.Command {
	var purge bool
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: "Take a station out of service: its token stops working at once (--purge deletes its data too)",
		Long: `Take a station out of service. Its token stops working at once, it leaves the
station list, the dashboard and the health check, and its data stays, readable by its
id. With --purge every reading, index, alert and event of the station is deleted too,
and the id can be registered again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd, func(st *store.Store) error {
				if err := st.RemoveStation(cmd.Context(), args[0], purge); err != nil {
					return err
				}
				what := "removed; its data is kept"
				if purge {
					what = "removed with all its data"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "station %s %s\n", args[0], what)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&purge, "purge", false, "delete the station's data too")
	addConfigFlag(cmd)
	return cmd
}

func newStationListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List stations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, func(st *store.Store) error {
				var all []store.Station
				after := ""
				for {
					page, err := st.Stations(cmd.Context(), after, 1000)
					if err != nil {
						return err
					}
					all = append(all, page...)
					if len(page) < 1000 {
						break
					}
					after = page[len(page)-1].ID
				}
				if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
					if all == nil {
						all = []store.Station{}
					}
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					return enc.Encode(struct {
						Stations []store.Station `json:"stations"`
					}{all})
				}
				return renderStations(cmd.OutOrStdout(), all, time.Now())
			})
		},
	}
	cmd.Flags().Bool("json", false, "print machine-readable JSON")
	addConfigFlag(cmd)
	return cmd
}

func renderStations(w io.Writer, sts []store.Station, now time.Time) error {
	if len(sts) == 0 {
		_, err := fmt.Fprintln(w, "no stations (add one with: ph-cloud station add ID --name NAME)")
		return err
	}
	t := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(t, "ID\tNAME\tCLASS\tLAT\tLON\tLAST BATCH\tREADINGS SEQ\tRIVER")
	for _, s := range sts {
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.ID, s.Name, s.Class, coord(s.Lat), coord(s.Lon),
			ago(s.LastBatchAt, now), s.ReadingsSeq, riverText(s))
	}
	return t.Flush()
}

func coord(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', 4, 64)
}

// ago renders a time as "2m ago".
func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	d := now.Sub(*t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", max(int(d.Seconds()), 0))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Configuration tools"}
	check := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Check a configuration file the way serve loads it",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if err := cmd.Flags().Set("config", args[0]); err != nil {
					return err
				}
			}
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", cfg.Path)
			return nil
		},
	}
	addConfigFlag(check)
	cmd.AddCommand(check)
	return cmd
}

func newViewerTokenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "viewer-token",
		Short: "Make a token for live WebSocket viewers (printed alone on stdout)",
		Long: `Make a random viewer token. The token goes on stdout alone (give it to the
dashboard or the integrator); the line to add to the configuration, with only the
token's SHA-256, goes on stderr:

  ph-cloud viewer-token > viewer.token

With any websocket.viewer_tokens_sha256 configured, every read path (the API, /ws,
/stats, /metrics) needs a viewer token. Tokens made with ` + "`ph-cloud token add NAME --role viewer`" + `
need no change to the configuration and can be revoked by name.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var b [32]byte
			rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
			token := "phv_" + base64.RawURLEncoding.EncodeToString(b[:])
			if _, err := fmt.Fprintln(cmd.OutOrStdout(), token); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "add to the configuration:\n  websocket: {viewer_tokens_sha256: [%s]}\n",
				config.HashViewerToken(token))
			return nil
		},
	}
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "ph-cloud", version.Version)
			return err
		},
	}
}

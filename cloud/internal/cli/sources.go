package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/purehealth/purehealth/cloud/internal/fusedwqi"
	"github.com/purehealth/purehealth/cloud/internal/readingcsv"
	"github.com/purehealth/purehealth/cloud/internal/samples"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/internal/exitcode"
	"github.com/purehealth/purehealth/shared/telemetry"
)

func newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Tokens of people and tools: lab (posts samples), viewer (reads), operator (reads and acts)",
	}
	cmd.AddCommand(newTokenAddCommand(), newTokenListCommand(), newTokenRevokeCommand())
	return cmd
}

func newTokenAddCommand() *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "add NAME --role lab|viewer|operator",
		Short: "Make a token and print it (alone, on stdout)",
		Long: `Make a token of a role and print it alone on stdout, for scripts:

  ph-cloud token add lab-pune --role lab > lab-pune.token

Only a hash of the token is stored: it cannot be shown again, only revoked and made anew.
Roles: lab posts samples (POST /v1/samples); viewer reads the API, the live stream and
the dashboard; operator reads and acts (acknowledges alerts, manages stations, posts
samples). Station tokens come with ph-cloud station add.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd, func(st *store.Store) error {
				token, err := st.AddToken(cmd.Context(), args[0], store.Role(role))
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), token)
				fmt.Fprintf(cmd.ErrOrStderr(), "token %s (%s) added; keep it: it is not stored and cannot be shown again\n", args[0], role)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "lab, viewer or operator (required)")
	if err := cmd.MarkFlagRequired("role"); err != nil {
		panic(err) // the flag is defined just above
	}
	addConfigFlag(cmd)
	return cmd
}

func newTokenListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens of people and tools (names and roles; never the tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, func(st *store.Store) error {
				ts, err := st.Tokens(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
					if ts == nil {
						ts = []store.Token{}
					}
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					return enc.Encode(struct {
						Tokens []store.Token `json:"tokens"`
					}{ts})
				}
				if len(ts) == 0 {
					_, err := fmt.Fprintln(cmd.OutOrStdout(), "no tokens (make one with: ph-cloud token add NAME --role lab|viewer|operator)")
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "NAME\tROLE\tCREATED")
				now := time.Now()
				for _, t := range ts {
					created := t.CreatedAt
					fmt.Fprintf(w, "%s\t%s\t%s\n", t.Name, t.Role, ago(&created, now))
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().Bool("json", false, "print machine-readable JSON")
	addConfigFlag(cmd)
	return cmd
}

func newTokenRevokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token: it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd, func(st *store.Store) error {
				if err := st.RevokeToken(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "token %s revoked\n", args[0])
				return nil
			})
		},
	}
	addConfigFlag(cmd)
	return cmd
}

func newSamplesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "samples", Short: "Lab and field-kit samples"}
	var by string
	imp := &cobra.Command{
		Use:   "import FILE.csv",
		Short: "Store a lab's CSV sheet, as POST /v1/samples does (all rows or none)",
		Long: `Store the samples of a CSV file with the header
station_id,param,value,unit,sampled_at and optional sample_id,lab,method columns, exactly
as POST /v1/samples does: every row checked before anything is stored, the first bad row
named with its column, samples already stored counted as duplicates. It prints
{"accepted": N, "duplicates": M, "revised": R}, and updates the fused WQI of the
stations whose values changed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return exitcode.AtStartup(err)
			}
			defer f.Close()
			// A file on disk may be larger than a body over HTTP, within reason.
			lim := cfg.Samples.Limits()
			lim.MaxBytes, lim.MaxRows = 16*lim.MaxBytes, 16*lim.MaxRows
			res, err := samples.Parse(bufio.NewReader(f), samples.CSV, lim, time.Now())
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return withStore(cmd, func(st *store.Store) error {
				stored, err := st.StoreSamples(cmd.Context(), by, res.Samples)
				var unknown *store.UnknownStationError
				if errors.As(err, &unknown) {
					for i, s := range res.Samples {
						if s.Station == unknown.Stations[0] {
							return fmt.Errorf("%s: %w", args[0], &samples.RowError{Row: res.Rows[i], Column: "station_id",
								Msg: "no station " + s.Station + " is registered"})
						}
					}
				}
				if err != nil {
					return err
				}
				// The service would catch up within fusion.interval; the import shows at once.
				u := fusedwqi.New(st, fusedwqi.Options{Policy: cfg.Fusion.Policy()})
				if err := u.UpdateStations(cmd.Context(), stored.Stations...); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "samples stored; the fused WQI is updated by the service later: %v\n", err)
				}
				return json.NewEncoder(cmd.OutOrStdout()).Encode(samples.Reply{Accepted: stored.New + stored.Revised,
					Revised: stored.Revised, Duplicates: stored.Unchanged + res.Duplicates})
			})
		},
	}
	imp.Flags().StringVar(&by, "by", "cli", "who submits them (recorded beside each sample)")
	addConfigFlag(imp)
	cmd.AddCommand(imp)
	return cmd
}

func newExportCommand() *cobra.Command {
	var station, from, to, param string
	var revisions bool
	cmd := &cobra.Command{
		Use:   "export --station ID [--from TIME] [--to TIME]",
		Short: "Write a station's readings as CSV to stdout (as GET .../readings?format=csv)",
		Long: `Write every reading of a station, whatever its source (probes, labs, government
programmes, satellites), oldest first, as CSV with the header
time,station_id,param,value,unit,quality,source,sensor and provenance columns after it.
Times are RFC 3339; --from is inclusive, --to exclusive.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := store.ReadingsQuery{Station: station, Revisions: revisions, Oldest: true}
			if !telemetry.ValidStationID(station) {
				return exitcode.AtStartup(fmt.Errorf("--station %q: %s", station, telemetry.StationIDRule))
			}
			for _, f := range []struct {
				name, v string
				dst     *time.Time
			}{{"from", from, &q.From}, {"to", to, &q.To}} {
				if f.v == "" {
					continue
				}
				t, err := time.Parse(time.RFC3339Nano, f.v)
				if err != nil {
					return exitcode.AtStartup(fmt.Errorf("--%s %q is not an RFC 3339 time like 2025-11-13T12:00:00Z", f.name, f.v))
				}
				*f.dst = t
			}
			if param != "" {
				p, err := telemetry.ParseParam(param)
				if err != nil {
					return exitcode.AtStartup(fmt.Errorf("--param: %w", err))
				}
				q.Param = string(p)
			}
			return withStore(cmd, func(st *store.Store) error {
				if _, err := st.Station(cmd.Context(), station); err != nil {
					return err
				}
				out := bufio.NewWriter(cmd.OutOrStdout())
				w, err := readingcsv.NewWriter(out, station)
				if err != nil {
					return err
				}
				if err := st.ExportReadings(cmd.Context(), q, w.Write); err != nil {
					return err
				}
				if err := w.Flush(); err != nil {
					return err
				}
				return out.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&station, "station", "", "station id (required)")
	cmd.Flags().StringVar(&from, "from", "", "first time, RFC 3339 (inclusive)")
	cmd.Flags().StringVar(&to, "to", "", "end time, RFC 3339 (exclusive)")
	cmd.Flags().StringVar(&param, "param", "", "one parameter only")
	cmd.Flags().BoolVar(&revisions, "revisions", false, "include superseded revisions of republished values")
	if err := cmd.MarkFlagRequired("station"); err != nil {
		panic(err)
	}
	addConfigFlag(cmd)
	return cmd
}

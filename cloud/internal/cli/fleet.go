package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/purehealth/purehealth/cloud/internal/fleet"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/shared/wire"
)

func newFleetCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Every station's health as its agent last reported it: version, buffer autonomy, probes, calibration",
		Long: `Every station's health as its agent last reported it (about once a minute): when the
cloud last heard from it, its agent version, hours of autonomy (how long its buffer absorbs
the current rate with the uplink down), backlog, probes online and failing, and the next
calibration due. A version older than the newest in the fleet is marked "behind", an
autonomy under a day "LOW". --json prints what GET /v1/fleet answers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, func(st *store.Store) error {
				list, err := st.Fleet(cmd.Context())
				if err != nil {
					return err
				}
				view := fleet.Build(list)
				if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					return enc.Encode(view)
				}
				return renderFleet(cmd.OutOrStdout(), view, time.Now())
			})
		},
	}
	cmd.Flags().Bool("json", false, "print machine-readable JSON (as GET /v1/fleet)")
	addConfigFlag(cmd)
	return cmd
}

// renderFleet prints the fleet as an aligned table, one station a line.
func renderFleet(w io.Writer, v fleet.View, now time.Time) error {
	if len(v.Stations) == 0 {
		_, err := fmt.Fprintln(w, "no stations (add one with: ph-cloud station add ID --name NAME)")
		return err
	}
	t := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(t, "STATION\tLAST SEEN\tVERSION\tUPTIME\tCLOCK\tAUTONOMY\tBACKLOG\tPROBES\tFAILING\tCALIBRATION DUE")
	for _, s := range v.Stations {
		seen := ago(s.LastSeen, now)
		if !s.Online {
			seen += " OFFLINE"
		}
		if s.Version == nil {
			fmt.Fprintf(t, "%s\t%s\tno health record yet\t-\t-\t-\t-\t-\t-\t-\n", s.ID, seen)
			continue
		}
		version := *s.Version
		if s.VersionLags {
			version += " (behind " + v.NewestVersion + ")"
		}
		clock := "synced"
		if !*s.ClockSynced {
			clock = "NOT SYNCED"
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d/%d online\t%s\t%s\n", s.ID, seen, version,
			span(time.Duration(*s.UptimeS*float64(time.Second))), clock, autonomy(s), *s.Backlog,
			s.Probes.Online, s.Probes.Total, failing(s.Probes.Failing), calibrationDue(s, now))
	}
	return t.Flush()
}

func autonomy(s fleet.Station) string {
	if s.Buffer.AutonomyH == nil {
		return "unlimited (idle)"
	}
	out := span(time.Duration(*s.Buffer.AutonomyH * float64(time.Hour)))
	if s.AutonomyLow {
		out += " LOW"
	}
	return out
}

func failing(fs []wire.FailingProbe) string {
	if len(fs) == 0 {
		return "-"
	}
	names := make([]string, 0, len(fs))
	for _, f := range fs {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}

// calibrationDue names the probe due soonest (the record lists them soonest first).
func calibrationDue(s fleet.Station, now time.Time) string {
	if len(s.CalibrationDue) == 0 {
		return "-"
	}
	c := s.CalibrationDue[0]
	if d := c.DueAt.Sub(now); d > 0 {
		return c.Probe + " in " + span(d)
	}
	return c.Probe + " OVERDUE " + span(now.Sub(c.DueAt))
}

// span renders a duration as people read it: 45m, 18h, 3.2d.
func span(d time.Duration) string {
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%.1fd", d.Hours()/24)
}

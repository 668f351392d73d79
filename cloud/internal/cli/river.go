package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/internal/exitcode"
)

// riverFlags are --river and --river-km, given together.
type riverFlags struct {
	name string
	km   float64
}

func (r *riverFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.name, "river", "", "the river the station is on (with --river-km)")
	cmd.Flags().Float64Var(&r.km, "river-km", 0, "distance along the river, km, growing downstream (with --river)")
}

// river returns the flags' river, nil when neither flag was given.
func (r *riverFlags) river(cmd *cobra.Command) (*store.River, error) {
	name, km := cmd.Flags().Changed("river"), cmd.Flags().Changed("river-km")
	if name != km {
		return nil, exitcode.AtStartup(errors.New("give both --river and --river-km, or neither"))
	}
	if !name {
		return nil, nil
	}
	return &store.River{Name: r.name, Km: r.km}, nil
}

func newStationSetRiverCommand() *cobra.Command {
	var rf riverFlags
	var none bool
	cmd := &cobra.Command{
		Use:   "set-river ID (--river NAME --river-km KM | --none)",
		Short: "Place a station on its river, so that anomaly detection compares it with its neighbours",
		Long: `Place a registered station on a river at a distance along it (km, growing downstream,
from any origin the river's stations share), or take it off with --none. The anomaly
detection compares the stations of one river in this order: a change that travels
downstream is a pollution event, one that stays at one station a suspect sensor.`,
		Example: `  ph-cloud station set-river MH-PUNE-002 --river Mula-Mutha --river-km 9.5`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.river(cmd)
			if err != nil {
				return err
			}
			if (r == nil) == !none {
				return exitcode.AtStartup(errors.New("give --river and --river-km, or --none"))
			}
			return withStore(cmd, func(st *store.Store) error {
				if err := st.SetRiver(cmd.Context(), args[0], r); err != nil {
					return err
				}
				if r == nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "station %s is on no river now\n", args[0])
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "station %s is on the %s at km %g\n", args[0], r.Name, r.Km)
				}
				return nil
			})
		},
	}
	rf.add(cmd)
	cmd.Flags().BoolVar(&none, "none", false, "take the station off its river")
	addConfigFlag(cmd)
	return cmd
}

// riverText is a station's place on its river in `station list`: "Mula-Mutha km 9.5", or
// "-".
func riverText(s store.Station) string {
	if s.River == nil || s.RiverKm == nil {
		return "-"
	}
	return fmt.Sprintf("%s km %g", *s.River, *s.RiverKm)
}

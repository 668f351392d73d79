package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/purehealth/purehealth/firmware-sim/internal/scenario"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// History bounds: a year of readings at most, and no more than a million per series, so
// a typo in --step cannot fill the disk.
const (
	maxHistorySpan    = 366 * 24 * time.Hour
	maxHistoryReading = 1_000_000
)

// historyIndex is the truth.json `ph-sim history` writes.
type historyIndex struct {
	From     time.Time        `json:"from"`
	To       time.Time        `json:"to"`
	Step     string           `json:"step"`
	Stations []scenario.Truth `json:"stations"`
	Series   []historySeries  `json:"series"`
}

type historySeries struct {
	Station  string          `json:"station"`
	Probe    string          `json:"probe"`
	Sensor   string          `json:"sensor,omitempty"` // of an MQTT probe with several per parameter
	Param    telemetry.Param `json:"param"`
	File     string          `json:"file"` // relative to the index
	Readings int             `json:"readings"`
}

func newHistoryCommand() *cobra.Command {
	var (
		files    []string
		from, to string
		step     time.Duration
		out      string
	)
	cmd := &cobra.Command{
		Use:   "history --scenario FILE [--scenario FILE ...] --from TIME --to TIME --out DIR",
		Short: "Write what a scenario's probes would have reported over a period, with the ground truth",
		Long: `Write, for each scenario (one station each), the readings its probes would have
reported every --step from --from to --to, and what really happened: the ground truth
against which forecasts and anomaly detectors are scored.

The readings come from the same river models and probes as 'ph-sim station' with the same
seed, without the transports: a dropped or garbled reading is simply missing. Scenario
times given as durations (a plume's start, a probe's fault_at) count from --from.

DIR/<station>/<probe>.<param>.csv   header time,value; RFC 3339 UTC times (an MQTT probe
                                    with several sensors per parameter: <probe>.<sensor>.csv)
DIR/truth.json                      {"from","to","step","stations":[{"station","river",
                                    "river_km","incidents":[...],"faults":[...]}],
                                    "series":[{"station","probe","param","file","readings"}]}

Incidents are the pollution events that reach each station (its own discharges, those of
modelled stations upstream on its river, the scenario's plumes); faults are its probes'
faults and when they set in.`,
		Example: `  ph-sim history --scenario up.yaml --scenario down.yaml \
    --from 2026-01-01T00:00:00Z --to 2026-01-15T00:00:00Z --step 5m --out ./history`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start, end, err := historySpan(from, to, step)
			if err != nil {
				return usage(cmd, err)
			}
			if len(files) == 0 || out == "" {
				return usage(cmd, errors.New("--scenario and --out are required"))
			}
			var scs []*scenario.Scenario
			for _, f := range files {
				sc, err := scenario.Load(f)
				if err != nil {
					return usage(cmd, err)
				}
				scs = append(scs, sc)
			}
			idx, err := writeHistory(scs, start, end, step, out)
			if err != nil {
				return fail(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d series of %d stations in %s\n", len(idx.Series), len(idx.Stations), out)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&files, "scenario", nil, "a scenario file (repeatable: one per station)")
	cmd.Flags().StringVar(&from, "from", "", "start of the period, RFC 3339 (required)")
	cmd.Flags().StringVar(&to, "to", "", "end of the period, RFC 3339, excluded (required)")
	cmd.Flags().DurationVar(&step, "step", 5*time.Minute, "time between readings")
	cmd.Flags().StringVar(&out, "out", "", "directory to write into (created; required)")
	return cmd
}

func historySpan(from, to string, step time.Duration) (time.Time, time.Time, error) {
	start, err := time.Parse(time.RFC3339, from)
	if err != nil {
		return start, start, fmt.Errorf("--from %q: want an RFC 3339 time such as 2026-01-01T00:00:00Z", from)
	}
	end, err := time.Parse(time.RFC3339, to)
	if err != nil {
		return start, end, fmt.Errorf("--to %q: want an RFC 3339 time such as 2026-01-15T00:00:00Z", to)
	}
	switch span := end.Sub(start); {
	case span <= 0:
		return start, end, fmt.Errorf("--to %s is not after --from %s", to, from)
	case span > maxHistorySpan:
		return start, end, fmt.Errorf("--from to --to is %s; at most %s", span, maxHistorySpan)
	case step <= 0:
		return start, end, fmt.Errorf("--step %s must be positive", step)
	case span/step > maxHistoryReading:
		return start, end, fmt.Errorf("--step %s makes %d readings per series; at most %d", step, span/step, maxHistoryReading)
	}
	return start.UTC(), end.UTC(), nil
}

// writeHistory writes every scenario's readings and the index.
func writeHistory(scs []*scenario.Scenario, from, to time.Time, step time.Duration, dir string) (historyIndex, error) {
	idx := historyIndex{From: from, To: to, Step: step.String(), Stations: []scenario.Truth{}, Series: []historySeries{}}
	for _, sc := range scs {
		tr, err := sc.Truth(from, from, to)
		if err != nil {
			return idx, err
		}
		idx.Stations = append(idx.Stations, tr)
		if err := os.MkdirAll(filepath.Join(dir, sc.Station), 0o755); err != nil {
			return idx, err
		}
		var (
			f   *os.File
			w   *bufio.Writer
			cur *historySeries
		)
		closeCur := func() error {
			if f == nil {
				return nil
			}
			err := errors.Join(w.Flush(), f.Close())
			f = nil
			return err
		}
		err = sc.Record(from, from, to, step, func(r scenario.Reading) error {
			if cur == nil || cur.Probe != r.Probe || cur.Sensor != r.Sensor || cur.Param != r.Param {
				if err := closeCur(); err != nil {
					return err
				}
				name := string(r.Param)
				if r.Sensor != "" {
					name = r.Sensor
				}
				rel := filepath.Join(sc.Station, r.Probe+"."+name+".csv")
				idx.Series = append(idx.Series, historySeries{Station: sc.Station, Probe: r.Probe, Sensor: r.Sensor,
					Param: r.Param, File: rel})
				cur = &idx.Series[len(idx.Series)-1]
				var err error
				if f, err = os.Create(filepath.Join(dir, rel)); err != nil {
					return err
				}
				w = bufio.NewWriter(f)
				if _, err := w.WriteString("time,value\n"); err != nil {
					return err
				}
			}
			cur.Readings++
			_, err := w.WriteString(r.Time.UTC().Format(time.RFC3339) + "," + strconv.FormatFloat(r.Value, 'f', -1, 64) + "\n")
			return err
		})
		if err = errors.Join(err, closeCur()); err != nil {
			return idx, fmt.Errorf("%s: %w", sc.Station, err)
		}
	}
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return idx, err
	}
	return idx, os.WriteFile(filepath.Join(dir, "truth.json"), append(data, '\n'), 0o644)
}

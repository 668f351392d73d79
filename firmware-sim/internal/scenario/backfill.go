package scenario

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/purehealth/purehealth/firmware-sim/internal/mqttsim"
)

// BackfillReport says what Backfill published.
type BackfillReport struct {
	Probes   int   // MQTT probes backfilled
	Readings int64 // readings acknowledged by their brokers
	From, To time.Time
	Took     time.Duration
}

// String is the line `ph-sim station --backfill` prints.
func (r BackfillReport) String() string {
	return fmt.Sprintf("backfilled %d readings of %d mqtt probes from %s to %s in %s", r.Readings, r.Probes,
		r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339), r.Took.Round(time.Millisecond))
}

// Backfill publishes, to the broker of each MQTT probe of the scenario, what the probe
// would have reported every step over [from, to) for a station that starts at start
// (Record's readings: the same river, plumes and faults), with the sensor names its live
// publisher uses (<param>-<sensor index>), in time order, as acknowledged readings arrays
// (mqttsim.Replay). An agent receives them through its normal path: validated, stored,
// and forwarded to the cloud as a backlog. Probes of other kinds are polled by the agent
// and have no history to push. It returns when every probe's history is acknowledged.
func (sc *Scenario) Backfill(ctx context.Context, start, from, to time.Time, step time.Duration, log *slog.Logger) (BackfillReport, error) {
	rep := BackfillReport{From: from, To: to}
	began := time.Now()
	if step <= 0 {
		return rep, fmt.Errorf("step %s must be positive", step)
	}
	plans, err := sc.plans()
	if err != nil {
		return rep, err
	}
	m := sc.model(start)
	for _, pl := range plans {
		if pl.probe.Kind != KindMQTT {
			continue
		}
		var recs []mqttsim.Recorded
		err := record(pl, m, start, from, to, step, func(r Reading) error {
			// The live publisher names sensor j's reading of p "p-j".
			recs = append(recs, mqttsim.Recorded{Param: r.Param, Value: r.Value, Time: r.Time,
				Sensor: string(r.Param) + "-" + strconv.Itoa(r.index)})
			return nil
		})
		if err != nil {
			return rep, err
		}
		slices.SortStableFunc(recs, func(a, b mqttsim.Recorded) int { return a.Time.Compare(b.Time) })
		r, err := mqttsim.Replay(ctx, pl.mqtt, recs, 0, log.With("probe", pl.probe.Name))
		rep.Readings += r.Readings
		if err != nil {
			return rep, fmt.Errorf("probe %q: %w", pl.probe.Name, err)
		}
		rep.Probes++
	}
	rep.Took = time.Since(began)
	return rep, nil
}

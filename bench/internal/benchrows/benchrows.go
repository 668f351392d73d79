// Package benchrows makes the deterministic station readings that the storage benchmarks
// load, in the form each loader takes: batches for the cloud's POST /v1/ingest, CSV for
// psql's \copy, rows for pgx's CopyFrom, and JSON arrays for an agent's
// purehealth/<station>/readings topic. One Set gives the same rows in every form, so two
// loaders compared with each other store exactly the same data.
//
// A Set is a value computed on demand: no reading is held in memory, so a million rows cost
// nothing until a form of them is written. Every function is safe for concurrent use.
package benchrows

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
)

// Params are the parameters of every station, in the order one timestamp's readings take:
// a multi-parameter sonde reporting all eight at once.
var Params = [...]telemetry.Param{
	telemetry.PH, telemetry.DO, telemetry.BOD, telemetry.FC,
	telemetry.TDS, telemetry.Temp, telemetry.Turbidity, telemetry.Conductivity,
}

// baseline is each parameter's centre and spread: a clean class B river (no alert
// thresholds crossed), so an agent that receives the readings raises no alerts.
var baseline = map[telemetry.Param]struct{ mid, spread float64 }{
	telemetry.PH: {7.3, 0.3}, telemetry.DO: {6.8, 0.6}, telemetry.BOD: {2, 0.5},
	telemetry.FC: {300, 100}, telemetry.TDS: {320, 40}, telemetry.Temp: {26, 2},
	telemetry.Turbidity: {6, 3}, telemetry.Conductivity: {480, 50},
}

// Columns are the columns of the measurements table a row fills, in the order of the CSV
// and of CopyFrom's values. received_at takes the table's default.
var Columns = []string{"time", "station_id", "param", "value", "unit", "quality", "source", "seq", "sensor", "flags"}

// Set describes the readings of some stations: station i has PerStation readings with
// seqs 1..PerStation. Every Spacing each station reports all of Params at once (seqs in
// the order of Params), the newest of them at End.
type Set struct {
	Stations   []string
	PerStation int
	Spacing    time.Duration
	End        time.Time
	Seed       uint64
}

// Validate reports what makes the set unusable.
func (s Set) Validate() error {
	var errs []error
	if len(s.Stations) == 0 {
		errs = append(errs, errors.New("benchrows: no station"))
	}
	seen := map[string]bool{}
	for _, id := range s.Stations {
		if id == "" || seen[id] {
			errs = append(errs, fmt.Errorf("benchrows: station %q empty or repeated", id))
		}
		seen[id] = true
	}
	if s.PerStation < 1 {
		errs = append(errs, fmt.Errorf("benchrows: %d readings per station, want at least 1", s.PerStation))
	}
	if s.Spacing < 0 {
		errs = append(errs, fmt.Errorf("benchrows: negative spacing %s", s.Spacing))
	}
	if s.End.IsZero() {
		errs = append(errs, errors.New("benchrows: no end time"))
	}
	return errors.Join(errs...)
}

// Len is the number of readings in the set.
func (s Set) Len() int { return len(s.Stations) * s.PerStation }

// Span is the time from the first timestamp of a station to the last.
func (s Set) Span() time.Duration {
	return time.Duration(s.timestamps()-1) * s.Spacing
}

func (s Set) timestamps() int { return (s.PerStation + len(Params) - 1) / len(Params) }

// Start is the time of the oldest reading.
func (s Set) Start() time.Time { return s.End.Add(-s.Span()) }

// Reading returns reading i (0-based; its seq is i+1) of station st (an index into
// Stations).
func (s Set) Reading(st, i int) wire.Reading {
	p := Params[i%len(Params)]
	tick := i / len(Params)
	at := s.End.Add(-time.Duration(s.timestamps()-1-tick) * s.Spacing).UTC()
	b := baseline[p]
	v := b.mid + b.spread*(2*unit(s.Seed, uint64(st), uint64(i))-1)
	info, _ := telemetry.Info(p)
	return wire.Reading{
		Seq: uint64(i + 1), Time: at, Sensor: string(p) + "-1", Param: string(p),
		Value: math.Round(v*1000) / 1000, Unit: info.Unit,
		Quality: string(telemetry.Good), Source: string(telemetry.SourceSensor),
	}
}

// unit is a uniform number in [0, 1) from the three inputs (splitmix64).
func unit(seed, a, b uint64) float64 {
	x := seed ^ a*0x9e3779b97f4a7c15 ^ b*0xbf58476d1ce4e5b9
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// Batch is station st's readings from..from+n-1 (0-based, clipped to the set) as the
// agent would send them. agent is the batch's agent version.
func (s Set) Batch(st, from, n int, agent string) *wire.Batch {
	b := &wire.Batch{V: wire.Version, Station: s.Stations[st], Agent: agent, SentAt: time.Now().UTC()}
	for i := from; i < min(from+n, s.PerStation); i++ {
		b.Readings = append(b.Readings, s.Reading(st, i))
	}
	return b
}

// WriteCSV writes every reading (station after station, in seq order) as CSV rows of
// Columns, without a header: the input of
// `\copy measurements(<Columns>) FROM FILE WITH (FORMAT csv)`.
func (s Set) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	rec := make([]string, len(Columns))
	for st, id := range s.Stations {
		for i := range s.PerStation {
			r := s.Reading(st, i)
			rec[0] = r.Time.Format(time.RFC3339Nano)
			rec[1] = id
			rec[2] = r.Param
			rec[3] = strconv.FormatFloat(r.Value, 'g', -1, 64)
			rec[4] = r.Unit
			rec[5] = r.Quality
			rec[6] = r.Source
			rec[7] = strconv.FormatUint(r.Seq, 10)
			rec[8] = r.Sensor
			rec[9] = "{}"
			if err := cw.Write(rec); err != nil {
				return fmt.Errorf("write csv: %w", err)
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// Rows is every reading (station after station, in seq order) as values of Columns,
// made now: for pgx.CopyFromRows, so that a timed COPY does not include making them.
func (s Set) Rows() [][]any {
	out := make([][]any, 0, s.Len())
	for src := s.CopySource(); src.Next(); {
		v, _ := src.Values() // never fails
		out = append(out, v)
	}
	return out
}

// CopySource is every reading (station after station, in seq order) as values of Columns,
// for pgx's CopyFrom. Each call returns a new source, to be used by one goroutine.
func (s Set) CopySource() pgx.CopyFromSource {
	return &copySource{set: s, i: -1}
}

type copySource struct {
	set   Set
	st, i int
}

func (c *copySource) Next() bool {
	c.i++
	if c.i == c.set.PerStation {
		c.st, c.i = c.st+1, 0
	}
	return c.st < len(c.set.Stations)
}

func (c *copySource) Values() ([]any, error) {
	r := c.set.Reading(c.st, c.i)
	return []any{r.Time, c.set.Stations[c.st], r.Param, r.Value, r.Unit, r.Quality, r.Source,
		int64(r.Seq), r.Sensor, []string{}}, nil
}

func (c *copySource) Err() error { return nil }

// agentReading is one element of the JSON array an agent takes on
// purehealth/<station>/readings (design §4).
type agentReading struct {
	Param     string  `json:"param"`
	Value     float64 `json:"value"`
	Unit      string  `json:"unit"`
	Timestamp string  `json:"timestamp"`
	Sensor    string  `json:"sensor"`
}

// Payload is station st's readings from..from+n-1 (clipped to the set) as one MQTT message
// for purehealth/<station>/readings. The agent assigns its own seqs, in array order.
func (s Set) Payload(st, from, n int) ([]byte, error) {
	arr := make([]agentReading, 0, n)
	for i := from; i < min(from+n, s.PerStation); i++ {
		r := s.Reading(st, i)
		arr = append(arr, agentReading{Param: r.Param, Value: r.Value, Unit: r.Unit,
			Timestamp: r.Time.Format(time.RFC3339Nano), Sensor: r.Sensor})
	}
	b, err := json.Marshal(arr)
	if err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	return b, nil
}

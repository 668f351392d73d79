package upstream

import (
	"maps"
	"slices"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Reading is one value an upstream service published for one of our stations, in the
// parameter's canonical unit, with its provenance. Seq is unused (the agent assigns seqs
// to station readings only). Sensor is the name of the configured source unless the
// source says otherwise (a satellite collection).
type Reading struct {
	telemetry.Reading
	Origin Origin
}

// Origin says where a reading came from.
type Origin struct {
	// Source is the configured name of the upstream source (cpcb-nwmp), unique per
	// deployment; the Collector sets it.
	Source string
	// RecordID identifies the upstream record: its own id when it has one, else a stable
	// digest of the fields that identify it (never of its values, so that a corrected
	// value keeps the record's id).
	RecordID string
	// StationCode is the station's code at the upstream service ("" when it uses ours).
	StationCode string

	// Satellite estimates only.
	Collection string    // sentinel-2-l2a, landsat-ot-l2
	Scene      time.Time // acquisition date of the newest scene in the value
	Scenes     int       // scenes aggregated into the value
	Pixels     int       // valid pixels counted over those scenes
}

// Key names one published observation: a source's value for a station and parameter at
// a time. Two readings with one Key and different values are revisions of each other.
type Key struct {
	Source  string
	Station string
	Param   telemetry.Param
	Time    time.Time // UTC
}

// Key returns the reading's key.
func (r Reading) Key() Key {
	return Key{Source: r.Origin.Source, Station: r.Station, Param: r.Param, Time: r.Time.UTC()}
}

// Change is what a delivered reading is to what storage already holds under its Key.
type Change int

// The changes.
const (
	// New: nothing is stored under the key; store the reading.
	New Change = iota
	// Unchanged: the stored current value is the same; store nothing.
	Unchanged
	// Revised: the source republished the observation with another value; keep the old
	// one as history and make this one current.
	Revised
)

func (c Change) String() string {
	switch c {
	case New:
		return "new"
	case Unchanged:
		return "unchanged"
	case Revised:
		return "revised"
	}
	return "invalid"
}

// Classify compares r with the current value stored under its key (stored is false when
// there is none). Values compare exactly: both went through the same parsing and unit
// conversion, so an unchanged upstream text gives the same float64, and any difference
// is a republication worth keeping.
func Classify(r Reading, current float64, stored bool) Change {
	switch {
	case !stored:
		return New
	case current == r.Value:
		return Unchanged
	}
	return Revised
}

// Counts are how many of something there were, by kind (a missing-value spelling, a
// reason a satellite interval was left out).
type Counts map[string]int

// Add adds n of kind.
func (c Counts) Add(kind string, n int) {
	if n != 0 {
		c[kind] += n
	}
}

// Merge adds every count of o.
func (c Counts) Merge(o Counts) {
	for k, n := range o {
		c.Add(k, n)
	}
}

// Total is the sum of the counts.
func (c Counts) Total() int {
	var n int
	for _, v := range c {
		n += v
	}
	return n
}

// Kinds lists the kinds with a count, sorted.
func (c Counts) Kinds() []string { return slices.Sorted(maps.Keys(c)) }

// Batch is what a source delivered in one round.
type Batch struct {
	Readings []Reading
	// Skipped counts the values and records that gave no reading, by kind (the source's
	// own kinds: "na", "bdl", "other_station", "cloudy", ...).
	Skipped Counts
	// Records is how many upstream records (rows, intervals) were read.
	Records int
	// Cursor is where the next round starts ("" keeps the current one). The Collector
	// saves it only once the sink holds the readings.
	Cursor string
	// Unchanged says the source has published nothing since the cursor (the round read
	// no records).
	Unchanged bool
}

package telemetry

import (
	"fmt"
	"math/bits"
	"strings"
	"time"
)

// Source says where a reading came from (contract).
type Source string

// The sources.
const (
	SourceSensor    Source = "sensor"
	SourceAPI       Source = "api"
	SourceSatellite Source = "satellite"
	SourceModel     Source = "model"
	SourceManual    Source = "manual"
)

// SourcesByTrust lists the sources most trusted first: a probe in the river, a lab or
// field-kit sample of the station, a government programme, a satellite estimate, a
// forecast. The station's WQI and the cloud's fused state prefer a fresh value of an
// earlier source.
var SourcesByTrust = []Source{SourceSensor, SourceManual, SourceAPI, SourceSatellite, SourceModel}

// Valid reports whether s is one of the known sources.
func (s Source) Valid() bool {
	switch s {
	case SourceSensor, SourceAPI, SourceSatellite, SourceModel, SourceManual:
		return true
	}
	return false
}

// Quality grades a reading (contract).
type Quality string

// The grades. Bad readings are kept for audit but never feed the WQI or threshold alerts.
const (
	Good    Quality = "good"
	Suspect Quality = "suspect"
	Bad     Quality = "bad"
)

// Valid reports whether q is one of the three grades.
func (q Quality) Valid() bool { return q == Good || q == Suspect || q == Bad }

// Flags record why a reading got its quality, and facts worth keeping beside it.
type Flags uint16

// The flags. Their names (see String) are part of the JSON output.
const (
	FlagOutOfRange   Flags = 1 << iota // outside the physical range: bad
	FlagProbeError                     // the probe reported an error: bad
	FlagImplausible                    // outside the plausible river range: suspect
	FlagSpike                          // jumps away from the recent window: suspect
	FlagFlatline                       // the same value too many times in a row: suspect
	FlagFuture                         // timestamp too far ahead of the receive time: suspect
	FlagPast                           // timestamp too far behind the receive time: suspect
	FlagTimeUnsynced                   // taken before the clock was known to be right
	FlagDownsampled                    // an hourly mean standing in for raw readings
	flagEnd
)

var flagNames = [...]string{
	"out_of_range", "probe_error", "implausible", "spike", "flatline", "future", "past",
	"time_unsynced", "downsampled",
}

// Has reports whether every flag in g is set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// Names lists the names of the set flags, lowest bit first.
func (f Flags) Names() []string {
	var out []string
	for f != 0 {
		i := bits.TrailingZeros16(uint16(f))
		if i < len(flagNames) {
			out = append(out, flagNames[i])
		}
		f &^= 1 << i
	}
	return out
}

// String joins the flag names with commas.
func (f Flags) String() string { return strings.Join(f.Names(), ",") }

// ParseFlags is the inverse of Names.
func ParseFlags(names []string) (Flags, error) {
	var f Flags
	for _, n := range names {
		found := false
		for i, known := range flagNames {
			if n == known {
				f |= 1 << i
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown quality flag %q", n)
		}
	}
	return f, nil
}

// Reading is one stored measurement. Value is in the parameter's canonical unit.
type Reading struct {
	Seq     uint64    // assigned by the agent: strictly increasing per station, never reused
	Station string    // station id, e.g. MH-PUNE-001
	Sensor  string    // sensor or probe name within the station
	Param   Param     // canonical parameter
	Value   float64   // in Unit
	Unit    string    // the parameter's canonical unit
	Time    time.Time // when it was measured, UTC
	Source  Source    // sensor, api, satellite, model, manual
	Quality Quality   // good, suspect, bad
	Flags   Flags     // why Quality is what it is
	// Sample is the provenance of a lab or field-kit result (source manual); nil for
	// everything else.
	Sample *Sample
}

// Sample is the provenance of a lab or field-kit result: who analysed it, how, and the
// lab's own id for it. Empty fields are unknown.
type Sample struct {
	ID     string // the lab's sample id
	Lab    string
	Method string // e.g. "APHA 5210 B" for a 5-day BOD
}

// MaxProvenanceLen bounds each provenance text (a sample id, a lab's name, an upstream
// record id).
const MaxProvenanceLen = 256

// Check reports the first field that is not a printable name of at most
// MaxProvenanceLen bytes (empty fields are fine): its JSON name (sample_id, lab, method)
// and what is wrong.
func (s *Sample) Check() (field string, err error) {
	for _, f := range []struct{ name, v string }{{"sample_id", s.ID}, {"lab", s.Lab}, {"method", s.Method}} {
		if f.v == "" {
			continue
		}
		if err := CheckName(f.v, MaxProvenanceLen); err != nil {
			return f.name, err
		}
	}
	return "", nil
}

// IsZero reports whether s says nothing.
func (s *Sample) IsZero() bool { return s == nil || *s == Sample{} }

// Usable reports whether the reading may feed the WQI and threshold alerts.
func (r Reading) Usable() bool { return r.Quality != Bad }

// Observation is a measurement as a device or upstream reported it, before the agent has
// normalized its parameter and unit, graded it and given it a seq. Time is zero when the
// sender gave none (the receive time is used then).
type Observation struct {
	Station string
	Sensor  string
	Param   string // any alias accepted by ParseParam
	Value   float64
	Unit    string // any spelling accepted by Normalize; "" = canonical
	Time    time.Time
	Source  Source // "" = sensor
	// ProbeError marks a value the probe itself flagged as faulty (it is stored as bad).
	ProbeError bool
	// Sample is the provenance of a lab or field-kit result (Source manual).
	Sample *Sample
}

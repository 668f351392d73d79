// Package anomaly finds readings that leave their station's normal behaviour and tells a
// pollution event travelling down a river from a faulty probe at one station.
//
// # One station
//
// ScanSeries judges one station's parameter against its own history. Readings become
// hourly medians (package hourly), on the log scale for parameters that vary by factors.
// Each hour's baseline is the median of the same hour of the day over the previous days
// (default seven). Two channels score the hours in robust standard deviations of their
// own past errors (MAD, and the upper quartile for the heavier tails a river has):
//
//   - the fast channel expects the baseline plus the river's recent offset from it,
//     followed by a robust (Theil–Sen) line, so that a river wandering smoothly is
//     followed and what stands out is a change faster than the river's own trend —
//     pollution events, and sensor faults as they start. An hour 5 sd out opens an
//     episode, hours 3 sd out on the same side extend it;
//   - the slow channel expects the baseline alone, to catch what the offset would follow:
//     a slow drift of a fouling probe, a shift that stays (a day or more beyond 5 sd,
//     peaking beyond 10).
//
// The shape of an episode names it: a drift grows steadily, a level shift holds for half a
// day or more, anything else is a deviation. Anomalous hours are kept out of later
// baselines for a while, so an event is measured against the river before it and a slow
// fault does not teach the baseline to follow it.
//
// Two rule-based checks run on the readings themselves: spikes (a reading far from the
// median of its six neighbours, in units of the series' reading-to-reading noise: a
// Hampel filter) and stuck values (a run of identical readings longer than the sensor's
// own rate of repeats makes believable).
//
// This combination — rule-based checks for spikes and constant values, and
// prediction-based detectors (here a seasonal robust baseline with and without a
// trend-following offset) for shifts, drift and events — follows the recommendation of
// Leigh et al. (2019, "A framework for automated anomaly detection in high frequency
// water-quality data from in situ sensors", Sci. Total Environ. 664:885–898) to combine
// methods, each for the anomaly types it detects best. Medians rather than means, so that
// the anomalies themselves do not hide in the baseline.
//
// # Along a river
//
// Assess compares the stations of one river, ordered by river_km (growing downstream). A
// deviation at one station that then appears at the next station downstream — same
// parameter, same direction — with a delay a river can explain (a flow speed between
// MinSpeed and MaxSpeed) is a pollution event: it names where it was first seen and how it
// travelled. A deviation in one parameter that stays at one station while its neighbours
// are normal is a suspect sensor; stuck values and spike clusters are suspect whatever the
// neighbours do. A change in several parameters at once at one station, not seen
// elsewhere, is a local event: independent probes agreeing is the water, not a sensor (TDS
// and conductivity are one measurement). A pollution event must hold in at least two
// independent measurements at both stations.
// When the plume would not have reached the next station yet, the verdict waits
// (pending); with no neighbour to ask, it stays unconfirmed.
//
// Everything here is a pure function over in-memory series: the caller loads the data
// (a few days more than the window it wants judged) and stores the findings. All
// functions are safe for concurrent use.
//
// # Caveats
//
// Hours are UTC hours. A baseline needs MinBaselineDays (3) of history before anything is
// judged. A multi-parameter sonde whose electronics fail can change several parameters at
// once and pass for a local event. The travel test knows distances and speeds, not
// hydraulics: tributaries, weirs and dilution between stations are not modelled, and two
// unrelated events at the right interval would be taken for one.
package anomaly

import "time"

// Options tune the detector. The zero value means the defaults.
type Options struct {
	// BaselineDays: days of history each hour's baseline is made of (default 7).
	BaselineDays int
	// MinBaselineDays: values an hour's baseline needs (default 3).
	MinBaselineDays int
	// LevelHours: the recent ordinary hours whose offset from their baselines says where
	// the river is now (default 12).
	LevelHours int
	// MaskHours: how many hours of an episode are kept out of later baselines (default
	// 12: longer than most discharges, short enough that a real change becomes the norm).
	MaskHours int
	// SpreadDays: days of the baseline's past errors its spread is measured on (default
	// 14; fewer while the data is shorter).
	SpreadDays int
	// Threshold: the robust z of an hour that opens an episode (default 5).
	Threshold float64
	// Continue: the robust z that keeps it open (default 3).
	Continue float64
	// MinHours: an episode shorter than this is kept only if it peaks beyond twice
	// Threshold (default 2).
	MinHours int
	// SlowHours: the least length of an episode of the slow channel, which compares hours
	// with their baseline alone: a drift or a shift too gradual for the fast one (default
	// 24).
	SlowHours int
	// DriftHours: the least length of a drift (default 6).
	DriftHours int
	// LevelShiftHours: the least length of a level shift (default 12).
	LevelShiftHours int
	// SpikeZ: how many times the reading-to-reading noise a spike stands out (default 8).
	SpikeZ float64
	// MinSpikes: spikes within a day of each other that make a cluster (default 3).
	MinSpikes int
	// StuckMin: the least duration of a run of identical readings called stuck (default 1h).
	StuckMin time.Duration
	// MaxHours: the newest hours of each series that are looked at (default 14 days).
	MaxHours int
	// MinSpeed and MaxSpeed bound a plausible travel speed between stations, m/s
	// (defaults 0.1 and 3: a sluggish dry-season pool to a monsoon flood).
	MinSpeed, MaxSpeed float64
	// Tolerance widens every travel window on both sides, for the hour resolution of
	// onsets (default 1h).
	Tolerance time.Duration
	// Overlap: how close in time episodes of different parameters at one station must
	// start to be one change (default 3h).
	Overlap time.Duration
}

func (o Options) withDefaults() Options {
	setInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setFloat := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	setDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	setInt(&o.BaselineDays, 7)
	setInt(&o.MinBaselineDays, 3)
	o.MinBaselineDays = min(o.MinBaselineDays, o.BaselineDays)
	setInt(&o.SpreadDays, 14)
	setInt(&o.LevelHours, 12)
	setInt(&o.MaskHours, 12)
	setFloat(&o.Threshold, 5)
	setFloat(&o.Continue, 3)
	o.Continue = min(o.Continue, o.Threshold)
	setInt(&o.MinHours, 2)
	setInt(&o.DriftHours, 6)
	setInt(&o.SlowHours, 24)
	setInt(&o.LevelShiftHours, 12)
	setFloat(&o.SpikeZ, 8)
	setInt(&o.MinSpikes, 3)
	setDur(&o.StuckMin, time.Hour)
	setInt(&o.MaxHours, 14*24)
	setFloat(&o.MinSpeed, 0.1)
	setFloat(&o.MaxSpeed, 3)
	o.MaxSpeed = max(o.MaxSpeed, o.MinSpeed)
	setDur(&o.Tolerance, time.Hour)
	setDur(&o.Overlap, 3*time.Hour)
	return o
}

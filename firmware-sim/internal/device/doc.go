// Package device models river monitoring stations and the probes installed in them, for
// simulators, tests, benchmarks and demos.
//
// A Model is one station's river: it turns a time into a value for each parameter, with the
// station's dry-season baseline, the annual temperature cycle, the south-west monsoon
// (June–September: more turbidity and fecal coliform, diluted dissolved solids), a diurnal
// cycle (temperature, dissolved oxygen and pH peak mid-afternoon, India Standard Time),
// slow day-to-day variation, random pollution events lasting hours (oxygen drops, BOD and
// fecal coliform jump) and measurement noise.
//
// Everything is a pure function of the seed and the time: the same seed and the same
// instant always give the same value, on any machine, so tests can assert exact numbers and
// a benchmark can be replayed. Nothing reads a clock or holds mutable state; Model and Probe
// are safe for concurrent use.
//
// Stations on the same river are ordered by RiverKm, and what is discharged at one reaches
// those below it: a Plume enters a river at a km and the current carries it down, later
// and a little weaker at each station (Plume.At). A Model sees the plumes given to
// WithPlumes and the pollution events of the modelled stations upstream on its river
// (MH-PUNE-001 above MH-PUNE-002 on the Mula-Mutha), so two simulated stations of one
// river agree. Incidents lists what reached a station: ground truth for the cloud's
// detectors.
//
// A Probe is one instrument reading one parameter of a Model: it adds its own calibration
// bias, rounds to its resolution and, on demand, misbehaves (see Fault).
//
// # Caveats
//
// The numbers are plausible, not measured: baselines come from the order of magnitude of
// published CPCB and MPCB monitoring results for each river stretch (see Stations), and the
// shapes of the effects are textbook ones. They are good enough to exercise validation, the
// water quality index, alerts and charts; they are not a hydrological model.
package device

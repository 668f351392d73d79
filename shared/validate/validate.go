// Package validate grades readings: physical and plausible ranges, spikes against the
// series' recent window, flatlines, and timestamps far from the receive time.
//
// A Checker keeps a small window per series (station, sensor, parameter) in memory. It is
// safe for concurrent use. It does no I/O and reads no clock: the caller passes the receive
// time, so tests are exact.
package validate

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Config tunes the checks. The zero value means the defaults.
type Config struct {
	// Window is how many recent values per series the spike check looks at (default 20).
	Window int
	// MinWindow is how many values must be in the window before spikes are judged (default 5).
	MinWindow int
	// SpikeSigma is the robust z-score (|x − median| / (1.4826·MAD)) above which a value is a
	// spike (default 6).
	SpikeSigma float64
	// FlatlineCount is how many identical consecutive values make a flatline (default 10).
	FlatlineCount int
	// MaxFuture and MaxPast bound how far a reading's own timestamp may sit from the time the
	// agent received it (defaults 5m and 7 days).
	MaxFuture, MaxPast time.Duration
}

// Default returns the defaults of every field.
func Default() Config {
	return Config{Window: 20, MinWindow: 5, SpikeSigma: 6, FlatlineCount: 10,
		MaxFuture: 5 * time.Minute, MaxPast: 7 * 24 * time.Hour}
}

func (c Config) withDefaults() Config {
	def := Default()
	if c.Window <= 0 {
		c.Window = def.Window
	}
	if c.MinWindow <= 0 {
		c.MinWindow = def.MinWindow
	}
	if c.MinWindow > c.Window {
		c.MinWindow = c.Window
	}
	if c.SpikeSigma <= 0 {
		c.SpikeSigma = def.SpikeSigma
	}
	if c.FlatlineCount <= 0 {
		c.FlatlineCount = def.FlatlineCount
	}
	if c.MaxFuture <= 0 {
		c.MaxFuture = def.MaxFuture
	}
	if c.MaxPast <= 0 {
		c.MaxPast = def.MaxPast
	}
	return c
}

// minScale is the smallest spread, per parameter in its canonical unit, that the spike test
// assumes. Without it a window of identical values (MAD 0) would make any change a spike.
// The figures are about the resolution of field probes.
var minScale = map[telemetry.Param]float64{
	telemetry.PH:           0.05,
	telemetry.DO:           0.1,
	telemetry.BOD:          0.5,
	telemetry.FC:           50,
	telemetry.TDS:          5,
	telemetry.Temp:         0.2,
	telemetry.Turbidity:    1,
	telemetry.Conductivity: 10,
	telemetry.Chla:         1,
}

type seriesKey struct {
	station, sensor string
	param           telemetry.Param
}

type series struct {
	window  []float64 // recent non-bad values, oldest first
	sorted  []float64 // the values of window in ascending order, for the median and MAD
	last    float64
	repeats int // how many times in a row last has been seen
}

// push appends v to the window, dropping the oldest value when it holds size values.
// Keeping sorted in step costs a binary search and a short copy per value, where sorting
// a copy for every reading cost far more.
func (s *series) push(v float64, size int) {
	if len(s.window) == size {
		oldest := s.window[0]
		s.window = append(s.window[:0], s.window[1:]...)
		i, _ := slices.BinarySearch(s.sorted, oldest) // present: every value was pushed
		s.sorted = slices.Delete(s.sorted, i, i+1)
	}
	s.window = append(s.window, v)
	i, _ := slices.BinarySearch(s.sorted, v)
	s.sorted = slices.Insert(s.sorted, i, v)
}

// Checker grades readings. Create it with New.
type Checker struct {
	cfg    Config
	mu     sync.Mutex
	series map[seriesKey]*series
}

// New returns a Checker with cfg's zero fields set to their defaults.
func New(cfg Config) *Checker {
	return &Checker{cfg: cfg.withDefaults(), series: make(map[seriesKey]*series)}
}

// Input carries what Check needs beyond the reading itself.
type Input struct {
	Received    time.Time // when the agent got the reading
	ClockSynced bool      // whether the agent's clock was known to be right at Received
	ProbeError  bool      // the probe itself reported a fault with this value
	// Sample marks a lab or field-kit result: a person dated it, days or weeks before it
	// is entered, and it belongs to no series of a probe. Only the ranges and (on a
	// synced clock) the future check apply; it never enters a spike or flatline window.
	Sample bool
}

// Check sets r.Quality and r.Flags (keeping flags already set, such as FlagDownsampled)
// and records the value in the series' window. r.Param must be canonical.
func (c *Checker) Check(r *telemetry.Reading, in Input) {
	flags := r.Flags &^ (telemetry.FlagOutOfRange | telemetry.FlagProbeError |
		telemetry.FlagImplausible | telemetry.FlagSpike | telemetry.FlagFlatline |
		telemetry.FlagFuture | telemetry.FlagPast | telemetry.FlagTimeUnsynced)
	info, known := telemetry.Info(r.Param)
	bad := !known || math.IsNaN(r.Value) || math.IsInf(r.Value, 0)
	if in.ProbeError {
		flags |= telemetry.FlagProbeError
		bad = true
	}
	if known && !info.Physical.Contains(r.Value) {
		flags |= telemetry.FlagOutOfRange
		bad = true
	}
	if known && !bad && !info.Plausible.Contains(r.Value) {
		flags |= telemetry.FlagImplausible
	}
	if !in.ClockSynced {
		if !in.Sample {
			flags |= telemetry.FlagTimeUnsynced
		}
	} else if !r.Time.IsZero() && !in.Received.IsZero() {
		switch d := r.Time.Sub(in.Received); {
		case d > c.cfg.MaxFuture:
			flags |= telemetry.FlagFuture
		case -d > c.cfg.MaxPast && !in.Sample:
			flags |= telemetry.FlagPast
		}
	}

	if !bad && !in.Sample {
		c.mu.Lock()
		k := seriesKey{r.Station, r.Sensor, r.Param}
		s := c.series[k]
		if s == nil {
			s = &series{window: make([]float64, 0, c.cfg.Window), sorted: make([]float64, 0, c.cfg.Window)}
			c.series[k] = s
		}
		if c.isSpike(s, r.Param, r.Value) {
			flags |= telemetry.FlagSpike
		}
		if len(s.window) > 0 && s.last == r.Value {
			s.repeats++
		} else {
			s.repeats = 1
		}
		s.last = r.Value
		if s.repeats >= c.cfg.FlatlineCount {
			flags |= telemetry.FlagFlatline
		}
		s.push(r.Value, c.cfg.Window)
		c.mu.Unlock()
	}

	r.Flags = flags
	switch {
	case bad:
		r.Quality = telemetry.Bad
	case flags&(telemetry.FlagImplausible|telemetry.FlagSpike|telemetry.FlagFlatline|
		telemetry.FlagFuture|telemetry.FlagPast) != 0:
		r.Quality = telemetry.Suspect
	default:
		r.Quality = telemetry.Good
	}
}

// isSpike judges v against the median and MAD of the window. Median and MAD rather than
// mean and standard deviation, so one earlier spike does not hide the next.
func (c *Checker) isSpike(s *series, p telemetry.Param, v float64) bool {
	if len(s.window) < c.cfg.MinWindow {
		return false
	}
	med, mad := medianMAD(s.sorted)
	scale := 1.4826 * mad
	if floor := minScale[p]; scale < floor {
		scale = floor
	}
	return math.Abs(v-med)/scale > c.cfg.SpikeSigma
}

// medianMAD returns the median of sorted, which is in ascending order and not empty, and
// the median of the absolute deviations from it, without sorting anything: the deviations
// of the values below the median grow leftwards from the middle and those of the values
// above it grow rightwards, so merging the two runs yields the deviations in order. The
// results are those of sorting the deviations (the median of two middle values lies
// between them in floating point too, so each run is monotonic).
func medianMAD(sorted []float64) (median, mad float64) {
	n := len(sorted)
	median = sorted[n/2]
	if n%2 == 0 {
		median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	l, r := n/2-1, n/2 // the next deviation of each run
	var prev, cur float64
	for range n/2 + 1 {
		prev = cur
		if r == n || l >= 0 && math.Abs(sorted[l]-median) <= math.Abs(sorted[r]-median) {
			cur = math.Abs(sorted[l] - median)
			l--
		} else {
			cur = math.Abs(sorted[r] - median)
			r++
		}
	}
	if n%2 == 1 {
		return median, cur
	}
	return median, (prev + cur) / 2
}

// ForgetSensor drops the windows of every series of a sensor.
func (c *Checker) ForgetSensor(station, sensor string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.series {
		if k.station == station && k.sensor == sensor {
			delete(c.series, k)
		}
	}
}

// Forget drops the window of a series, e.g. after a probe is recalibrated.
func (c *Checker) Forget(station, sensor string, p telemetry.Param) {
	c.mu.Lock()
	delete(c.series, seriesKey{station, sensor, p})
	c.mu.Unlock()
}

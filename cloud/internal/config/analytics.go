package config

import (
	"time"

	"github.com/purehealth/purehealth/cloud/internal/anomalyjob"
	"github.com/purehealth/purehealth/cloud/internal/forecastjob"
)

// Forecast tunes the forecast job (forecast: contract key interval).
type Forecast struct {
	// Interval is how often every station's series are forecast (default
	// forecastjob.DefaultInterval).
	Interval Duration `yaml:"interval"`
	// Workers is how many stations are done at once; 0: half the processors.
	Workers int `yaml:"workers"`
	// Timezone is the IANA zone of the hours early warnings name ("around 05:00"); default
	// UTC.
	Timezone string `yaml:"timezone"`
}

// Anomaly tunes the cross-station anomaly detection (anomaly: contract key interval).
type Anomaly struct {
	// Interval is how often every river is looked at (default anomalyjob.DefaultInterval).
	Interval Duration `yaml:"interval"`
	// Workers is how many rivers are done at once (default anomalyjob.DefaultWorkers).
	Workers int `yaml:"workers"`
}

// minAnalyticsInterval: rounds never overlap (a slow one delays the next), so a short
// interval costs only CPU; a demo of a few stations runs them every 30 s.
const minAnalyticsInterval = 10 * time.Second

func defaultForecast() Forecast {
	return Forecast{Interval: Duration(forecastjob.DefaultInterval), Timezone: "UTC"}
}

func defaultAnomaly() Anomaly {
	return Anomaly{Interval: Duration(anomalyjob.DefaultInterval), Workers: anomalyjob.DefaultWorkers}
}

func (f Forecast) validate(bad func(string, ...any)) {
	if f.Interval.Std() < minAnalyticsInterval {
		bad("forecast.interval: %s is shorter than %s", f.Interval, minAnalyticsInterval)
	}
	if f.Workers < 0 || f.Workers > 256 {
		bad("forecast.workers: %d must be 0..256 (0: half the processors)", f.Workers)
	}
	if _, err := time.LoadLocation(f.Timezone); err != nil || f.Timezone == "" {
		bad("forecast.timezone: %q is not an IANA time zone such as Asia/Kolkata", f.Timezone)
	}
}

func (a Anomaly) validate(bad func(string, ...any)) {
	if a.Interval.Std() < minAnalyticsInterval {
		bad("anomaly.interval: %s is shorter than %s", a.Interval, minAnalyticsInterval)
	}
	if a.Workers < 1 || a.Workers > 256 {
		bad("anomaly.workers: %d must be 1..256", a.Workers)
	}
}

// Location is the zone of Timezone (Validate has checked it; UTC otherwise).
func (f Forecast) Location() *time.Location {
	loc, err := time.LoadLocation(f.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

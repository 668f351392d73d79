package store

import "time"

// Defaults of Options, of the retention jobs and of the station health check. The
// configuration starts from these; a zero Options field means its default too, except
// LiveMaxAge, whose zero is a setting.
const (
	DefaultMaxConns      = 10
	DefaultQueryTimeout  = 10 * time.Second
	DefaultIngestTimeout = 30 * time.Second
	DefaultAheadDays     = 3
	// DefaultLiveMaxAge: a reading older than an hour on arrival is backlog, announced
	// per batch rather than streamed.
	DefaultLiveMaxAge = time.Hour
	// DefaultMaintenanceInterval is how often Maintain should run.
	DefaultMaintenanceInterval = time.Hour
	// DefaultEventsRetention is how long live events are kept for resumes (PruneEvents).
	DefaultEventsRetention = 7 * day
	// DefaultOfflineAfter is HealthPolicy.OfflineAfter's default: ten minutes without a
	// batch from a station that normally sends one every few seconds.
	DefaultOfflineAfter = 10 * time.Minute
	// DefaultHealthInterval is how often CheckStationHealth should run.
	DefaultHealthInterval = time.Minute
)

// DefaultRetention is the retention the design sets.
func DefaultRetention() Retention {
	return Retention{Measurements: 90 * day, WQI: 730 * day, Alerts: 365 * day, Rollups: 730 * day,
		External: DefaultExternalRetention, Health: 30 * day, Forecasts: DefaultForecastRetention}
}

// DefaultExternalRetention keeps upstream data ten years: government programmes publish
// yearly series that are worth comparing across a decade.
const DefaultExternalRetention = 3650 * day

// DefaultForecastRetention keeps a week of issued forecasts: enough to compare them with
// what the river did, at a few hundred kilobytes per series.
const DefaultForecastRetention = 7 * day

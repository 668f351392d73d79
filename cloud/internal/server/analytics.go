package server

import (
	"context"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/anomalyjob"
	"github.com/purehealth/purehealth/cloud/internal/forecastjob"
	"github.com/purehealth/purehealth/internal/jobs"
)

// analyticsJobs are the forecast round (forecasts, prediction events, forecast_breach
// early warnings) and the anomaly round (pollution_event, suspect_sensor and local_event
// alerts). Their database work shares the pool with ingest and the API: each takes at
// most a quarter of the pool's connections, however many workers it is given.
func (s *Server) analyticsJobs() []jobs.Job {
	share := max(1, int(s.cfg.Database.MaxConns)/4)
	fc := s.cfg.Forecast
	workers := fc.Workers
	if workers == 0 {
		workers = forecastjob.DefaultWorkers()
	}
	forecasts := forecastjob.New(s.store, forecastjob.Options{
		Workers: min(workers, share), Location: fc.Location(), Log: s.log.With("component", "forecast"),
	})
	anomalies := anomalyjob.New(s.store, anomalyjob.Options{
		Workers: min(s.cfg.Anomaly.Workers, share), Log: s.log.With("component", "anomaly"),
	})
	return []jobs.Job{{
		Name:     "forecasts",
		Interval: fc.Interval.Std(),
		Run: func(ctx context.Context) error {
			rep, err := forecasts.Round(ctx)
			if !rep.Skipped && rep.Stations > 0 {
				s.log.Info("forecast round", "stations", rep.Stations, "series", rep.Series, "forecasts", rep.Forecasts,
					"without", rep.NoForecast, "stored", rep.Stored, "warnings", rep.Warnings,
					"alert_transitions", rep.Changes, "took", rep.Took.Round(time.Millisecond))
			}
			return err
		},
	}, {
		Name:     "anomaly detection",
		Interval: s.cfg.Anomaly.Interval.Std(),
		Run: func(ctx context.Context) error {
			rep, err := anomalies.Round(ctx)
			if !rep.Skipped && rep.Stations > 0 {
				s.log.Info("anomaly round", "rivers", rep.Rivers, "stations", rep.Stations, "series", rep.Series,
					"findings", rep.Findings, "open", rep.Open, "alert_transitions", rep.Changes,
					"took", rep.Took.Round(time.Millisecond))
			}
			return err
		},
	}}
}

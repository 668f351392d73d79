package server

import "github.com/purehealth/purehealth/cloud/internal/fleet"

// registerFleet serves the fleet view: GET /v1/fleet and a station's health history.
func (s *Server) registerFleet() {
	fleet.New(s.store, fleet.Options{
		RetryAfter: s.cfg.Ingest.RetryAfter.Std(), Log: s.log.With("component", "fleet"),
	}).Register(s.mux)
}

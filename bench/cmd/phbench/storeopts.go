package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/purehealth/purehealth/shared/wire"
)

// The store-and-forward comparisons, as --only names them.
const (
	onlyIngest = "ingest" // cloud_ingest_vs_psql_copy, cloud_copyfrom_vs_psql_copy
	onlyDrain  = "drain"  // backlog_drain_vs_psql_copy, live_lane_latency_during_drain
)

// storeOptions are the settings of the store-and-forward comparisons; defaults() fills
// those not given.
type storeOptions struct {
	ingestRows     int           // readings in each ingest run, over ingestStations
	ingestStations int           // stations posting at once
	ingestBatch    int           // readings per batch
	ingestSpacing  time.Duration // between one station's timestamps (eight readings each)
	ingestReps     int

	drainReadings int           // readings buffered at the agent
	drainSpacing  time.Duration // between their timestamps (eight readings each)
	drainBatchMax int           // the agent's uplink.batch_max; 0 = its default
	probeEvery    time.Duration // pace of the live probe
	idleTime      time.Duration // length of the idle latency measurement

	pgProfile  bool     // pg_stat_statements, and its top statements printed
	pgSettings settings // more server settings, name=value
}

// settings is a repeatable name=value flag.
type settings []string

func (s *settings) String() string { return strings.Join(*s, " ") }

func (s *settings) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" || value == "" || strings.ContainsAny(name, " \t\n") {
		return fmt.Errorf("want name=value, got %q", v)
	}
	*s = append(*s, v)
	return nil
}

func (s *storeOptions) register(fs *flag.FlagSet) {
	fs.IntVar(&s.ingestRows, "ingest-rows", 0, "readings per cloud ingest run, spread over --ingest-stations (default 100000 quick, 400000 full)")
	fs.IntVar(&s.ingestStations, "ingest-stations", 4, "stations posting batches at once in the cloud ingest run")
	fs.IntVar(&s.ingestBatch, "ingest-batch", 1000, "readings per batch in the cloud ingest run (the agent's uplink.batch_max default, 1000)")
	fs.DurationVar(&s.ingestSpacing, "ingest-spacing", time.Second, "time between a station's timestamps in the cloud ingest run (eight readings each)")
	fs.IntVar(&s.ingestReps, "ingest-reps", 0, "cloud ingest runs per loader, median reported (default 1 quick, 5 full)")
	fs.IntVar(&s.drainReadings, "drain-readings", 0, "readings buffered at the agent before the cloud comes up (default 100000 quick, 1000000 full)")
	fs.DurationVar(&s.drainSpacing, "drain-spacing", time.Second, "time between the buffered readings' timestamps (eight readings each); 0 = all at one instant, like a burst published at full speed")
	fs.IntVar(&s.drainBatchMax, "drain-batch-max", 0, "the draining agent's uplink.batch_max (default: the agent's default, 1000)")
	fs.DurationVar(&s.probeEvery, "probe-every", 100*time.Millisecond, "pace of the live-lane latency probe (a drain of 15 s gives 150 readings: a p99 of fewer is its slowest)")
	fs.DurationVar(&s.idleTime, "idle-time", 0, "length of the idle latency measurement (default 10s quick, 30s full)")
	fs.Var(&s.pgSettings, "pg-setting", "a PostgreSQL server setting for the ingest and drain runs, name=value (repeatable), e.g. jit=off")
	fs.BoolVar(&s.pgProfile, "pg-profile", false, "load pg_stat_statements and print the top statements of the cloud's ingest and drain (adds a little overhead)")
}

func (s *storeOptions) defaults(quick bool) {
	pick := func(q, full int) int {
		if quick {
			return q
		}
		return full
	}
	if s.ingestRows == 0 {
		s.ingestRows = pick(100_000, 400_000)
	}
	if s.ingestReps == 0 {
		s.ingestReps = pick(1, 5)
	}
	if s.drainReadings == 0 {
		s.drainReadings = pick(100_000, 1_000_000)
	}
	if s.idleTime == 0 {
		s.idleTime = time.Duration(pick(10, 30)) * time.Second
	}
}

func (s *storeOptions) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.ingestStations < 1 || s.ingestStations > 64 {
		bad("--ingest-stations %d must be 1..64", s.ingestStations)
	}
	if s.ingestRows < s.ingestStations {
		bad("--ingest-rows %d must be at least --ingest-stations", s.ingestRows)
	}
	if s.ingestBatch < 1 || s.ingestBatch > wire.MaxRecords {
		bad("--ingest-batch %d must be 1..%d (the wire format's limit)", s.ingestBatch, wire.MaxRecords)
	}
	if s.ingestSpacing < 0 || s.drainSpacing < 0 {
		bad("--ingest-spacing and --drain-spacing must not be negative")
	}
	if s.ingestReps < 1 {
		bad("--ingest-reps must be at least 1")
	}
	if s.drainReadings < 1 {
		bad("--drain-readings must be at least 1")
	}
	if s.drainBatchMax < 0 || s.drainBatchMax > wire.MaxRecords {
		bad("--drain-batch-max %d must be 0..%d", s.drainBatchMax, wire.MaxRecords)
	}
	if s.probeEvery < 10*time.Millisecond || s.probeEvery > 10*time.Second {
		bad("--probe-every %s must be 10ms..10s", s.probeEvery)
	}
	if s.idleTime < 2*time.Second {
		bad("--idle-time %s must be at least 2s", s.idleTime)
	}
	return errs
}

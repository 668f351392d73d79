package cli

import (
	"os"
	"runtime/debug"
)

// agentGCPercent is the daemon's garbage collection target, GOGC, unless the environment
// sets one. The agent's live heap is a few megabytes, so Go's default of 100 collects
// every few thousand readings at full load, and a collection scans every connection's
// goroutines: a tenth of the agent's CPU. At 300 the heap may grow to four times the live
// one, about 10 MB more resident with 200 sensors (agent_rss_200_sensors in make bench,
// against a 50 MB budget), for a quarter of the collections.
const agentGCPercent = 300

// agentMemoryLimit is the daemon's soft memory limit, GOMEMLIMIT, unless the environment
// sets one: the collector runs more often as the agent's memory nears it, so that a
// station with a larger live heap than the benchmark's does not keep four times as much.
// It is a soft limit: a live heap above it is kept, at the cost of more collections.
const agentMemoryLimit = 64 << 20

// tuneGC applies agentGCPercent and agentMemoryLimit where the environment sets neither.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(agentGCPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(agentMemoryLimit)
	}
}

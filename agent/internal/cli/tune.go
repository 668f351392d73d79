package cli

import (
	"os"
	"runtime"
	"runtime/debug"
)

// agentProcs is how many threads may run the daemon's Go code at once, GOMAXPROCS, unless
// the environment sets it. The agent's work is many small steps, each handed from one
// goroutine to the next (a client's reader, its lane, the buffer's writer), and with
// a processor per core the runtime wakes idle threads, parks them again and moves
// goroutines between cores for every hand-off: at full MQTT load on two cores, one
// processor took 10-13 µs of CPU a durable message where two took 17-19. One core does
// more than a station needs (tens of thousands of readings a second), and CPU time is
// energy at a solar-powered station. A goroutine that computes for long (the file check
// at start) is preempted every 10 ms, so the others wait no longer than that.
const agentProcs = 1

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

// tuneRuntime applies agentProcs, agentGCPercent and agentMemoryLimit where the
// environment does not set them.
func tuneRuntime() {
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(agentProcs)
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(agentGCPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(agentMemoryLimit)
	}
}

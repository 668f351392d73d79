package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/purehealth/purehealth/bench/internal/benchline"
	"github.com/purehealth/purehealth/bench/internal/fsyncrate"
	"github.com/purehealth/purehealth/bench/internal/harness"
	"github.com/purehealth/purehealth/bench/internal/procstat"
	"github.com/purehealth/purehealth/internal/testproc"
)

// The comparisons' names: results are tracked over time by them.
const (
	nameVsFsync     = "durable_qos1_vs_fsync"
	nameVsNoFsync   = "durable_qos1_vs_nofsync"
	nameVsMosquitto = "broker_vs_mosquitto"
)

// rssBudgetMB is the agent's memory budget with 200 sensors: a Raspberry Pi Zero 2 has
// 512 MB for everything.
const rssBudgetMB = 50

// bench runs the benchmarks, printing as it goes. It is used from one goroutine.
type bench struct {
	opts options
	out  io.Writer

	lines    []benchline.Line
	skipped  []string // comparisons not measured, and why
	failures []string // runs that failed and sanity checks that did not hold
}

func (b *bench) printf(format string, args ...any) { fmt.Fprintf(b.out, format, args...) }

func (b *bench) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.failures = append(b.failures, msg)
	b.printf("   FAILED: %s\n", msg)
}

func (b *bench) agentBin() string { return filepath.Join(b.opts.bin, "ph-agent") }
func (b *bench) simBin() string   { return filepath.Join(b.opts.bin, "ph-sim") }

// all runs the selected benchmarks and prints the BENCH lines at the end. It returns an
// error when a run failed or a sanity check did not hold; goals missed are results, not
// errors.
func (b *bench) all(ctx context.Context) error {
	b.header(ctx)
	if b.opts.runs("throughput") {
		b.throughput(ctx)
	}
	if b.opts.runs(onlySlowDisk) && ctx.Err() == nil {
		b.slowDisk(ctx)
	}
	if b.opts.runs("rss") && ctx.Err() == nil {
		b.rss(ctx)
	}
	if b.opts.runs(onlyIngest) && ctx.Err() == nil {
		b.ingest(ctx)
	}
	if b.opts.runs(onlyDrain) && ctx.Err() == nil {
		b.drain(ctx)
	}
	if b.opts.runs(onlyQuery) && ctx.Err() == nil {
		b.query(ctx)
	}
	if b.opts.runs(onlyFanout) && ctx.Err() == nil {
		b.fanout(ctx)
	}
	if b.opts.runs(onlyProbes) && ctx.Err() == nil {
		b.probes(ctx)
	}
	if b.opts.runs(onlyLatency) && ctx.Err() == nil {
		b.latency(ctx)
	}
	if b.opts.runs(onlyAnalytics) && ctx.Err() == nil {
		b.analytics(ctx)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	b.summary()
	if len(b.failures) > 0 {
		return fmt.Errorf("%d run(s) or check(s) failed: %s", len(b.failures), strings.Join(b.failures, "; "))
	}
	return nil
}

func (b *bench) header(ctx context.Context) {
	o := b.opts
	mode := "full"
	if o.quick {
		mode = "quick (BENCH_QUICK)"
	}
	b.printf("== phbench, %s run, %s\n", mode, time.Now().UTC().Format(time.RFC3339))
	b.printf("machine: %s/%s, %d CPUs, load average %s (other work on the machine lowers every figure)\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), loadAverage())
	b.printf("work dir: %s (%s)\n", o.work, fsyncrate.FSType(o.work))
	b.printf("agent: %s (%s); load generator: %s mqtt\n", b.agentBin(), b.version(ctx), b.simBin())
}

func (b *bench) version(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, b.agentBin(), "version").Output()
	if err != nil {
		return fmt.Sprintf("version unknown: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// throughputLoad is the publisher load of the three throughput comparisons.
func (b *bench) throughputLoad(broker string) harness.Load {
	o := b.opts
	return harness.Load{Broker: broker, Station: o.station, Sensors: o.sensors, Rate: 0,
		Count: o.count, QoS: 1, Inflight: o.inflight, Seed: 1}
}

// throughput measures the disk, then runs the same load against the durable agent, the
// agent without fsync and mosquitto, interleaved, opts.reps times each, and makes the
// first three BENCH lines from the medians.
func (b *bench) throughput(ctx context.Context) {
	o := b.opts
	b.printf("\n== throughput: QoS 1 publishes acknowledged per second\n")
	b.printf("load: %s mqtt, %d connections (MQTT 3.1.1, one simulated sensor each; sensor i publishes parameter i mod 8 of ph,do,bod,fc,tds,temp,turbidity,conductivity),\n"+
		"      QoS 1, --rate 0 (as fast as acknowledgements allow) with at most %d unacknowledged publishes per connection,\n"+
		"      %d messages per connection = %d per run, one JSON reading (80–95 bytes) per message on purehealth/%s/<param>;\n"+
		"      %d run(s) per target, interleaved, median reported\n",
		b.simBin(), o.sensors, o.inflight, o.count, o.sensors*o.count, o.station, o.reps)
	b.printf("agent: log.level info, buffer.max_bytes 256 MiB, no uplink (everything stays in the buffer), fresh data dir per run\n")

	mosqVersion, mosqErr := harness.MosquittoVersion(ctx, o.mosquitto)
	if mosqErr != nil {
		b.printf("mosquitto: not available (%v): %s is skipped (Debian: apt-get install mosquitto)\n", mosqErr, nameVsMosquitto)
		b.skipped = append(b.skipped, fmt.Sprintf("%s: %s not available", nameVsMosquitto, o.mosquitto))
	}

	var (
		disk, durable, nofsync, mosq []float64
		fstype                       string
	)
	for rep := 1; rep <= o.reps && ctx.Err() == nil; rep++ {
		// The disk, right before the durable agent, in the directory it then uses as its
		// data_dir.
		dataDir := b.agentConfig(rep, false, "").DataDir()
		fstype = fsyncrate.FSType(o.work)
		steps := []step{
			{func() (float64, bool) { return b.disk(ctx, rep, dataDir) }, &disk},
			{func() (float64, bool) { return b.agentRun(ctx, rep, false) }, &durable},
			{func() (float64, bool) { return b.agentRun(ctx, rep, true) }, &nofsync},
		}
		if mosqErr == nil {
			steps = append(steps, step{func() (float64, bool) { return b.mosquittoRun(ctx, rep, mosqVersion) }, &mosq})
		}
		for _, st := range steps {
			if ctx.Err() != nil {
				break // interrupted: start nothing more
			}
			if r, ok := st.run(); ok {
				*st.to = append(*st.to, r)
			}
		}
	}
	if ctx.Err() != nil {
		return
	}

	b.printf("\n-- medians: disk %s fdatasync/s; durable agent %s, agent without fsync %s", spread(disk), spread(durable), spread(nofsync))
	if mosqErr == nil {
		b.printf(", mosquitto %s", spread(mosq))
	}
	b.printf(" msgs/s\n")
	ours := median(durable)
	b.add(nameVsFsync, ours, median(disk), "per_s", benchline.Goal{Op: benchline.AtLeast, Value: 50},
		fmt.Sprintf("4 KiB write + fdatasync per second in the agent's data_dir (%s), same run; ours: durable QoS 1 readings/s, %d connections", fstype, o.sensors))
	b.add(nameVsNoFsync, ours, median(nofsync), "msgs/s", benchline.Goal{Op: benchline.AtLeast, Value: 0.5},
		fmt.Sprintf("same agent and load with buffer.unsafe_no_fsync: true; %d connections, QoS 1", o.sensors))
	if mosqErr == nil {
		b.add(nameVsMosquitto, ours, median(mosq), "msgs/s", benchline.Goal{Op: benchline.AtLeast, Value: 0.8},
			fmt.Sprintf("%s (%s), persistence false, same load; ours persists every reading", mosqVersion, o.mosquitto))
	}
}

// step is one measurement of a throughput repetition and where its result goes.
type step struct {
	run func() (float64, bool)
	to  *[]float64
}

// disk measures the flush rate in dir (created here): fdatasync, the call bbolt makes, and
// in the first run fsync too, for information. It returns the fdatasync rate.
func (b *bench) disk(ctx context.Context, rep int, dir string) (float64, bool) {
	o := b.opts
	run := fmt.Sprintf("disk run %d/%d", rep, o.reps)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		b.fail("%s: %v", run, err)
		return 0, false
	}
	fstype := fsyncrate.FSType(dir)
	b.printf("\n-- disk, run %d/%d: 4 KiB write at offset 0 + flush, in a loop for %s, in %s (%s)\n", rep, o.reps, o.fsyncDur, dir, fstype)
	if fstype == "tmpfs" || fstype == "ramfs" {
		b.printf("   WARNING: %s is in memory: its flush rate is not a disk's; use --work (BENCH_DIR) on a disk\n", dir)
	}
	methods := []fsyncrate.Method{fsyncrate.Fdatasync}
	if rep == 1 {
		methods = append(methods, fsyncrate.Fsync)
	}
	var rate float64
	for _, m := range methods {
		res, err := fsyncrate.Measure(ctx, dir, m, o.fsyncDur)
		if err != nil {
			if ctx.Err() == nil {
				b.fail("%s: %s: %v", run, m, err)
			}
			return 0, false
		}
		b.printf("   %-9s %6d ops in %.2f s: %.0f/s (%.3f ms each)\n", m, res.Ops, res.Elapsed.Seconds(),
			res.PerSecond(), 1000/res.PerSecond())
		if m == fsyncrate.Fdatasync {
			rate = res.PerSecond()
		}
	}
	return rate, true
}

// agentConfig is the configuration of the agent of one throughput run.
func (b *bench) agentConfig(rep int, noFsync bool, listen string) harness.AgentConfig {
	label := "agent-fsync"
	if noFsync {
		label = "agent-nofsync"
	}
	return harness.AgentConfig{Dir: filepath.Join(b.opts.work, fmt.Sprintf("%s-%d", label, rep)),
		Station: b.opts.station, Listen: listen, UnsafeNoFsync: noFsync}
}

// add records a BENCH line, or why it could not be made.
func (b *bench) add(name string, ours, peer float64, unit string, goal benchline.Goal, peerIs string) {
	l := benchline.Line{Name: name, Ours: ours, Peer: peer, Unit: unit, Goal: goal, PeerIs: peerIs}
	if err := l.Validate(); err != nil {
		b.skipped = append(b.skipped, fmt.Sprintf("%s: no valid measurement (%v)", name, err))
		return
	}
	b.lines = append(b.lines, l)
}

// agentRun runs the throughput load against a fresh agent and returns the acknowledged
// rate, or false when the run failed (recorded).
func (b *bench) agentRun(ctx context.Context, rep int, noFsync bool) (float64, bool) {
	o := b.opts
	run, what := fmt.Sprintf("durable agent run %d/%d", rep, o.reps), "agent, fsync on (durable)"
	if noFsync {
		run, what = fmt.Sprintf("no-fsync agent run %d/%d", rep, o.reps), "agent, buffer.unsafe_no_fsync: true"
	}
	addr, err := testproc.FreePort("tcp")
	if err != nil {
		b.fail("%s: %v", run, err)
		return 0, false
	}
	cfg := b.agentConfig(rep, noFsync, addr)
	b.printf("\n-- %s, run %d/%d: data dir %s, MQTT %s\n", what, rep, o.reps, cfg.DataDir(), addr)
	agent, err := harness.StartAgent(ctx, b.agentBin(), cfg)
	if err != nil {
		b.fail("%s: %v", run, err)
		return 0, false
	}
	rate, ok := b.loadAgent(ctx, run, agent, b.throughputLoad(addr), filepath.Join(cfg.Dir, "sim.log"))
	if err := agent.Stop(); err != nil {
		b.fail("%s: the agent did not shut down cleanly: %v; its log ends:\n%s", run, err, agent.LogTail(10))
		return 0, false
	}
	return rate, ok
}

// loadAgent runs load against agent, prints the outcome and the agent's own counters and
// checks that they agree. It returns the acknowledged rate.
func (b *bench) loadAgent(ctx context.Context, run string, agent *harness.Agent, load harness.Load, simLog string) (float64, bool) {
	cpu0, err := procstat.ReadCPU(agent.PID())
	if err != nil {
		b.fail("%s: %v", run, err)
		return 0, false
	}
	res, err := harness.RunLoad(ctx, b.simBin(), load, simLog)
	if err != nil {
		if ctx.Err() == nil {
			b.fail("%s: %v", run, err)
		}
		return 0, false
	}
	cpu1, cpuErr := procstat.ReadCPU(agent.PID())
	b.printReport(res)
	st, err := agent.Status(ctx)
	if err != nil {
		b.fail("%s: %v; the agent's log ends:\n%s", run, err, agent.LogTail(10))
		return 0, false
	}
	b.printf("   ph-agent status --json: broker.messages_received=%d ingest.accepted=%d ingest.rejected=%d ingest.store_failures=%d buffer.readings=%d buffer.file_bytes=%d",
		st.Broker.MessagesReceived, st.Ingest.Accepted, st.Ingest.Rejected, st.Ingest.StoreFailures,
		st.Buffer.Readings, st.Buffer.FileBytes)
	if c := st.Buffer.Commits; c != nil && *c > 0 {
		b.printf(" buffer.commits=%d (%.1f readings per commit)", *c, float64(st.Buffer.Readings)/float64(*c))
	}
	b.printf("\n")
	if cpuErr == nil {
		b.printCPU("agent", cpu1-cpu0, res)
	}

	r := res.Report
	c := checks{}
	c.that(r.Sent == int64(load.Sensors*load.Count), "all %d messages sent (sent %d)", load.Sensors*load.Count, r.Sent)
	c.that(r.Acked <= r.Sent, "acked <= sent (%d, %d)", r.Acked, r.Sent)
	c.that(r.Failed == 0, "no failed publish (%d failed; first error: %s)", r.Failed, r.FirstError)
	c.that(st.Broker.MessagesReceived >= r.Acked, "messages_received >= acked (%d, %d)", st.Broker.MessagesReceived, r.Acked)
	c.that(st.Buffer.Readings >= r.Acked, "stored >= acked (buffer.readings %d, acked %d)", st.Buffer.Readings, r.Acked)
	c.that(st.Ingest.Accepted >= r.Acked, "accepted >= acked (%d, %d)", st.Ingest.Accepted, r.Acked)
	c.that(st.Ingest.Rejected == 0 && st.Ingest.StoreFailures == 0, "no rejected reading and no store failure (%d, %d)",
		st.Ingest.Rejected, st.Ingest.StoreFailures)
	if r.Failed == 0 {
		c.that(r.Acked == st.Buffer.Readings && st.Buffer.Readings == st.Ingest.Accepted,
			"acked == stored == accepted (%d, %d, %d)", r.Acked, st.Buffer.Readings, st.Ingest.Accepted)
	}
	b.report(run, c)
	return r.RatePerS, c.ok()
}

// mosquittoRun runs the throughput load against a fresh mosquitto.
func (b *bench) mosquittoRun(ctx context.Context, rep int, version string) (float64, bool) {
	o := b.opts
	run := fmt.Sprintf("mosquitto run %d/%d", rep, o.reps)
	dir := filepath.Join(o.work, fmt.Sprintf("mosquitto-%d", rep))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		b.fail("%s: %v", run, err)
		return 0, false
	}
	m, err := harness.StartMosquitto(ctx, o.mosquitto, dir)
	if err != nil {
		b.fail("%s: %v", run, err)
		return 0, false
	}
	b.printf("\n-- %s, run %d/%d: %s, config: listener on %s, allow_anonymous true, persistence false\n",
		version, rep, o.reps, o.mosquitto, m.Addr)
	load := b.throughputLoad(m.Addr)
	rate, ok := func() (float64, bool) {
		cpu0, err := procstat.ReadCPU(m.PID())
		if err != nil {
			b.fail("%s: %v", run, err)
			return 0, false
		}
		res, err := harness.RunLoad(ctx, b.simBin(), load, filepath.Join(dir, "sim.log"))
		if err != nil {
			if ctx.Err() == nil {
				b.fail("%s: %v", run, err)
			}
			return 0, false
		}
		cpu1, cpuErr := procstat.ReadCPU(m.PID())
		b.printReport(res)
		if cpuErr == nil {
			b.printCPU("mosquitto", cpu1-cpu0, res)
		}
		r := res.Report
		c := checks{}
		c.that(r.Sent == int64(load.Sensors*load.Count), "all %d messages sent (sent %d)", load.Sensors*load.Count, r.Sent)
		c.that(r.Acked <= r.Sent, "acked <= sent (%d, %d)", r.Acked, r.Sent)
		c.that(r.Failed == 0, "no failed publish (%d failed; first error: %s)", r.Failed, r.FirstError)
		b.report(run, c)
		return r.RatePerS, c.ok()
	}()
	if err := m.Stop(); err != nil {
		b.fail("%s: mosquitto did not shut down cleanly: %v", run, err)
		return 0, false
	}
	return rate, ok
}

func (b *bench) printReport(res harness.LoadResult) {
	r := res.Report
	b.printf("   ph-sim: sent %d, acked %d, failed %d in %.2f s: %.0f msgs/s", r.Sent, r.Acked, r.Failed, r.Seconds, r.RatePerS)
	if l := r.LatencyMS; l != nil {
		b.printf("; ack latency p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms", l.P50, l.P90, l.P99, l.Max)
	}
	if r.Reconnects > 0 {
		b.printf("; %d reconnects", r.Reconnects)
	}
	b.printf("\n")
}

// printCPU prints CPU time per acknowledged message of the server and of the load
// generator: on a machine with few cores they share it, so this is the figure that does not
// depend on what else runs.
func (b *bench) printCPU(server string, cpu time.Duration, res harness.LoadResult) {
	if res.Report.Acked == 0 {
		return
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(res.Report.Acked) }
	b.printf("   cpu per acknowledged message: %s %.1f µs, ph-sim %.1f µs (wall %.2f s including connections)\n",
		server, per(cpu), per(res.CPU), res.Wall.Seconds())
}

func (b *bench) report(run string, c checks) {
	if c.ok() {
		b.printf("   checks: ok (%s)\n", strings.Join(c.passed, "; "))
		return
	}
	for _, f := range c.failed {
		b.fail("%s: check: %s", run, f)
	}
}

// rss runs the memory benchmark: rssSensors sensors publishing rssRate messages per second
// each for rssDur against a fresh durable agent, sampling its VmRSS.
func (b *bench) rss(ctx context.Context) {
	o := b.opts
	name := fmt.Sprintf("agent_rss_%d_sensors", o.rssSensors)
	count := int(math.Round(o.rssRate * o.rssDur.Seconds()))
	offered := o.rssRate * float64(o.rssSensors)
	b.printf("\n== memory: %s\n", name)
	b.printf("load: %s mqtt, %d connections, QoS 1, %g msgs/s each (%.0f msgs/s in all), %d messages each (%s), ph-sim's default in-flight limit;\n"+
		"      agent as above with fsync on; VmRSS from /proc/<pid>/status every 250 ms, peak = VmHWM at the end\n",
		b.simBin(), o.rssSensors, o.rssRate, offered, count, o.rssDur)
	dir := filepath.Join(o.work, "agent-rss")
	addr, err := testproc.FreePort("tcp")
	if err != nil {
		b.fail("%s: %v", name, err)
		return
	}
	cfg := harness.AgentConfig{Dir: dir, Station: o.station, Listen: addr}
	agent, err := harness.StartAgent(ctx, b.agentBin(), cfg)
	if err != nil {
		b.fail("%s: %v", name, err)
		return
	}
	peakMB, ok := b.rssRun(ctx, name, agent, cfg, count, offered)
	if err := agent.Stop(); err != nil {
		b.fail("%s: the agent did not shut down cleanly: %v; its log ends:\n%s", name, err, agent.LogTail(10))
		return
	}
	if ok {
		b.add(name, peakMB, rssBudgetMB, "MB", benchline.Goal{Op: benchline.AtMost, Value: 1}, "budget")
	}
}

func (b *bench) rssRun(ctx context.Context, name string, agent *harness.Agent, cfg harness.AgentConfig, count int, offered float64) (float64, bool) {
	o := b.opts
	idle, err := procstat.ReadMemory(agent.PID())
	if err != nil {
		b.fail("%s: %v", name, err)
		return 0, false
	}
	load := harness.Load{Broker: cfg.Listen, Station: o.station, Sensors: o.rssSensors, Rate: o.rssRate,
		Count: count, QoS: 1, Seed: 2}

	// The sampler runs until the load ends; this function waits for it.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var (
		samples   []procstat.Sample
		sampleErr error
		sampled   = make(chan struct{})
	)
	go func() {
		defer close(sampled)
		samples, sampleErr = procstat.SampleRSS(sampleCtx, agent.PID(), 250*time.Millisecond)
	}()
	start := time.Now()
	res, err := harness.RunLoad(ctx, b.simBin(), load, filepath.Join(cfg.Dir, "sim.log"))
	stopSampling()
	<-sampled
	if err != nil {
		if ctx.Err() == nil {
			b.fail("%s: %v", name, err)
		}
		return 0, false
	}
	if sampleErr != nil {
		b.fail("%s: sampling memory: %v", name, sampleErr)
		return 0, false
	}
	end, err := procstat.ReadMemory(agent.PID())
	if err != nil {
		b.fail("%s: %v", name, err)
		return 0, false
	}
	b.printReport(res)
	// Steady state: the second half of the load, when every connection is up.
	half := start.Add(time.Since(start) / 2)
	var steady []float64
	for _, s := range samples {
		if s.At.After(half) {
			steady = append(steady, mb(s.RSS))
		}
	}
	b.printf("   VmRSS: idle %.1f MB before the load, steady %.1f MB (median of %d samples in the second half), peak (VmHWM) %.1f MB; MB = 10^6 bytes\n",
		mb(idle.RSS), median(steady), len(steady), mb(end.Peak))

	st, err := agent.Status(ctx)
	if err != nil {
		b.fail("%s: %v", name, err)
		return 0, false
	}
	b.printf("   ph-agent status --json: broker.messages_received=%d ingest.accepted=%d buffer.readings=%d active alerts %d\n",
		st.Broker.MessagesReceived, st.Ingest.Accepted, st.Buffer.Readings, len(st.Alerts))
	r := res.Report
	c := checks{}
	c.that(r.Sent == int64(load.Sensors*load.Count), "all %d messages sent (sent %d)", load.Sensors*load.Count, r.Sent)
	c.that(r.Failed == 0, "no failed publish (%d failed; first error: %s)", r.Failed, r.FirstError)
	c.that(st.Buffer.Readings >= r.Acked, "stored >= acked (%d, %d)", st.Buffer.Readings, r.Acked)
	c.that(r.Acked == st.Buffer.Readings, "acked == stored (%d, %d)", r.Acked, st.Buffer.Readings)
	c.that(r.RatePerS >= 0.9*offered, "the agent kept up with the offered %.0f msgs/s (acked %.0f msgs/s)", offered, r.RatePerS)
	c.that(len(steady) > 0, "memory sampled during the load")
	b.report(name, c)
	return mb(end.Peak), c.ok()
}

func (b *bench) summary() {
	b.printf("\n== results (ratio = ours/peer; the goal applies to the ratio); load average now %s\n", loadAverage())
	for _, l := range b.lines {
		b.printf("%s\n", l)
	}
	for _, s := range b.skipped {
		b.printf("skipped: %s\n", s)
	}
	for _, l := range b.lines {
		verdict := "met"
		if !l.Met() {
			verdict = "NOT met"
		}
		b.printf("goal %s: %s (ratio %.3g, goal %s)\n", l.Name, verdict, l.Ratio(), l.Goal)
	}
}

// checks collects the sanity checks of one run.
type checks struct {
	passed, failed []string
}

func (c *checks) that(ok bool, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if ok {
		// The passed list names the check without its numbers, to stay short.
		if i := strings.Index(msg, " ("); i > 0 {
			msg = msg[:i]
		}
		c.passed = append(c.passed, msg)
		return
	}
	c.failed = append(c.failed, msg)
}

func (c *checks) ok() bool { return len(c.failed) == 0 }

func mb(bytes int64) float64 { return float64(bytes) / 1e6 }

// median of xs, NaN when empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// spread is "median (min–max)", or the single value, or "none".
func spread(xs []float64) string {
	switch len(xs) {
	case 0:
		return "none"
	case 1:
		return fmt.Sprintf("%.0f", xs[0])
	}
	return fmt.Sprintf("%.0f (%.0f–%.0f)", median(xs), slices.Min(xs), slices.Max(xs))
}

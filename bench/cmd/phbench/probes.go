package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/purehealth/purehealth/bench/internal/benchline"
	"github.com/purehealth/purehealth/bench/internal/harness"
	"github.com/purehealth/purehealth/bench/internal/procstat"
	"github.com/purehealth/purehealth/internal/testproc"
)

// onlyProbes is the --only name of the probe comparison: agent_probes_cpu_<S>_serial_<C>_coap
// and agent_probes_rss_<S>_serial_<C>_coap.
const onlyProbes = "probes"

// probeCPUBudget is the agent's CPU budget for reading 100 probes once a second, in percent
// of one core of the machine the benchmark runs on: 500 µs of CPU per reading, from the
// probe's bytes to the durable write, the WQI and the alert rules. A station gateway is a
// Raspberry Pi 3 (Cortex-A53 at 1.2 GHz), whose core does roughly ten times less work than
// one core of a current x86 server; a Pi cannot be measured here, so the budget is stated
// for this machine. 5 % of one of its cores is then about half a Pi 3 core (one of four),
// leaving the rest of the gateway to the uplink, the broker and the operating system, for
// a station far busier than a real one (eight probes a minute). It scales with the number
// of readings per second.
const probeCPUBudget = 5.0 // % of one core, for 100 probes at 1 Hz

// probeRSSBudgetMB is the memory budget of the probe run: the same as the 200-sensor MQTT
// run, for a Raspberry Pi Zero 2 with 512 MB for everything.
const probeRSSBudgetMB = 50

// coapParams are the resources of one simulated CoAP sonde, in order.
var coapParams = []string{"do", "temp", "ph", "turbidity", "conductivity", "tds", "bod", "fc"}

// serialParams are the EZO circuits of the serial probes, in turn.
var serialParams = []string{"ph", "do", "conductivity", "temp"}

// probeOptions are the settings of the probe comparison; defaults() fills those not given.
type probeOptions struct {
	serial   int           // EZO circuits on pseudo-terminals
	coap     int           // CoAP resources, observed
	perSonde int           // CoAP resources per simulated sonde (one UDP port each)
	interval time.Duration // every probe's interval, and the sondes' notification period
	dur      time.Duration // measurement window, after every probe is online
}

func (p *probeOptions) register(fs *flag.FlagSet) {
	fs.IntVar(&p.serial, "probe-serial", 50, "serial (EZO) probes in the probe run")
	fs.IntVar(&p.coap, "probe-coap", 50, "observed CoAP probes in the probe run")
	fs.IntVar(&p.perSonde, "probe-per-sonde", 5, "CoAP resources per simulated sonde (each sonde listens on its own UDP port)")
	fs.DurationVar(&p.interval, "probe-interval", time.Second, "interval of every probe in the probe run (and the sondes' notification period)")
	fs.DurationVar(&p.dur, "probe-time", 0, "length of the probe run's measurement, after every probe is online (default 10s quick, 30s full)")
}

func (p *probeOptions) defaults(quick bool) {
	if p.dur == 0 {
		p.dur = 30 * time.Second
		if quick {
			p.dur = 10 * time.Second
		}
	}
}

func (p *probeOptions) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if p.serial < 0 || p.coap < 0 || p.serial+p.coap < 1 || p.serial+p.coap > 1000 {
		bad("--probe-serial and --probe-coap must not be negative, and add up to 1..1000")
	}
	if p.perSonde < 1 || p.perSonde > len(coapParams) {
		bad("--probe-per-sonde %d must be 1..%d", p.perSonde, len(coapParams))
	}
	if p.interval < 100*time.Millisecond || p.interval > time.Minute {
		bad("--probe-interval %s must be 100ms..1m", p.interval)
	}
	if p.dur < 2*time.Second {
		bad("--probe-time %s must be at least 2s", p.dur)
	}
	return errs
}

// probeNames are the comparison's BENCH names, which carry the probe counts.
func (p probeOptions) names() (cpu, rss string) {
	suffix := fmt.Sprintf("%d_serial_%d_coap", p.serial, p.coap)
	return "agent_probes_cpu_" + suffix, "agent_probes_rss_" + suffix
}

// cpuBudget is probeCPUBudget scaled to the run's probes and interval.
func (p probeOptions) cpuBudget() float64 {
	perSecond := float64(p.serial+p.coap) / p.interval.Seconds()
	return probeCPUBudget * perSecond / 100
}

// stationScenario is the `ph-sim station` scenario of the run: the serial probes (EZO
// circuits in real time, each behind a link in dir) and ceil(coap/perSonde) CoAP sondes on
// free ports, notifying every interval.
func (p probeOptions) stationScenario(station, dir string) []byte {
	b := fmt.Appendf(nil, "# Written by phbench: the probes of the agent_probes run.\nstation: %s\nseed: 1\nspeed: 1\nprobes:\n", station)
	for i := range p.serial {
		b = fmt.Appendf(b, "  - {name: ezo-%03d, kind: serial, param: %s, link: %q}\n",
			i, serialParams[i%len(serialParams)], filepath.Join(dir, fmt.Sprintf("tty-%03d", i)))
	}
	for s, left := 0, p.coap; left > 0; s++ {
		n := min(left, p.perSonde)
		b = fmt.Appendf(b, "  - {name: sonde-%02d, kind: coap, listen: \"127.0.0.1:0\", params: [%s], interval: %s}\n",
			s, strings.Join(coapParams[:n], ", "), p.interval)
		left -= n
	}
	return b
}

// agentProbes turns the station's endpoints into the agent's probes: each serial probe by
// its link, each CoAP resource observed.
func (p probeOptions) agentProbes(eps []harness.Endpoint) []harness.AgentProbe {
	out := make([]harness.AgentProbe, 0, len(eps))
	for _, e := range eps {
		ap := harness.AgentProbe{Name: e.Probe, Kind: e.Kind, Param: e.Params[0], Interval: p.interval}
		switch e.Kind {
		case "serial":
			ap.Device = e.Where
		case "coap":
			ap.Name += "-" + e.Params[0]
			ap.URL, ap.Observe = e.Where, true
		}
		out = append(out, ap)
	}
	return out
}

// probeRun is what one probe run measured.
type probeRun struct {
	elapsed        time.Duration
	agentCPU       time.Duration
	simCPU         time.Duration
	idle, peak     int64 // bytes
	steady         float64
	steadySamples  int
	readings       uint64 // in the window, summed over the probes
	errors         uint64 // probe errors in the window
	accepted       int64  // the pipeline's, in the window
	silent, failed []string
}

// probes runs the probe comparison: a real agent reading opts.probes.serial EZO circuits
// and opts.probes.coap observed CoAP resources, all served by one `ph-sim station`, and
// measures its CPU and memory once every probe is online.
func (b *bench) probes(ctx context.Context) {
	o := b.opts
	p := o.probes
	cpuName, rssName := p.names()
	sondes := (p.coap + p.perSonde - 1) / p.perSonde
	b.printf("\n== probes: %s, %s\n", cpuName, rssName)
	b.printf("load: %s station: %d EZO circuits on pseudo-terminals in real time (a pH reading takes 900 ms; %s in turn)\n"+
		"      and %d CoAP sondes of up to %d resources (%s), JSON payloads, one UDP port each;\n"+
		"      agent: %d serial probes and %d CoAP probes (Observe), every one at interval %s = %.0f readings/s expected;\n"+
		"      fsync on, no uplink. Measured over %s once every probe is online: agent CPU from /proc/<pid>/stat\n"+
		"      (utime+stime, %% of one core), VmRSS every 250 ms (steady: median), peak = VmHWM at the end\n",
		b.simBin(), p.serial, strings.Join(serialParams, ", "), sondes, p.perSonde, strings.Join(coapParams[:min(p.perSonde, p.coap)], ", "),
		p.serial, p.coap, p.interval, float64(p.serial+p.coap)/p.interval.Seconds(), p.dur)

	dir := filepath.Join(o.work, "agent-probes")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		b.fail("%s: %v", cpuName, err)
		return
	}
	scenario := filepath.Join(dir, "station.scenario.yaml")
	if err := os.WriteFile(scenario, p.stationScenario(o.station, dir), 0o640); err != nil {
		b.fail("%s: %v", cpuName, err)
		return
	}
	st, err := harness.StartStation(ctx, b.simBin(), scenario, filepath.Join(dir, "station.log"), p.serial+p.coap)
	if err != nil {
		if ctx.Err() == nil {
			b.fail("%s: %v", cpuName, err)
		}
		return
	}
	addr, err := testproc.FreePort("tcp")
	if err != nil {
		b.fail("%s: %v", cpuName, errorsAnd(err, st.Stop()))
		return
	}
	cfg := harness.AgentConfig{Dir: filepath.Join(dir, "agent"), Station: o.station, Listen: addr}
	agent, err := harness.StartAgentWithProbes(ctx, b.agentBin(), cfg, p.agentProbes(st.Endpoints))
	if err != nil {
		if ctx.Err() == nil {
			b.fail("%s: %v", cpuName, err)
		}
		if err := st.Stop(); err != nil {
			b.fail("%s: ph-sim station did not shut down cleanly: %v", cpuName, err)
		}
		return
	}
	run, ok := b.probeRun(ctx, cpuName, agent, st)
	// Inputs first, as in the field: the agent sees its probes go before it stops.
	if err := agent.Stop(); err != nil {
		b.fail("%s: the agent did not shut down cleanly: %v; its log ends:\n%s", cpuName, err, agent.LogTail(10))
		ok = false
	}
	if err := st.Stop(); err != nil {
		b.fail("%s: ph-sim station did not shut down cleanly: %v; its log ends:\n%s", cpuName, err, st.LogTail(10))
		ok = false
	}
	if !ok {
		return
	}
	cpuPct := 100 * run.agentCPU.Seconds() / run.elapsed.Seconds()
	b.add(cpuName, cpuPct, p.cpuBudget(), "%_of_core", benchline.Goal{Op: benchline.AtMost, Value: 1},
		fmt.Sprintf("budget: %.3g%% of one core of this machine for %d probes at %s (%g%% per 100 readings/s); "+
			"a Raspberry Pi 3 core (Cortex-A53 1.2 GHz) does roughly 10x less, so about half of one there; not measured on a Pi",
			p.cpuBudget(), p.serial+p.coap, p.interval, probeCPUBudget))
	b.add(rssName, mb(run.peak), probeRSSBudgetMB, "MB", benchline.Goal{Op: benchline.AtMost, Value: 1},
		fmt.Sprintf("budget (a Pi Zero 2 has 512 MB for everything); ours: peak VmHWM, steady median %.1f MB", run.steady))
}

// probeRun waits for every probe to come online, then measures the window. It reports
// false when the run failed or a sanity check did not hold (recorded).
func (b *bench) probeRun(ctx context.Context, name string, agent *harness.Agent, st *harness.Station) (probeRun, bool) {
	p := b.opts.probes
	want := p.serial + p.coap
	var run probeRun

	// Warm-up: every probe identified (serial) or registered (CoAP) and reporting.
	start := time.Now()
	var (
		sensors []harness.Sensor
		err     error
	)
	for {
		sensors, err = agent.Sensors(ctx)
		if err == nil && len(reporting(sensors)) == want {
			break
		}
		if ctx.Err() != nil {
			return run, false
		}
		if time.Since(start) > 60*time.Second {
			if err != nil {
				b.fail("%s: %v", name, err)
			} else {
				b.fail("%s: after 60 s only %d of %d probes online and reporting; silent: %s; the agent's log ends:\n%s",
					name, len(reporting(sensors)), want, strings.Join(firstN(silent(sensors, want), 10), ", "), agent.LogTail(10))
			}
			return run, false
		}
		sleep(ctx, 500*time.Millisecond)
	}
	b.printf("   all %d probes online and reporting after %.1f s\n", want, time.Since(start).Seconds())

	idle, err := procstat.ReadMemory(agent.PID())
	if err != nil {
		b.fail("%s: %v", name, err)
		return run, false
	}
	st0, err := agent.Status(ctx)
	if err != nil {
		b.fail("%s: %v", name, err)
		return run, false
	}
	before := byName(sensors)
	cpu0, err := procstat.ReadCPU(agent.PID())
	if err != nil {
		b.fail("%s: %v", name, err)
		return run, false
	}
	sim0, simErr := procstat.ReadCPU(st.PID())
	t0 := time.Now()
	sampleCtx, stop := context.WithTimeout(ctx, p.dur)
	samples, sampleErr := procstat.SampleRSS(sampleCtx, agent.PID(), 250*time.Millisecond)
	stop()
	if ctx.Err() != nil {
		return run, false
	}
	cpu1, err := procstat.ReadCPU(agent.PID())
	run.elapsed = time.Since(t0)
	if err != nil || sampleErr != nil {
		b.fail("%s: the agent could not be measured (%v, %v); its log ends:\n%s", name, err, sampleErr, agent.LogTail(10))
		return run, false
	}
	sim1, simErr2 := procstat.ReadCPU(st.PID())
	run.agentCPU = cpu1 - cpu0
	if simErr == nil && simErr2 == nil {
		run.simCPU = sim1 - sim0
	}
	end, err := procstat.ReadMemory(agent.PID())
	if err != nil {
		b.fail("%s: %v", name, err)
		return run, false
	}
	sensors, err = agent.Sensors(ctx)
	if err != nil {
		b.fail("%s: %v", name, err)
		return run, false
	}
	st1, err := agent.Status(ctx)
	if err != nil {
		b.fail("%s: %v", name, err)
		return run, false
	}

	run.idle, run.peak = idle.RSS, end.Peak
	var steady []float64
	for _, s := range samples {
		steady = append(steady, mb(s.RSS))
	}
	run.steady, run.steadySamples = median(steady), len(steady)
	for _, s := range sensors {
		b0 := before[s.Name]
		switch {
		case !s.Online:
			run.failed = append(run.failed, s.Name+" (offline)")
		case s.Readings <= b0.Readings:
			run.silent = append(run.silent, s.Name)
		}
		if s.Readings > b0.Readings {
			run.readings += s.Readings - b0.Readings
		}
		if s.Errors > b0.Errors {
			run.errors += s.Errors - b0.Errors
		}
	}
	run.accepted = st1.Ingest.Accepted - st0.Ingest.Accepted

	secs := run.elapsed.Seconds()
	expected := float64(want) / p.interval.Seconds()
	rate := float64(run.readings) / secs
	b.printf("   readings: %d in %.1f s = %.1f/s (expected %.0f/s), pipeline accepted %d, probe errors %d\n",
		run.readings, secs, rate, expected, run.accepted, run.errors)
	b.printf("   CPU: agent %.2f s in %.1f s = %.2f%% of one core (%.1f µs per reading); ph-sim station %.2f s = %.2f%% of one core\n",
		run.agentCPU.Seconds(), secs, 100*run.agentCPU.Seconds()/secs, perReading(run.agentCPU, run.readings),
		run.simCPU.Seconds(), 100*run.simCPU.Seconds()/secs)
	b.printf("   VmRSS: %.1f MB once all probes were online, steady %.1f MB (median of %d samples over the window), peak (VmHWM) %.1f MB; MB = 10^6 bytes\n",
		mb(run.idle), run.steady, run.steadySamples, mb(run.peak))
	b.printf("   ph-agent status --json: ingest.accepted=%d ingest.bad=%d ingest.store_failures=%d buffer.readings=%d\n",
		st1.Ingest.Accepted, st1.Ingest.Bad, st1.Ingest.StoreFailures, st1.Buffer.Readings)

	c := checks{}
	c.that(len(sensors) == want, "ph-agent sensors lists all %d probes (%d)", want, len(sensors))
	c.that(len(run.failed) == 0, "every probe online at the end (not: %s)", strings.Join(firstN(run.failed, 10), ", "))
	c.that(len(run.silent) == 0, "readings arrived from every probe during the window (none from: %s)", strings.Join(firstN(run.silent, 10), ", "))
	c.that(rate >= 0.8*expected, "at least 80%% of the expected readings (%.1f/s of %.0f/s)", rate, expected)
	c.that(run.errors*100 <= run.readings, "probe errors at most 1%% of readings (%d errors, %d readings)", run.errors, run.readings)
	c.that(st1.Ingest.StoreFailures == 0, "no store failure (%d)", st1.Ingest.StoreFailures)
	c.that(run.accepted >= int64(run.readings)*9/10, "the pipeline accepted the probes' readings (%d accepted, %d read)", run.accepted, run.readings)
	c.that(run.steadySamples > 0, "memory sampled during the window")
	b.report(name, c)
	return run, c.ok()
}

// reporting lists the probes online with at least one reading.
func reporting(sensors []harness.Sensor) []string {
	var out []string
	for _, s := range sensors {
		if s.Online && s.Readings > 0 {
			out = append(out, s.Name)
		}
	}
	return out
}

// silent lists the probes not yet reporting (or a count, when the agent lists fewer).
func silent(sensors []harness.Sensor, want int) []string {
	var out []string
	for _, s := range sensors {
		if !s.Online || s.Readings == 0 {
			out = append(out, s.Name)
		}
	}
	if len(sensors) < want {
		out = append(out, fmt.Sprintf("(%d not listed)", want-len(sensors)))
	}
	return out
}

func byName(sensors []harness.Sensor) map[string]harness.Sensor {
	m := make(map[string]harness.Sensor, len(sensors))
	for _, s := range sensors {
		m[s.Name] = s
	}
	return m
}

// firstN is up to n items, and how many more there are.
func firstN(items []string, n int) []string {
	if len(items) <= n {
		return items
	}
	return append(slices.Clone(items[:n]), fmt.Sprintf("and %d more", len(items)-n))
}

func perReading(cpu time.Duration, readings uint64) float64 {
	if readings == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(readings)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// errorsAnd keeps a second error (a failed stop) beside the first.
func errorsAnd(err, also error) error {
	if also != nil {
		return fmt.Errorf("%w (and: %v)", err, also)
	}
	return err
}

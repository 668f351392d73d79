package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/purehealth/purehealth/bench/internal/benchline"
	"github.com/purehealth/purehealth/bench/internal/benchrows"
	"github.com/purehealth/purehealth/bench/internal/harness"
	"github.com/purehealth/purehealth/bench/internal/liveprobe"
	"github.com/purehealth/purehealth/internal/testproc"
)

// Settings of the drain comparison's agent.
const (
	drainBufferBytes   = 1 << 30 // buffer.max_bytes: far above what the backlog takes, so nothing is evicted
	drainBackoffMax    = time.Second
	backlogPerMessage  = 32 // readings per MQTT message of the backlog
	backlogConns       = 4
	backlogWindow      = 16
	probeSensor        = "bench-live"
	drainPoll          = 250 * time.Millisecond // at first; see drainMeasure
	drainPeerReps      = 3
	defaultUplinkEvery = 2 * time.Second // the agent's uplink.interval default, which the comparison keeps
)

// drain measures store-and-forward after an outage: readings are buffered at a real
// ph-agent while its cloud is down; then the cloud comes up and the agent drains its
// backlog. Meanwhile a probe publishes one reading every probeEvery at the agent and
// measures how long each takes to be committed in PostgreSQL; the same probe is measured
// again when nothing is buffered. The drain's rate is compared with psql's \copy of the
// same rows into the same table.
func (b *bench) drain(ctx context.Context) {
	s, o := b.opts.store, b.opts
	b.printf("\n== backlog drain: %d readings buffered at a real ph-agent while the cloud is down; then the cloud comes up\n", s.drainReadings)
	env, ok := b.startStoreEnv(ctx, nameDrain, nameLiveLatency)
	if !ok {
		return
	}
	defer b.stopStoreEnv(env)

	dir := filepath.Join(o.work, "drain")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		b.fail("%s: %v", nameDrain, err)
		return
	}
	addr, err := testproc.FreePort("tcp")
	if err != nil {
		b.fail("%s: %v", nameDrain, err)
		return
	}
	cfg := harness.CloudConfig{Dir: dir, Listen: addr, DatabaseURL: env.url(), RatePerStation: benchRatePerStation,
		Burst: benchBurst, MaxInFlight: benchMaxInFlight}
	prep, err := harness.PrepareCloud(ctx, b.cloudBin(), cfg, o.station)
	if err != nil {
		b.fail("%s: %v", nameDrain, err)
		return
	}
	b.printf("   %s\n", prep.Storage)
	tokens := prep.Tokens
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(tokens[0]+"\n"), 0o600); err != nil {
		b.fail("%s: %v", nameDrain, err)
		return
	}
	mqttAddr, err := testproc.FreePort("tcp")
	if err != nil {
		b.fail("%s: %v", nameDrain, err)
		return
	}
	agentDir := filepath.Join(dir, "agent")
	acfg := harness.AgentConfig{Dir: agentDir, Station: o.station, Listen: mqttAddr, MaxBytes: drainBufferBytes}
	up := harness.Uplink{URL: cfg.URL(), TokenFile: tokenFile, BackoffMax: drainBackoffMax, BatchMax: s.drainBatchMax}
	batchMax := "batch_max (the agent's default)"
	if s.drainBatchMax > 0 {
		batchMax = fmt.Sprintf("batch_max %d (--drain-batch-max)", s.drainBatchMax)
	}
	set := benchrows.Set{Stations: []string{o.station}, PerStation: s.drainReadings, Spacing: s.drainSpacing,
		End: time.Now().UTC().Truncate(time.Second).Add(-time.Minute), Seed: 2}
	timing := fmt.Sprintf("one of each of the 8 parameters every %s (%s to %s)", s.drainSpacing,
		set.Start().Format(time.RFC3339), set.End.Format(time.RFC3339))
	if s.drainSpacing == 0 {
		timing = "all with one timestamp, as a burst published at full speed has (--drain-spacing 0)"
	}
	b.printf("backlog: %d readings of station %s, %s; published at QoS 1 on purehealth/%s/readings,\n"+
		"      %d readings per message, %d connections, %d unacknowledged messages each, while the cloud is down\n",
		set.Len(), o.station, timing, o.station, backlogPerMessage, backlogConns, backlogWindow)
	b.printf("agent: fsync on, buffer.max_bytes %d MiB, uplink to %s with its defaults (interval %s, live_readings 200)\n"+
		"      except backoff_max %s, so that it notices the cloud within a second; %s\n",
		drainBufferBytes>>20, cfg.URL(), defaultUplinkEvery, drainBackoffMax, batchMax)
	b.printf("cloud: ingest.rate_per_station %d, burst %d, max_in_flight %d (the limiter is not measured), database.max_conns default (10)\n"+
		"probe: one pH reading (sensor %s) every %s on purehealth/%s/ph at QoS 1, from the cloud's storing the agent's first batch until the backlog is drained,\n"+
		"      then for %s with nothing buffered; latency = publish → row visible in measurements (LISTEN %s + a poll every %s)\n",
		benchRatePerStation, benchBurst, benchMaxInFlight, probeSensor, s.probeEvery, o.station, s.idleTime,
		liveprobe.Channel, liveprobe.PollEvery)

	agent, err := harness.StartForwardingAgent(ctx, b.agentBin(), acfg, up)
	if err != nil {
		b.fail("%s: %v", nameDrain, err)
		return
	}
	res, ok := b.drainRun(ctx, env, agent, mqttAddr, cfg, set)
	if err := agent.Stop(); err != nil {
		b.fail("%s: the agent did not shut down cleanly: %v; its log ends:\n%s", nameDrain, err, agent.LogTail(10))
		return
	}
	if !ok || ctx.Err() != nil {
		return
	}

	// The peer: the very rows the drain stored, loaded again by psql.
	run := "psql \\copy of the drained rows"
	csvPath := filepath.Join(dir, "drained.csv")
	// psql's \copy takes no bound parameters: the station id (already accepted by the
	// cloud's `station add`) is quoted as a literal.
	n, err := env.psqlExport(ctx, fmt.Sprintf("SELECT %s FROM measurements WHERE station_id = '%s' AND seq <= %d ORDER BY seq",
		strings.Join(benchrows.Columns, ", "), strings.ReplaceAll(o.station, "'", "''"), set.Len()), csvPath)
	if err == nil && n != int64(set.Len()) {
		err = fmt.Errorf("exported %d rows, want %d", n, set.Len())
	}
	if err != nil {
		b.fail("%s: %v", run, err)
		return
	}
	// Three loads, the median taken: one load of a few seconds is at the mercy of whatever
	// else the machine is doing.
	meter := &cpuMeter{}
	meter.add("postgres", treeCPU(env.pg.PID()))
	meter.add("phbench+psql", selfCPU)
	var rates []float64
	for rep := 1; rep <= drainPeerReps && ctx.Err() == nil; rep++ {
		if err := env.reset(ctx); err != nil {
			b.fail("%s: %v", run, err)
			return
		}
		b.printf("\n-- %s, run %d/%d: %d rows (%s of CSV), tables emptied, load average %s\n", run, rep, drainPeerReps, n, fileSize(csvPath), loadAverage())
		cpu0 := meter.snapshot()
		copied, wall, err := env.psqlCopy(ctx, csvPath)
		if err != nil {
			if ctx.Err() == nil {
				b.fail("%s: %v", run, err)
			}
			return
		}
		b.printf("   %d rows in %.3f s: %.0f rows/s\n   %s\n", copied, wall.Seconds(), float64(copied)/wall.Seconds(), meter.since(cpu0, wall, copied))
		c := checks{}
		c.that(copied == n, "psql copied every row (%d of %d)", copied, n)
		b.report(run, c)
		if c.ok() {
			rates = append(rates, float64(copied)/wall.Seconds())
		}
	}
	if len(rates) == 0 || ctx.Err() != nil {
		return
	}
	peerRate := median(rates)
	b.printf("\n-- median: psql \\copy %s rows/s; the drain %.0f rows/s\n", spread(rates), res.rate)

	b.add(nameDrain, res.rate, peerRate, "rows/s", benchline.Goal{Op: benchline.AtLeast, Value: 0.5},
		fmt.Sprintf("psql \\copy of the same %d rows (CSV exported from the drained table) into measurements, same PostgreSQL, fsync on, median of %d; ours: cloud up -> agent backlog 0, uplink %s", set.Len(), drainPeerReps, batchMax))
	if res.during.Sent > 0 && res.idle.Sent > 0 {
		b.add(nameLiveLatency, ms(res.during.Percentile(0.99)), ms(res.idle.Percentile(0.99)), "ms", benchline.Goal{Op: benchline.AtMost, Value: 2},
			fmt.Sprintf("p99 of the same probe (1 reading every %s, publish -> row in PostgreSQL) with no backlog, same agent and cloud, uplink.interval %s", s.probeEvery, defaultUplinkEvery))
	}
}

// drainResult is what drainRun measured.
type drainResult struct {
	rate         float64 // backlog readings per second, cloud up → backlog drained
	during, idle liveprobe.Result
}

// drainRun buffers the backlog at agent (whose broker listens on mqttAddr), brings the
// cloud up, waits for the drain while the probe measures, then measures the probe idle. It
// stops the cloud it started.
func (b *bench) drainRun(ctx context.Context, env *storeEnv, agent *harness.Agent, mqttAddr string, cfg harness.CloudConfig, set benchrows.Set) (drainResult, bool) {
	o := b.opts
	n := set.Len()
	run := "backlog drain"

	messages := (n + backlogPerMessage - 1) / backlogPerMessage
	b.printf("\n-- buffering the backlog at the agent (cloud down), load average %s\n", loadAverage())
	start := time.Now()
	err := harness.Publish{Broker: mqttAddr, Topic: "purehealth/" + o.station + "/readings", Count: messages,
		Payload: func(i int) ([]byte, error) { return set.Payload(0, i*backlogPerMessage, backlogPerMessage) },
		Conns:   backlogConns, Window: backlogWindow, ClientID: "phbench-backlog"}.Run(ctx)
	if err != nil {
		if ctx.Err() == nil {
			b.fail("%s: buffering the backlog: %v; the agent's log ends:\n%s", run, err, agent.LogTail(10))
		}
		return drainResult{}, false
	}
	took := time.Since(start)
	st, err := agent.Status(ctx)
	if err != nil {
		b.fail("%s: %v", run, err)
		return drainResult{}, false
	}
	q, err := agent.Queue(ctx)
	if err != nil {
		b.fail("%s: %v", run, err)
		return drainResult{}, false
	}
	lane, _ := q.Lane("readings")
	b.printf("   %d messages (%d readings) acknowledged in %.1f s (%.0f readings/s); agent: accepted %d, rejected %d, buffer %.0f MB in its file,\n"+
		"   queue: state %q, backlog %d, readings seqs 1..%d, last error %q\n",
		messages, n, took.Seconds(), float64(n)/took.Seconds(), st.Ingest.Accepted, st.Ingest.Rejected,
		mb(st.Buffer.FileBytes), q.State, q.Backlog, lane.LastSeq, q.LastError)
	c := checks{}
	c.that(st.Ingest.Accepted == int64(n) && st.Ingest.Rejected == 0, "the agent accepted every reading (%d of %d, %d rejected)",
		st.Ingest.Accepted, n, st.Ingest.Rejected)
	c.that(lane.LastSeq == uint64(n) && lane.Cursor == 0 && q.Backlog == int64(n),
		"all of them wait in the queue (last seq %d, cursor %d, backlog %d)", lane.LastSeq, lane.Cursor, q.Backlog)
	c.that(len(st.Buffer.Evicted) == 0 || sum(st.Buffer.Evicted) == 0, "nothing evicted (%v)", st.Buffer.Evicted)
	b.report(run+": backlog", c)
	if !c.ok() {
		return drainResult{}, false
	}

	probe, err := liveprobe.Open(ctx, liveprobe.Config{Broker: mqttAddr, Station: o.station, Sensor: probeSensor,
		DatabaseURL: env.url()})
	if err != nil {
		b.fail("%s: %v", run, err)
		return drainResult{}, false
	}
	defer func() {
		if err := probe.Close(context.WithoutCancel(ctx)); err != nil {
			b.printf("   live probe: close: %v\n", err)
		}
	}()
	if err := env.resetProfile(ctx); err != nil {
		b.fail("%s: %v", run, err)
		return drainResult{}, false
	}

	b.printf("\n-- %s: starting the cloud, load average %s\n", run, loadAverage())
	cloud, err := harness.StartCloud(ctx, b.cloudBin(), cfg)
	if err != nil {
		b.fail("%s: %v", run, err)
		return drainResult{}, false
	}
	res, ok := b.drainMeasure(ctx, env, agent, cloud, probe, n)
	if err := cloud.Stop(); err != nil {
		b.fail("%s: ph-cloud did not shut down cleanly: %v; its log ends:\n%s", run, err, cloud.LogTail(10))
		return drainResult{}, false
	}
	return res, ok
}

// drainMeasure runs from the moment the cloud answers: the drain with the probe, then the
// probe alone. The probe starts once the cloud has stored the agent's first batch: until
// then the agent waits out its retry backoff (up to backoff_max, at random), which a
// reading published meanwhile waits out too, whether anything is buffered or not. That
// wait belongs to the outage, and would decide the p99 of a short drain on its own.
func (b *bench) drainMeasure(ctx context.Context, env *storeEnv, agent *harness.Agent, cloud *harness.Cloud, probe *liveprobe.Probe, n int) (drainResult, bool) {
	s, o := b.opts.store, b.opts
	run := "backlog drain"
	t0 := time.Now()
	meter := &cpuMeter{}
	meter.add("ph-agent", ownCPU(agent.PID()))
	meter.add("ph-cloud", ownCPU(cloud.PID()))
	meter.add("postgres", treeCPU(env.pg.PID()))
	meter.add("phbench", selfCPU)
	cpu0 := meter.snapshot()
	before, err := cloud.Health(ctx)
	if err != nil {
		b.fail("%s: %v", run, err)
		return drainResult{}, false
	}
	// A drain slower than 100 readings a second is broken, not slow.
	guard := time.Minute + time.Duration(n/100)*time.Second
	settle := 3*defaultUplinkEvery + 5*time.Second

	reached, err := firstBatchStored(ctx, cloud, before.Ingest.Batches, guard)
	if err != nil {
		if ctx.Err() == nil {
			b.fail("%s: %v; the agent's log ends:\n%s", run, err, agent.LogTail(8))
		}
		return drainResult{}, false
	}
	b.printf("   the cloud stored the agent's first batch %.2f s after its first answer (the agent's retry wait); the probe starts\n",
		reached.Sub(t0).Seconds())

	drained := make(chan struct{})
	type probed struct {
		res liveprobe.Result
		err error
	}
	during := make(chan probed, 1)
	go func() {
		r, err := probe.Measure(ctx, s.probeEvery, drained, settle)
		during <- probed{r, err}
	}()

	var (
		end      time.Time
		cpuEnd   []time.Duration
		last     harness.Queue
		pollErr  error
		nextNote = t0.Add(10 * time.Second)
	)
	for {
		q, err := agent.Queue(ctx)
		now := time.Now()
		if err != nil {
			pollErr = err
			break
		}
		last = q
		if lane, ok := q.Lane("readings"); ok && lane.Cursor >= uint64(n) {
			end, cpuEnd = now, meter.snapshot()
			break
		}
		if now.After(nextNote) {
			lane, _ := q.Lane("readings")
			b.printf("   %5.1f s: cursor %d of %d, backlog %d, state %q, load average %s\n",
				now.Sub(t0).Seconds(), lane.Cursor, n, q.Backlog, q.State, loadAverage())
			nextNote = nextNote.Add(10 * time.Second)
		}
		if now.Sub(t0) > guard {
			pollErr = fmt.Errorf("not drained after %s: last queue state %q, backlog %d, last error %q", guard, q.State, q.Backlog, q.LastError)
			break
		}
		// Every poll runs the agent's CLI: a long drain is polled less often, keeping the
		// end known to within half a percent.
		select {
		case <-ctx.Done():
			pollErr = ctx.Err()
		case <-time.After(min(max(drainPoll, now.Sub(t0)/200), 2*time.Second)):
		}
		if pollErr != nil {
			break
		}
	}
	close(drained)
	p := <-during
	if pollErr != nil || p.err != nil {
		if ctx.Err() == nil {
			b.fail("%s: %v; the agent's log ends:\n%s\nph-cloud's log ends:\n%s", run, errors.Join(pollErr, p.err), agent.LogTail(8), cloud.LogTail(8))
		}
		return drainResult{}, false
	}
	wall := end.Sub(t0)
	rate := float64(n) / wall.Seconds()
	b.printf("   drained: %d readings in %.2f s from the cloud's first answer to the agent's readings cursor past seq %d: %.0f readings/s\n",
		n, wall.Seconds(), n, rate)
	b.printf("   %s\n", meter.format(cpu0, cpuEnd, wall, int64(n)))
	after, err := cloud.Health(ctx)
	if err != nil {
		b.fail("%s: %v", run, err)
		return drainResult{}, false
	}
	b.printf("   ph-cloud /health: %d batches, %d new readings, %d duplicates; refused %v; agent queue: batch_limit %d, rejected %d\n",
		after.Ingest.Batches-before.Ingest.Batches, after.Ingest.NewReadings-before.Ingest.NewReadings,
		after.Ingest.Duplicates-before.Ingest.Duplicates, after.Ingest.Refused, last.BatchLimit, last.Rejected)
	var first, lastAt time.Time
	if err := env.queryRow(ctx, "SELECT min(received_at), max(received_at) FROM measurements WHERE station_id = $1 AND seq <= $2",
		[]any{o.station, n}, &first, &lastAt); err == nil {
		// received_at is the cloud's clock when it stored a batch: the same machine's clock.
		b.printf("   the cloud stored the first batch %.2f s after its first answer (the agent's retry wait), the last at %.2f s: %.0f readings/s in between\n",
			first.Sub(t0).Seconds(), lastAt.Sub(t0).Seconds(), float64(n)/lastAt.Sub(first).Seconds())
	}
	b.printProfile(ctx, env, 8)
	b.printLatency("live probe during the drain", p.res)
	stored, err := env.count(ctx, "SELECT count(*) FROM measurements WHERE station_id = $1 AND seq <= $2", o.station, n)
	c := checks{}
	c.that(err == nil && stored == int64(n), "measurements holds the %d buffered readings (%d, %v)", n, stored, err)
	c.that(last.Rejected == 0, "the cloud refused no record (%d)", last.Rejected)
	c.that(p.res.Sent > 0 && p.res.Missing == 0, "every probe reading reached the database (%d sent, %d missing)", p.res.Sent, p.res.Missing)
	b.report(run, c)
	if !c.ok() {
		return drainResult{}, false
	}

	// The same probe with nothing buffered: wait for the agent to be idle first.
	run = "live probe, idle"
	for i := 0; ; i++ {
		q, err := agent.Queue(ctx)
		if err != nil {
			b.fail("%s: %v", run, err)
			return drainResult{}, false
		}
		if q.Backlog == 0 {
			break
		}
		if i == 100 {
			b.fail("%s: the agent still has a backlog of %d after the drain", run, q.Backlog)
			return drainResult{}, false
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.printf("\n-- %s: %s, nothing buffered, load average %s\n", run, s.idleTime, loadAverage())
	stop := make(chan struct{})
	timer := time.AfterFunc(s.idleTime, func() { close(stop) })
	defer timer.Stop()
	idle, err := probe.Measure(ctx, s.probeEvery, stop, settle)
	if err != nil {
		if ctx.Err() == nil {
			b.fail("%s: %v", run, err)
		}
		return drainResult{}, false
	}
	b.printLatency(run, idle)
	c = checks{}
	c.that(idle.Sent > 0 && idle.Missing == 0, "every probe reading reached the database (%d sent, %d missing)", idle.Sent, idle.Missing)
	b.report(run, c)
	if !c.ok() {
		return drainResult{}, false
	}
	return drainResult{rate: rate, during: p.res, idle: idle}, true
}

// firstBatchStored waits until the cloud has stored a batch more than it had stored
// (batches), and returns when it saw that, or an error after guard.
func firstBatchStored(ctx context.Context, cloud *harness.Cloud, batches int64, guard time.Duration) (time.Time, error) {
	deadline := time.Now().Add(guard)
	for {
		h, err := cloud.Health(ctx)
		if err != nil {
			return time.Time{}, err
		}
		now := time.Now()
		if h.Ingest.Batches > batches {
			return now, nil
		}
		if now.After(deadline) {
			return time.Time{}, fmt.Errorf("the cloud stored no batch of the agent within %s", guard)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (b *bench) printLatency(what string, r liveprobe.Result) {
	b.printf("   %s: %d readings, %d seen; publish -> row latency p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
		what, r.Sent, len(r.Latencies), ms(r.Percentile(0.5)), ms(r.Percentile(0.99)), ms(r.Max()))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func sum(m map[string]int64) int64 {
	var t int64
	for _, v := range m {
		t += v
	}
	return t
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/bench/internal/benchline"
	"github.com/purehealth/purehealth/bench/internal/harness"
	"github.com/purehealth/purehealth/internal/testproc"
	"github.com/purehealth/purehealth/shared/wire"
)

// The sensor-to-dashboard comparison, as --only names it, and its line.
const (
	onlyLatency    = "latency"
	nameSensorToWS = "sensor_to_ws_p99_vs_floor"
)

// latencySlack is what the floor allows on top of its measured parts: the scheduling of
// five processes on the machine's cores, JSON and gzip, the WebSocket write.
const latencySlack = 20 * time.Millisecond

// latencyBackoffMax is the agent's uplink.backoff_max in this comparison: should a batch
// fail, the next pass comes within a second, not minutes later.
const latencyBackoffMax = time.Second

// latencyLiveReadings is the agent's uplink.live_readings in this comparison unless set:
// a pass that finds more readings waiting than that sends the newest first (the uplink's
// live lane) and the older ones after them, which the order check would flag. 2000 is two
// seconds of readings at 1000 a second.
const latencyLiveReadings = 2000

// latencyOptions are the settings of the latency comparison; defaults() fills those not
// given.
type latencyOptions struct {
	rate         float64       // readings a second, over all sensors
	sensors      int           // MQTT connections, one sensor each
	length       time.Duration // of the publishing
	interval     time.Duration // the agent's uplink.interval
	liveReadings int           // the agent's uplink.live_readings
	samples      int           // round trips timed for each part of the floor
}

func (l *latencyOptions) register(fs *flag.FlagSet) {
	fs.Float64Var(&l.rate, "latency-rate", 1000, "readings a second published at the agent in the sensor-to-WebSocket latency run, over all sensors")
	fs.IntVar(&l.sensors, "latency-sensors", 10, "sensors (MQTT connections) publishing in the latency run")
	fs.DurationVar(&l.length, "latency-time", 0, "how long readings are published in the latency run (default 8s quick, 20s full)")
	fs.DurationVar(&l.interval, "latency-interval", 200*time.Millisecond, "the agent's uplink.interval in the latency run (counted in the floor)")
	fs.IntVar(&l.liveReadings, "latency-live-readings", latencyLiveReadings, "the agent's uplink.live_readings in the latency run: more readings waiting than this go newest first, out of order")
	fs.IntVar(&l.samples, "latency-floor-samples", 0, "round trips timed for each part of the latency floor (default 100 quick, 200 full)")
}

func (l *latencyOptions) defaults(quick bool) {
	if l.length == 0 {
		l.length = 20 * time.Second
		if quick {
			l.length = 8 * time.Second
		}
	}
	if l.samples == 0 {
		l.samples = 200
		if quick {
			l.samples = 100
		}
	}
}

func (l *latencyOptions) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !(l.rate >= 1) || l.rate > 20000 {
		bad("--latency-rate %v must be 1..20000 readings a second", l.rate)
	}
	if l.sensors < 1 || l.sensors > 100 {
		bad("--latency-sensors %d must be 1..100", l.sensors)
	}
	if l.length < 2*time.Second {
		bad("--latency-time %s must be at least 2s", l.length)
	}
	if l.interval < 100*time.Millisecond || l.interval > 10*time.Second {
		bad("--latency-interval %s must be 100ms..10s (the agent's bounds start at 100ms)", l.interval)
	}
	if l.liveReadings < 1 || l.liveReadings > wire.MaxRecords {
		bad("--latency-live-readings %d must be 1..%d", l.liveReadings, wire.MaxRecords)
	}
	if l.samples < 10 || l.samples > 10000 {
		bad("--latency-floor-samples %d must be 10..10000", l.samples)
	}
	if len(errs) == 0 {
		if p := l.plan(); p.perSensor() > latencyMaxPerSensor {
			bad("the latency run would publish %d readings a sensor, at most %d: fewer --latency-rate or --latency-time, or more --latency-sensors",
				p.perSensor(), latencyMaxPerSensor)
		}
	}
	return errs
}

func (l *latencyOptions) plan() latencyPlan {
	return latencyPlan{sensors: l.sensors, count: int(math.Round(l.rate * l.length.Seconds())), rate: l.rate}
}

// latency measures how long a reading takes from a sensor's MQTT publish at a real
// ph-agent to a WebSocket client of a real ph-cloud, through the agent's durable buffer,
// its uplink, the cloud's ingest transaction and its fan-out, against the floor of that
// path on this machine: the agent's fsync, the cloud's commit, the loopback round trips,
// the fan-out's read and the uplink interval, each measured in the same run with nothing
// else going on.
func (b *bench) latency(ctx context.Context) {
	l, o := b.opts.latency, b.opts
	plan := l.plan()
	b.printf("\n== sensor to WebSocket client: %d readings at %.0f a second through a real ph-agent and ph-cloud\n", plan.count, l.rate)
	env, ok := b.startStoreEnv(ctx, nameSensorToWS)
	if !ok {
		return
	}
	defer b.stopStoreEnv(env)

	dir := filepath.Join(o.work, "latency")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		b.fail("%s: %v", nameSensorToWS, err)
		return
	}
	cloud, token, err := b.startLatencyCloud(ctx, env, dir)
	if err != nil {
		b.fail("%s: %v", nameSensorToWS, err)
		return
	}
	defer func() {
		if err := cloud.Stop(); err != nil {
			b.fail("%s: ph-cloud did not shut down cleanly: %v; its log ends:\n%s", nameSensorToWS, err, cloud.LogTail(10))
		}
	}()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		b.fail("%s: %v", nameSensorToWS, err)
		return
	}
	mqttAddr, err := testproc.FreePort("tcp")
	if err != nil {
		b.fail("%s: %v", nameSensorToWS, err)
		return
	}
	acfg := harness.AgentConfig{Dir: filepath.Join(dir, "agent"), Station: o.station, Listen: mqttAddr}
	up := harness.Uplink{URL: cloud.URL, TokenFile: tokenFile, Interval: l.interval, BackoffMax: latencyBackoffMax,
		LiveReadings: l.liveReadings}
	agent, err := harness.StartForwardingAgent(ctx, b.agentBin(), acfg, up)
	if err != nil {
		b.fail("%s: %v", nameSensorToWS, err)
		return
	}
	// Deferred last, so run first: the agent finishes its batch in flight while the cloud
	// still answers.
	defer func() {
		if err := agent.Stop(); err != nil {
			b.fail("%s: the agent did not shut down cleanly: %v; its log ends:\n%s", nameSensorToWS, err, agent.LogTail(10))
		}
	}()

	b.printf("load: %d sensors (one MQTT 3.1.1 connection each, from this process), QoS 1, %.0f readings a second in all (%.0f each, in turns),\n"+
		"      for %s: one JSON pH reading per message on purehealth/%s/ph, stamped with its publish time, its value (sensor's\n"+
		"      7.0000 + 0.0001 a reading) and sensor name saying which publication it is\n"+
		"agent: %s run, fsync on, uplink.interval %s, backoff_max %s, live_readings %d (more readings waiting than\n"+
		"      that go newest first), otherwise its defaults\n"+
		"cloud: %s serve, its defaults except ingest.rate_per_station %d and burst %d (the limiter is not measured: its\n"+
		"      default of 2 batches a second is far below what the agent sends at this rate)\n"+
		"client: github.com/coder/websocket on ws://%s/ws, subscribed to %s, in this process;\n"+
		"      latency = the client's receipt of the reading message - the publish call, for every reading\n",
		l.sensors, l.rate, l.rate/float64(l.sensors), l.length, o.station,
		b.agentBin(), l.interval, latencyBackoffMax, l.liveReadings,
		b.cloudBin(), benchRatePerStation, benchBurst,
		strings.TrimPrefix(cloud.URL, "http://"), o.station)

	b.printf("\n-- the floor, each part measured alone with no load of ours running, load average %s\n", loadAverage())
	floor, err := b.measureFloor(ctx, floorTarget{env: env, dataDir: acfg.DataDir(), mqtt: mqttAddr, station: o.station,
		cloudURL: cloud.URL, interval: l.interval})
	if err != nil {
		if ctx.Err() == nil {
			b.fail("%s: floor: %v", nameSensorToWS, err)
		}
		return
	}
	b.printFloor(floor)

	res, ok := b.latencyRun(ctx, env, agent, cloud, mqttAddr, acfg.DataDir(), plan)
	if !ok || ctx.Err() != nil {
		return
	}
	p50, p99 := quantile(res, 0.5), quantile(res, 0.99)
	peer := floor.total() + latencySlack
	b.printf("   info: sensor_to_ws p50 %.1f ms against the floor %.1f ms (ratio %.2f); p99 %.1f ms against floor + %s = %.1f ms (ratio %.2f); max %.1f ms\n",
		ms(p50), ms(floor.total()), ms(p50)/ms(floor.total()), ms(p99), latencySlack, ms(peer), ms(p99)/ms(peer), ms(res[len(res)-1]))
	b.add(nameSensorToWS, ms(p99), ms(peer), "ms", benchline.Goal{Op: benchline.AtMost, Value: 1},
		"floor (fsync agent + commit cloud + round trips + uplink linger) + 20 ms")
}

// startLatencyCloud migrates the database, registers the station and starts ph-cloud.
func (b *bench) startLatencyCloud(ctx context.Context, env *storeEnv, dir string) (*harness.Cloud, string, error) {
	addr, err := testproc.FreePort("tcp")
	if err != nil {
		return nil, "", err
	}
	cfg := harness.CloudConfig{Dir: dir, Listen: addr, DatabaseURL: env.url(), RatePerStation: benchRatePerStation,
		Burst: benchBurst}
	prep, err := harness.PrepareCloud(ctx, b.cloudBin(), cfg, b.opts.station)
	if err != nil {
		return nil, "", err
	}
	b.printf("   %s\n", prep.Storage)
	tokens := prep.Tokens
	cloud, err := harness.StartCloud(ctx, b.cloudBin(), cfg)
	if err != nil {
		return nil, "", err
	}
	return cloud, tokens[0], nil
}

func (b *bench) printFloor(f latencyFloor) {
	for _, p := range f.parts {
		counted := "+"
		if p.info {
			counted = " "
		}
		b.printf("   %s %-20s %7.2f ms", counted, p.name, ms(p.value))
		if len(p.samples) > 0 {
			b.printf(" (p99 %.2f ms)", ms(quantile(p.samples, 0.99)))
		}
		b.printf("  %s\n", p.how)
	}
	b.printf("   = floor %.2f ms (the parts marked +; medians, as the floor's own p99 would count each part's jitter)\n", ms(f.total()))
}

// latencyRun publishes the plan at the agent while a WebSocket client of the cloud
// receives the readings, and returns the latency of every reading, sorted, once the sanity
// checks hold.
func (b *bench) latencyRun(ctx context.Context, env *storeEnv, agent *harness.Agent, cloud *harness.Cloud, mqttAddr, dataDir string,
	plan latencyPlan) ([]time.Duration, bool) {
	o, l := b.opts, b.opts.latency
	run := "sensor to WebSocket"
	b.printf("\n-- %s: %d readings, load average %s\n", run, plan.count, loadAverage())

	origin := time.Now()
	tracker := newLatencyTracker(plan)
	client, err := dialLive(ctx, "ws"+strings.TrimPrefix(cloud.URL, "http")+"/ws", o.station, tracker, origin)
	if err != nil {
		b.fail("%s: WebSocket client: %v", run, err)
		return nil, false
	}
	clientClosed := false
	defer func() {
		if !clientClosed {
			_ = client.close() // a failed run: its error is already reported
		}
	}()
	sensors := make([]paho.Client, 0, plan.sensors)
	defer func() {
		for _, c := range sensors {
			c.Disconnect(250)
		}
	}()
	for s := range plan.sensors {
		c, err := harness.ConnectMQTT(ctx, mqttAddr, "phbench-"+plan.sensorName(s))
		if err != nil {
			b.fail("%s: %v", run, err)
			return nil, false
		}
		sensors = append(sensors, c)
	}
	before, err := cloud.Health(ctx)
	if err != nil {
		b.fail("%s: %v", run, err)
		return nil, false
	}
	meter := &cpuMeter{}
	meter.add("ph-agent", ownCPU(agent.PID()))
	meter.add("ph-cloud", ownCPU(cloud.PID()))
	meter.add("postgres", treeCPU(env.pg.PID()))
	meter.add("phbench", selfCPU)
	cpu0 := meter.snapshot()

	// The disk watch runs until the client has everything; this function waits for it.
	watchCtx, stopWatch := context.WithCancel(ctx)
	type watched struct {
		samples []flushSample
		err     error
	}
	watch := make(chan watched, 1)
	go func() {
		s, err := watchDisk(watchCtx, dataDir, origin, 50*time.Millisecond)
		watch <- watched{s, err}
	}()
	begin := time.Since(origin) + 50*time.Millisecond
	pub := publishPaced(ctx, sensors, "purehealth/"+o.station+"/ph", plan, origin, begin)
	published := time.Since(origin)
	// Everything should arrive within a few passes; far more means something is stuck.
	deadline := time.Now().Add(10*time.Second + 10*l.interval)
	for client.received.Load() < int64(plan.count) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	wall := time.Since(origin) - begin
	cpu1 := meter.snapshot()
	stopWatch()
	disk := <-watch
	clientClosed = true
	clientErr := client.close()
	if ctx.Err() != nil {
		return nil, false
	}
	after, herr := cloud.Health(ctx)
	st, serr := agent.Status(ctx)
	q, qerr := agent.Queue(ctx)
	if err := errors.Join(herr, serr, qerr); err != nil {
		b.fail("%s: %v", run, err)
		return nil, false
	}

	var lat []time.Duration
	for k := range plan.count {
		if tracker.times[k] > 0 && pub.pub[k] > 0 {
			lat = append(lat, tracker.at[k]-pub.pub[k])
		}
	}
	slices.Sort(lat)
	last := begin + plan.due(plan.count-1)
	b.printf("   published %d readings in %.2f s (%.0f a second; the latest publish started %.1f ms after it was due), %d acknowledged;\n"+
		"   the client received %d of them (%d twice or more), %d other readings, messages by type %v\n",
		plan.count, (published - begin).Seconds(), float64(plan.count)/(published-begin).Seconds(), ms(pub.maxLate),
		plan.count-pub.failed, tracker.distinct, tracker.duplicates, tracker.other, tracker.types)
	batches := after.Ingest.Batches - before.Ingest.Batches
	refused := map[string]int64{}
	for status, n := range after.Ingest.Refused {
		if d := n - before.Ingest.Refused[status]; d != 0 {
			refused[status] = d
		}
	}
	b.printf("   ph-cloud: %d batches (%.1f a second, %.0f new readings each), refused %v; agent: accepted %d, rejected %d, queue %q backlog %d\n",
		batches, float64(batches)/wall.Seconds(), float64(after.Ingest.NewReadings-before.Ingest.NewReadings)/math.Max(1, float64(batches)),
		refused, st.Ingest.Accepted, st.Ingest.Rejected, q.State, q.Backlog)
	b.printf("   %s\n", meter.format(cpu0, cpu1, wall, int64(plan.count)))
	if len(lat) > 0 {
		b.printf("   latency: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms over %d readings\n",
			ms(quantile(lat, 0.5)), ms(quantile(lat, 0.9)), ms(quantile(lat, 0.99)), ms(lat[len(lat)-1]), len(lat))
		b.printBreakdown(ctx, env, origin, plan, pub, tracker)
	}
	if disk.err != nil {
		b.printf("   disk watch: %v\n", disk.err)
	} else {
		b.printStalls(pub, disk.samples, begin)
	}

	c := checks{}
	c.that(pub.failed == 0, "the agent acknowledged every publish (%d failed; first error: %v)", pub.failed, pub.firstErr)
	c.that(pub.maxLate < 100*time.Millisecond+last/20, "the publisher kept its pace (the latest publish started %.0f ms late)", ms(pub.maxLate))
	c.that(tracker.missing() == 0, "the client received every reading (%d missing)", tracker.missing())
	c.that(tracker.duplicates == 0, "each exactly once (%d duplicates)", tracker.duplicates)
	c.that(tracker.outOfOrder == 0, "in per-sensor seq order (%d came after a later one of their sensor)", tracker.outOfOrder)
	c.that(tracker.idBackward == 0, "in event id order (%d not)", tracker.idBackward)
	c.that(tracker.bad == 0, "every message readable (%d not; first: %v)", tracker.bad, tracker.firstBad)
	c.that(clientErr == nil, "the client stayed connected (%v)", clientErr)
	c.that(st.Ingest.Rejected == 0 && st.Ingest.StoreFailures == 0, "no reading rejected or failed at the agent (%d, %d)",
		st.Ingest.Rejected, st.Ingest.StoreFailures)
	b.report(run, c)
	return lat, c.ok() && len(lat) > 0
}

// printBreakdown splits each reading's latency where the run can see it: the agent's
// acknowledgement (stored durably), the cloud's insert of its row (measurements.received_at,
// the cloud's clock), the events row (events.created_at, written last in the ingest
// transaction) and the client's receipt. The machine's one clock serves all.
func (b *bench) printBreakdown(ctx context.Context, env *storeEnv, origin time.Time, plan latencyPlan, pub publishResult, tr *latencyTracker) {
	conn, err := pgx.Connect(ctx, env.url())
	if err != nil {
		b.printf("   breakdown: %v\n", err)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	received := map[uint64]time.Time{}
	rows, err := conn.Query(ctx, `SELECT seq, received_at FROM measurements WHERE station_id = $1 AND sensor LIKE 'lat-%'`, b.opts.station)
	if err == nil {
		for rows.Next() {
			var seq int64
			var at time.Time
			if err = rows.Scan(&seq, &at); err != nil {
				break
			}
			received[uint64(seq)] = at
		}
		rows.Close()
		err = errors.Join(err, rows.Err())
	}
	created := map[int64]time.Time{}
	if err == nil {
		// A batch's readings are one row of span ids (the last is its id).
		rows, err = conn.Query(ctx, `SELECT generate_series(id - span + 1, id), created_at FROM events
			WHERE station_id = $1 AND type IN ('reading', 'readings')`, b.opts.station)
		if err == nil {
			for rows.Next() {
				var id int64
				var at time.Time
				if err = rows.Scan(&id, &at); err != nil {
					break
				}
				created[id] = at
			}
			rows.Close()
			err = errors.Join(err, rows.Err())
		}
	}
	if err != nil {
		b.printf("   breakdown: %v\n", err)
		return
	}
	segments := []struct {
		name string
		ds   []time.Duration
		tail []time.Duration // of the readings at or above the p99 of the whole path
	}{
		{"publish → PUBACK (agent: ingest, durable group commit)", nil, nil},
		{"PUBACK → row inserted in the cloud (uplink wait, encode, POST, auth, decode, station lock, COPY)", nil, nil},
		{"row inserted → events row written (rest of the ingest transaction)", nil, nil},
		{"events row → client receipt (commit, NOTIFY, hub read, WebSocket write)", nil, nil},
	}
	var all []time.Duration
	for k := range plan.count {
		if tr.times[k] > 0 && pub.pub[k] > 0 {
			all = append(all, tr.at[k]-pub.pub[k])
		}
	}
	slices.Sort(all)
	p99 := quantile(all, 0.99)
	for k := range plan.count {
		recv, ok1 := received[tr.seq[k]]
		made, ok2 := created[tr.event[k]]
		if tr.times[k] == 0 || pub.ack[k] == 0 || !ok1 || !ok2 {
			continue
		}
		ack := origin.Add(pub.ack[k])
		points := []time.Duration{pub.ack[k] - pub.pub[k], recv.Sub(ack), made.Sub(recv), origin.Add(tr.at[k]).Sub(made)}
		slowest := tr.at[k]-pub.pub[k] >= p99
		for i, d := range points {
			segments[i].ds = append(segments[i].ds, d)
			if slowest {
				segments[i].tail = append(segments[i].tail, d)
			}
		}
	}
	b.printf("   where it goes: each part's p50 / p99 / max over all readings, and its median over the slowest 1%% (latency >= p99):\n")
	for _, s := range segments {
		slices.Sort(s.ds)
		slices.Sort(s.tail)
		if len(s.ds) == 0 {
			continue
		}
		b.printf("     %7.1f / %7.1f / %7.1f ms, slowest %7.1f ms  %s\n", ms(quantile(s.ds, 0.5)), ms(quantile(s.ds, 0.99)),
			ms(s.ds[len(s.ds)-1]), ms(quantile(s.tail, 0.5)), s.name)
	}
}

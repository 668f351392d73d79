package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/bench/internal/benchline"
	"github.com/purehealth/purehealth/bench/internal/gorillahub"
	"github.com/purehealth/purehealth/bench/internal/harness"
	"github.com/purehealth/purehealth/bench/internal/procstat"
	"github.com/purehealth/purehealth/bench/internal/wsload"
	"github.com/purehealth/purehealth/internal/testproc"
)

// The live fan-out comparison, as --only names it, and its lines.
const (
	onlyFanout        = "fanout"
	nameFanoutLatency = "fanout_delivery_p99_vs_gorilla"
	nameFanoutRSS     = "fanout_rss_per_conn_vs_gorilla"
	nameFanoutCPU     = "fanout_cpu_per_mframe_vs_gorilla"
)

// peerCommand is how phbench runs itself as the reference hub: `phbench fanout-peer
// --database-url URL --listen ADDR`.
const peerCommand = "fanout-peer"

// fanoutOptions are the settings of the fan-out comparison; defaults() fills those not
// given.
type fanoutOptions struct {
	clients  int           // reading clients, each subscribed to one station
	stations int           // stations the clients are spread over
	slow     int           // clients of every station that never read
	rate     float64       // events per second, spread over the stations
	length   time.Duration // of the publishing
	reps     int           // runs per target, interleaved; medians reported
}

func (f *fanoutOptions) register(fs *flag.FlagSet) {
	fs.IntVar(&f.clients, "fanout-clients", 0, "WebSocket clients in the fan-out run, each subscribed to one station (default 1000 quick, 10000 full)")
	fs.IntVar(&f.stations, "fanout-stations", 0, "stations the fan-out clients are spread over (default clients/100: 100 clients a station)")
	fs.IntVar(&f.slow, "fanout-slow", 0, "clients subscribed to every station that never read, in the fan-out run (default clients/1000, at least 1)")
	fs.Float64Var(&f.rate, "fanout-rate", 200, "events a second published in the fan-out run, round robin over the stations")
	fs.DurationVar(&f.length, "fanout-time", 0, "how long events are published in each fan-out run (default 10s quick, 20s full)")
	fs.IntVar(&f.reps, "fanout-reps", 0, "fan-out runs per target, interleaved, medians reported (default 1 quick, 3 full)")
}

func (f *fanoutOptions) defaults(quick bool) {
	if f.clients == 0 {
		f.clients = 10000
		if quick {
			f.clients = 1000
		}
	}
	if f.stations == 0 {
		f.stations = max(1, f.clients/100)
	}
	if f.slow == 0 {
		f.slow = max(1, f.clients/1000)
	}
	if f.length == 0 {
		f.length = 20 * time.Second
		if quick {
			f.length = 10 * time.Second
		}
	}
	if f.reps == 0 {
		f.reps = 3
		if quick {
			f.reps = 1
		}
	}
}

func (f *fanoutOptions) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if f.clients < 1 || f.clients > 100000 {
		bad("--fanout-clients %d must be 1..100000", f.clients)
	}
	if f.stations < 1 || f.stations > f.clients {
		bad("--fanout-stations %d must be 1..--fanout-clients", f.stations)
	}
	if f.slow < 0 || f.slow > 1000 {
		bad("--fanout-slow %d must be 0..1000", f.slow)
	}
	if !(f.rate >= 1) || f.rate > 100000 {
		bad("--fanout-rate %v must be 1..100000 events a second", f.rate)
	}
	if f.length < 2*time.Second {
		bad("--fanout-time %s must be at least 2s", f.length)
	}
	if f.reps < 1 || f.reps > 20 {
		bad("--fanout-reps %d must be 1..20", f.reps)
	}
	return errs
}

// fanoutResult is one target's measurement.
type fanoutResult struct {
	frames         int64
	p50, p99, pMax time.Duration
	baseline, peak int64 // resident bytes before the clients and the most with them
	rssPerConnKiB  float64
	cpuPerMFrame   float64 // CPU seconds of the server per million frames delivered
	evictions      int64
}

// fanout measures ph-cloud's WebSocket fan-out against a minimal gorilla/websocket hub
// with the same logic, under the same load, one after the other on the same database.
func (b *bench) fanout(ctx context.Context) {
	f := b.opts.fanout
	names := []string{nameFanoutLatency, nameFanoutRSS, nameFanoutCPU}
	b.printf("\n== fanout: live events to WebSocket clients\n")
	limit, err := raiseFileLimit()
	need := uint64(f.clients + f.slow + 200)
	if err != nil || limit < need {
		b.printf("open files: limit %d, need %d (%v): skipped (raise the hard limit: ulimit -Hn)\n", limit, need, err)
		for _, n := range names {
			b.skipped = append(b.skipped, fmt.Sprintf("%s: open-file limit %d below %d", n, limit, need))
		}
		return
	}
	exe, err := os.Executable()
	if err != nil {
		b.fail("fanout: find this program to run the reference hub: %v", err)
		return
	}
	env, ok := b.startStoreEnv(ctx, names...)
	if !ok {
		return
	}
	defer b.stopStoreEnv(env)
	b.printf("load: %d clients (github.com/gorilla/websocket, one goroutine each, in this process), client i subscribed to station i mod %d\n"+
		"      (%d clients a station), plus %d client(s) of every station that never read (4 KiB socket buffer);\n"+
		"      %.0f events/s inserted into the cloud's events table for %s, round robin over the stations, a few per\n"+
		"      INSERT every 10 ms, each carrying its send time: latency = client receipt - send time, which includes the\n"+
		"      INSERT's commit, NOTIFY, the server's read of the new events and the WebSocket write;\n"+
		"      per-client queue 4096 messages in both, write timeout 10s, pings every 30s, no compression; file limit %d\n",
		f.clients, f.stations, max(1, f.clients/f.stations), f.slow, f.rate, f.length, limit)
	b.printf("ours: %s serve (fan-out of cloud/internal/fanout on github.com/coder/websocket), the service's defaults\n", b.cloudBin())
	b.printf("peer: %s %s: github.com/gorilla/websocket hub, same wire messages and the same LISTEN-then-read feed\n", exe, peerCommand)

	var ours, peer []fanoutResult
	for rep := 1; rep <= f.reps && ctx.Err() == nil; rep++ {
		label := func(who string) string {
			if f.reps == 1 {
				return who
			}
			return fmt.Sprintf("%s run %d/%d", who, rep, f.reps)
		}
		// The runs share the database: its stations are added by the first.
		var stations []string
		if rep == 1 {
			stations = fanoutStations(f.stations)
		}
		if r, ok := b.fanoutRun(ctx, env, label("ours"), func(dir string) (*harness.Proc, string, func() int64, error) {
			return b.startOursForFanout(ctx, env, dir, stations)
		}); ok {
			ours = append(ours, r)
		}
		if ctx.Err() != nil {
			break
		}
		if r, ok := b.fanoutRun(ctx, env, label("peer"), func(dir string) (*harness.Proc, string, func() int64, error) {
			return startPeer(ctx, exe, env.url(), dir)
		}); ok {
			peer = append(peer, r)
		}
	}
	if len(ours) < f.reps || len(peer) < f.reps {
		for _, n := range names {
			b.skipped = append(b.skipped, n+": a run failed (above)")
		}
		return
	}
	pick := func(rs []fanoutResult, v func(fanoutResult) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = v(r)
		}
		return median(xs)
	}
	p99 := func(r fanoutResult) float64 { return millis(r.p99) }
	rss := func(r fanoutResult) float64 { return r.rssPerConnKiB }
	cpu := func(r fanoutResult) float64 { return r.cpuPerMFrame }
	what := fmt.Sprintf("minimal gorilla/websocket hub, same run: %d clients, %d stations, %.0f events/s", f.clients, f.stations, f.rate)
	if f.reps > 1 {
		what += fmt.Sprintf(", median of %d", f.reps)
	}
	goal := benchline.Goal{Op: benchline.AtMost, Value: 1.5}
	b.add(nameFanoutLatency, pick(ours, p99), pick(peer, p99), "ms", goal, what)
	b.add(nameFanoutRSS, pick(ours, rss), pick(peer, rss), "KiB", goal, what)
	b.add(nameFanoutCPU, pick(ours, cpu), pick(peer, cpu), "cpu_s/Mframe", goal, what)
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// startOursForFanout prepares and starts ph-cloud with room for the clients, adding
// stations (the clients subscribe by name: they must exist).
func (b *bench) startOursForFanout(ctx context.Context, env *storeEnv, dir string, stations []string) (*harness.Proc, string, func() int64, error) {
	f := b.opts.fanout
	addr, err := testproc.FreePort("tcp")
	if err != nil {
		return nil, "", nil, err
	}
	cfg := harness.CloudConfig{Dir: dir, Listen: addr, DatabaseURL: env.url(), LogLevel: "warn"}
	prep, err := harness.PrepareCloud(ctx, b.cloudBin(), cfg, stations...)
	if err != nil {
		return nil, "", nil, err
	}
	b.printf("   %s\n", prep.Storage)
	// The service's defaults, but room for every client of the run.
	extra := fmt.Sprintf("websocket: {max_clients: %d}\n", f.clients+f.slow+100)
	if err := appendFile(cfg.ConfigPath(), extra); err != nil {
		return nil, "", nil, err
	}
	cloud, err := harness.StartCloud(ctx, b.cloudBin(), cfg)
	if err != nil {
		return nil, "", nil, err
	}
	evictions := func() int64 {
		var st struct {
			WebSocket struct {
				Evictions map[string]int64 `json:"evictions"`
			} `json:"websocket"`
		}
		if err := getJSON(ctx, cloud.URL+"/stats", &st); err != nil {
			return -1
		}
		var n int64
		for _, v := range st.WebSocket.Evictions {
			n += v
		}
		return n
	}
	return cloud.Proc, "ws://" + addr + "/ws", evictions, nil
}

// startPeer runs this program as the reference hub.
func startPeer(ctx context.Context, exe, dbURL, dir string) (*harness.Proc, string, func() int64, error) {
	addr, err := testproc.FreePort("tcp")
	if err != nil {
		return nil, "", nil, err
	}
	p, err := harness.Start(exe, filepath.Join(dir, "peer.log"), peerCommand, "--database-url", dbURL, "--listen", addr)
	if err != nil {
		return nil, "", nil, err
	}
	stats := func() (gorillahub.Stats, error) {
		var st gorillahub.Stats
		return st, getJSON(ctx, "http://"+addr+"/stats", &st)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := stats(); err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, "", nil, errors.Join(fmt.Errorf("the reference hub did not come up; its log ends:\n%s", p.LogTail(10)), p.Stop())
		}
		time.Sleep(20 * time.Millisecond)
	}
	evictions := func() int64 {
		st, err := stats()
		if err != nil {
			return -1
		}
		return st.Evictions
	}
	return p, "ws://" + addr + "/ws", evictions, nil
}

// fanoutRun measures one target: resident memory before and with the clients, the
// latency of every event at every client, and the server's CPU time over the run.
func (b *bench) fanoutRun(ctx context.Context, env *storeEnv, label string,
	startServer func(dir string) (*harness.Proc, string, func() int64, error)) (fanoutResult, bool) {
	f := b.opts.fanout
	dir := filepath.Join(b.opts.work, "fanout-"+strings.ReplaceAll(strings.ReplaceAll(label, " ", "-"), "/", "of"))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		b.fail("fanout %s: %v", label, err)
		return fanoutResult{}, false
	}
	proc, url, evictions, err := startServer(dir)
	if err != nil {
		b.fail("fanout %s: start: %v", label, err)
		return fanoutResult{}, false
	}
	defer func() {
		if err := proc.Stop(); err != nil {
			b.fail("fanout %s: the server did not stop cleanly: %v", label, err)
		}
	}()
	var c checks
	time.Sleep(time.Second) // let start-up allocation settle
	base, err := procstat.ReadMemory(proc.PID())
	if err != nil {
		b.fail("fanout %s: %v", label, err)
		return fanoutResult{}, false
	}
	stations := fanoutStations(f.stations)
	start := time.Now()
	load, err := wsload.Connect(ctx, wsload.Config{URL: url, Clients: f.clients, Stations: stations, Slow: f.slow})
	if err != nil {
		b.fail("fanout %s: connect the clients: %v", label, err)
		return fanoutResult{}, false
	}
	connected := time.Since(start)
	time.Sleep(time.Second)
	idle, err := procstat.ReadMemory(proc.PID())
	if err != nil {
		load.Close()
		b.fail("fanout %s: %v", label, err)
		return fanoutResult{}, false
	}

	cpu0, err := procstat.ReadCPU(proc.PID())
	if err != nil {
		load.Close()
		b.fail("fanout %s: %v", label, err)
		return fanoutResult{}, false
	}
	peak := idle.RSS
	sampleCtx, stopSampling := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
				if m, err := procstat.ReadMemory(proc.PID()); err == nil {
					peak = max(peak, m.RSS)
				}
			}
		}
	}()
	published, perr := publishEvents(ctx, env.url(), stations, f.rate, f.length)
	var want int64
	for i := range f.clients {
		want += int64(published[stations[i%len(stations)]])
	}
	drainUntil := time.Now().Add(30 * time.Second)
	for load.Received() < want && time.Now().Before(drainUntil) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	cpu1, cerr := procstat.ReadCPU(proc.PID())
	stopSampling()
	<-samplerDone
	evicted := evictions()
	res := load.Close()
	if err := errors.Join(perr, cerr); err != nil {
		b.fail("fanout %s: %v", label, err)
		return fanoutResult{}, false
	}

	out := fanoutResult{
		frames: res.Frames, p50: res.Percentile(0.5), p99: res.Percentile(0.99),
		baseline: base.RSS, peak: peak, evictions: evicted,
	}
	if len(res.Latencies) > 0 {
		out.pMax = res.Latencies[len(res.Latencies)-1]
	}
	out.rssPerConnKiB = float64(peak-base.RSS) / float64(f.clients+f.slow) / 1024
	if res.Frames > 0 {
		out.cpuPerMFrame = (cpu1 - cpu0).Seconds() / float64(res.Frames) * 1e6
	}
	b.printf("%s: %d clients connected in %s; %d frames delivered (%.0f/s), latency p50 %s p99 %s max %s;\n"+
		"      resident %.1f MB before the clients, %.1f MB connected and idle, %.1f MB at most under load: %.1f KiB a connection;\n"+
		"      CPU %.2fs over the run: %.2f CPU s per million frames; slow clients evicted: %d of %d\n",
		label, f.clients+f.slow, connected.Round(time.Millisecond), res.Frames, float64(res.Frames)/f.length.Seconds(),
		out.p50.Round(10*time.Microsecond), out.p99.Round(10*time.Microsecond), out.pMax.Round(10*time.Microsecond),
		mb(base.RSS), mb(idle.RSS), mb(peak), out.rssPerConnKiB, (cpu1 - cpu0).Seconds(), out.cpuPerMFrame, evicted, f.slow)

	c.that(res.Frames == want, "every client received every event of its station (%d of %d)", res.Frames, want)
	c.that(res.OutOfOrder == 0, "events in id order at every client (%d out of order)", res.OutOfOrder)
	c.that(res.Failed == 0, "no reading client was disconnected (%d were)", res.Failed)
	short := 0
	for _, st := range stations {
		if res.PerStation[st] != published[st] {
			short++
		}
	}
	c.that(short == 0, "the client of each station that received the fewest got them all (%d stations short)", short)
	for _, msg := range c.failed {
		b.fail("fanout %s: %s", label, msg)
	}
	return out, c.ok()
}

// publishEvents inserts events into the cloud's events table at rate a second for
// length, round robin over stations, each with its send time, and returns how many went
// to each station.
func publishEvents(ctx context.Context, dbURL string, stations []string, rate float64, length time.Duration) (map[string]int, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	counts := map[string]int{}
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	end := time.Now().Add(length)
	due, sent, next := 0.0, 0, 0
	var ids, data []string
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return counts, ctx.Err()
		case <-t.C:
		}
		due += rate * tick.Seconds()
		ids, data = ids[:0], data[:0]
		for ; float64(sent) < due; sent++ {
			st := stations[next%len(stations)]
			next++
			ids = append(ids, st)
			counts[st]++
			data = append(data, "")
		}
		if len(ids) == 0 {
			continue
		}
		now := strconv.FormatInt(time.Now().UnixNano(), 10)
		for i := range data {
			data[i] = `{"seq":` + strconv.Itoa(sent-len(data)+i) + `,"param":"ph","value":7.2,"unit":"pH","sent_ns":` + now + `}`
		}
		if _, err := conn.Exec(ctx, `INSERT INTO events (station_id, type, time, data)
			SELECT s, 'reading', now(), d::json FROM unnest($1::text[], $2::text[]) AS e(s, d)`, ids, data); err != nil {
			return counts, fmt.Errorf("publish: %w", err)
		}
	}
	return counts, nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, text)
	return errors.Join(err, f.Close())
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// runPeer is `phbench fanout-peer`: the reference hub, until SIGTERM.
func runPeer(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet(peerCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("database-url", "", "the cloud's database")
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if *dbURL == "" {
		return fmt.Errorf("%w: --database-url is required", errUsage)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	err = gorillahub.Serve(ctx, ln, gorillahub.Options{DatabaseURL: *dbURL, Log: log})
	if err != nil {
		fmt.Fprintf(stderr, "phbench %s: %v\n", peerCommand, err)
	}
	return err
}

// fanoutStations names the n stations of the fan-out run.
func fanoutStations(n int) []string {
	stations := make([]string, n)
	for i := range stations {
		stations[i] = fmt.Sprintf("FAN-%04d", i)
	}
	return stations
}

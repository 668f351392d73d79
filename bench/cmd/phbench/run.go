package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// options are the benchmark's settings; defaults() fills those not given.
type options struct {
	bin       string // directory holding ph-agent and ph-sim
	work      string // where data dirs and logs go; "" = a new temporary directory
	keep      bool   // keep work afterwards
	quick     bool
	only      string // comma-separated comparison names, "" = all
	mosquitto string

	station  string
	sensors  int // connections for the throughput runs
	inflight int // unacknowledged publishes per connection
	count    int // messages per connection per throughput run
	reps     int // throughput runs per target (the median is reported)
	fsyncDur time.Duration

	rssSensors int
	rssRate    float64 // messages per second per sensor
	rssDur     time.Duration

	store   storeOptions   // ingest and drain (storeopts.go)
	fanout  fanoutOptions  // live fan-out (fanout.go)
	probes  probeOptions   // serial and CoAP probes (probes.go)
	latency latencyOptions // sensor to WebSocket client (latency.go)

	slowDisk  slowDiskOptions  // durable throughput on a slow disk (slowdisk.go)
	analytics analyticsOptions // forecasts and anomaly detection (analytics.go)
	query     queryOptions     // the readings API over a year (query.go)
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("phbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: phbench [flags]\n\nRuns the benchmarks of `make bench` against the programs in --bin and prints one\nBENCH line per comparison. Zero numbers take the defaults of the full or --quick run.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.bin, "bin", "bin", "directory holding ph-agent and ph-sim")
	fs.StringVar(&o.work, "work", "", "directory for the agents' data dirs and the logs (default: a new temporary directory; put it on the disk you want to measure)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (always kept when --work is given)")
	fs.BoolVar(&o.quick, "quick", false, "a short run (under 2 minutes)")
	fs.StringVar(&o.only, "only", "", "comma-separated comparisons to run: throughput (the first three), rss, ingest, drain, query, fanout, probes, latency, slowdisk, analytics")
	fs.StringVar(&o.mosquitto, "mosquitto", "/usr/sbin/mosquitto", "the mosquitto broker to compare with")
	fs.StringVar(&o.station, "station", "MH-PUNE-001", "station id of the agent and the simulated sensors")
	fs.IntVar(&o.sensors, "sensors", 200, "connections (simulated sensors) in the throughput runs")
	fs.IntVar(&o.inflight, "inflight", 16, "unacknowledged QoS 1 publishes allowed per connection in the throughput runs")
	fs.IntVar(&o.count, "count", 0, "messages per connection in each throughput run (default 100 quick, 500 full)")
	fs.IntVar(&o.reps, "reps", 0, "throughput runs per target, median reported (default 1 quick, 5 full)")
	fs.DurationVar(&o.fsyncDur, "fsync-time", 0, "how long to measure each of fdatasync and fsync (default 2s quick, 5s full)")
	fs.IntVar(&o.rssSensors, "rss-sensors", 200, "connected sensors in the memory run")
	fs.Float64Var(&o.rssRate, "rss-rate", 5, "messages per second per sensor in the memory run")
	fs.DurationVar(&o.rssDur, "rss-time", 0, "length of the memory run (default 10s quick, 30s full)")
	o.store.register(fs)
	o.fanout.register(fs)
	o.probes.register(fs)
	o.latency.register(fs)
	o.slowDisk.register(fs)
	o.analytics.register(fs)
	o.query.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	o.defaults()
	return o, o.validate()
}

func (o *options) defaults() {
	pick := func(quick, full int) int {
		if o.quick {
			return quick
		}
		return full
	}
	if o.count == 0 {
		o.count = pick(100, 500)
	}
	if o.reps == 0 {
		o.reps = pick(1, 5)
	}
	if o.fsyncDur == 0 {
		o.fsyncDur = time.Duration(pick(2, 5)) * time.Second
	}
	if o.rssDur == 0 {
		o.rssDur = time.Duration(pick(10, 30)) * time.Second
	}
	o.store.defaults(o.quick)
	o.fanout.defaults(o.quick)
	o.probes.defaults(o.quick)
	o.latency.defaults(o.quick)
	o.analytics.defaults(o.quick)
	o.query.defaults(o.quick)
}

func (o *options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.sensors < 1 || o.rssSensors < 1 {
		bad("--sensors and --rss-sensors must be at least 1")
	}
	if o.inflight < 1 || o.inflight > 65535 {
		bad("--inflight %d must be 1..65535", o.inflight)
	}
	if o.count < 1 || o.reps < 1 {
		bad("--count and --reps must be at least 1")
	}
	if o.fsyncDur < time.Second {
		bad("--fsync-time %s must be at least 1s", o.fsyncDur)
	}
	if !(o.rssRate > 0) || o.rssRate > 1000 {
		bad("--rss-rate %v must be above 0 and at most 1000", o.rssRate)
	}
	if o.rssDur < 2*time.Second {
		bad("--rss-time %s must be at least 2s", o.rssDur)
	}
	errs = append(errs, o.store.validate()...)
	errs = append(errs, o.fanout.validate()...)
	errs = append(errs, o.probes.validate()...)
	errs = append(errs, o.latency.validate()...)
	errs = append(errs, o.slowDisk.validate()...)
	errs = append(errs, o.analytics.validate()...)
	errs = append(errs, o.query.validate()...)
	known := map[string]bool{"throughput": true, "rss": true, onlyIngest: true, onlyDrain: true, onlyFanout: true, onlyProbes: true,
		onlyLatency: true, onlySlowDisk: true, onlyAnalytics: true, onlyQuery: true}
	for _, name := range o.selected() {
		if !known[name] {
			bad("--only: unknown comparison %q (want throughput, rss, ingest, drain, fanout, probes, latency, slowdisk, analytics or query)", name)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", errUsage, errors.Join(errs...))
	}
	return nil
}

func (o *options) selected() []string {
	if o.only == "" {
		return []string{"throughput", onlySlowDisk, "rss", onlyIngest, onlyDrain, onlyQuery, onlyFanout, onlyProbes, onlyLatency, onlyAnalytics}
	}
	var out []string
	for s := range strings.SplitSeq(o.only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (o *options) runs(name string) bool {
	for _, s := range o.selected() {
		if s == name {
			return true
		}
	}
	return false
}

// run parses args, runs the selected benchmarks and prints their results on stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		fmt.Fprintf(stderr, "phbench: %v\n", err)
		return err
	}
	if runtime.GOOS != "linux" {
		err := errors.New("phbench needs Linux: it reads /proc and uses fdatasync")
		fmt.Fprintf(stderr, "phbench: %v\n", err)
		return err
	}
	for _, name := range []string{"ph-agent", "ph-sim"} {
		if _, err := os.Stat(filepath.Join(o.bin, name)); err != nil {
			err = fmt.Errorf("%w (run make build first)", err)
			fmt.Fprintf(stderr, "phbench: %v\n", err)
			return err
		}
	}
	kept := o.work != "" || o.keep
	if o.work == "" {
		o.work, err = os.MkdirTemp("", "phbench-")
		if err != nil {
			fmt.Fprintf(stderr, "phbench: %v\n", err)
			return err
		}
		if !o.keep {
			defer func() {
				if rerr := os.RemoveAll(o.work); rerr != nil {
					fmt.Fprintf(stderr, "phbench: remove %s: %v\n", o.work, rerr)
				}
			}()
		}
	}
	if o.work, err = filepath.Abs(o.work); err != nil {
		return err
	}
	b := &bench{opts: o, out: stdout}
	err = b.all(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "phbench: %v\n", err)
		if kept {
			fmt.Fprintf(stderr, "phbench: the logs are in %s\n", o.work)
		} else {
			fmt.Fprintf(stderr, "phbench: run with --keep to keep the logs\n")
		}
	}
	return err
}

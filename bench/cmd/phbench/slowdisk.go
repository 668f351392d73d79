package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/purehealth/purehealth/bench/internal/benchline"
	"github.com/purehealth/purehealth/bench/internal/fsyncrate"
	"github.com/purehealth/purehealth/bench/internal/harness"
	"github.com/purehealth/purehealth/bench/internal/procstat"
	"github.com/purehealth/purehealth/internal/lazyfs"
	"github.com/purehealth/purehealth/internal/testproc"
)

// The slow-disk comparison: a Raspberry Pi writes to an SD card, where an fsync takes
// milliseconds, and only group commit keeps durable throughput far above the card's
// fsync rate.
const (
	onlySlowDisk = "slowdisk"
	nameSlowDisk = "durable_qos1_slowdisk_vs_fsync"
)

// slowDiskOptions are the settings of the slow-disk comparison.
type slowDiskOptions struct {
	fsync time.Duration // how long every fsync of the mount takes
}

func (s *slowDiskOptions) register(fs *flag.FlagSet) {
	fs.DurationVar(&s.fsync, "slowdisk-fsync", 5*time.Millisecond, "how long every fsync takes on the slow disk (a FUSE mount, one flush at a time), like an SD card's")
}

func (s *slowDiskOptions) validate() []error {
	if s.fsync < 100*time.Microsecond || s.fsync > time.Second {
		return []error{fmt.Errorf("--slowdisk-fsync %s must be 100µs..1s", s.fsync)}
	}
	return nil
}

// slowDisk runs the throughput load against a durable agent whose data_dir is on a lazyfs
// mount with slow fsyncs, and measures the mount's own fdatasync rate right before each
// run, in the same mount.
func (b *bench) slowDisk(ctx context.Context) {
	o := b.opts
	b.printf("\n== slow disk: durable QoS 1 publishes acknowledged per second on a disk whose fsync takes %s\n", o.slowDisk.fsync)
	b.printf("disk: a lazyfs FUSE mount (internal/lazyfs) over %s, served by this process: writes are kept in memory until an fsync or\n"+
		"      fdatasync, which takes %s (one at a time, as a device flushes) and then writes them to the backing directory, never fsynced itself\n",
		o.work, o.slowDisk.fsync)
	b.printf("load: as in the throughput runs (%d connections, QoS 1, %d in flight each, %d messages each); agent as there, data_dir on the mount, %d run(s), median reported\n",
		o.sensors, o.inflight, o.count, o.reps)

	dir := filepath.Join(o.work, "slowdisk")
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			b.fail("%s: %v", nameSlowDisk, err)
			return
		}
	}
	fsys, err := lazyfs.Mount(backing, mnt, lazyfs.Options{FsyncDelay: o.slowDisk.fsync})
	if errors.Is(err, lazyfs.ErrUnavailable) {
		b.printf("   skipped: %v (it needs /dev/fuse and root, or fusermount3 from Debian's fuse3)\n", err)
		b.skipped = append(b.skipped, fmt.Sprintf("%s: %v", nameSlowDisk, err))
		return
	}
	if err != nil {
		b.fail("%s: %v", nameSlowDisk, err)
		return
	}
	defer func() {
		if err := fsys.Unmount(); err != nil {
			b.fail("%s: %v", nameSlowDisk, err)
		}
	}()

	var disk, durable []float64
	for rep := 1; rep <= o.reps && ctx.Err() == nil; rep++ {
		rate, ok := b.disk(ctx, rep, filepath.Join(mnt, fmt.Sprintf("disk-%d", rep)))
		if !ok || ctx.Err() != nil {
			continue
		}
		disk = append(disk, rate)
		if r, ok := b.slowDiskRun(ctx, rep, fsys, dir); ok {
			durable = append(durable, r)
		}
	}
	if ctx.Err() != nil {
		return
	}
	b.printf("\n-- medians: slow disk %s fdatasync/s; durable agent on it %s msgs/s\n", spread(disk), spread(durable))
	b.add(nameSlowDisk, median(durable), median(disk), "per_s", benchline.Goal{Op: benchline.AtLeast, Value: 50},
		fmt.Sprintf("4 KiB write + fdatasync per second on a FUSE mount whose every fsync takes %s, same run; ours: durable QoS 1 readings/s on that mount, %d connections",
			o.slowDisk.fsync, o.sensors))
}

// slowDiskRun runs the throughput load against a fresh durable agent with its data_dir on
// the mount and returns the acknowledged rate.
func (b *bench) slowDiskRun(ctx context.Context, rep int, fsys *lazyfs.FS, dir string) (float64, bool) {
	o := b.opts
	run := fmt.Sprintf("slow-disk agent run %d/%d", rep, o.reps)
	addr, err := testproc.FreePort("tcp")
	if err != nil {
		b.fail("%s: %v", run, err)
		return 0, false
	}
	cfg := harness.AgentConfig{Dir: filepath.Join(dir, fmt.Sprintf("agent-%d", rep)),
		Data: filepath.Join(fsys.Mountpoint(), fmt.Sprintf("agent-%d", rep)), Station: o.station, Listen: addr}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		b.fail("%s: %v", run, err)
		return 0, false
	}
	b.printf("\n-- agent, fsync on (durable), on the slow disk, run %d/%d: data dir %s (%s), MQTT %s\n",
		rep, o.reps, cfg.DataDir(), fsyncrate.FSType(fsys.Mountpoint()), addr)
	agent, err := harness.StartAgent(ctx, b.agentBin(), cfg)
	if err != nil {
		b.fail("%s: %v", run, err)
		return 0, false
	}
	before := fsys.Stats()
	cpu0, cpuErr := procstat.ReadCPU(os.Getpid())
	start := time.Now()
	rate, ok := b.loadAgent(ctx, run, agent, b.throughputLoad(addr), filepath.Join(cfg.Dir, "sim.log"))
	after, secs := fsys.Stats(), time.Since(start).Seconds()
	cpu1, cpuErr1 := procstat.ReadCPU(os.Getpid())
	if err := agent.Stop(); err != nil {
		b.fail("%s: the agent did not shut down cleanly: %v; its log ends:\n%s", run, err, agent.LogTail(10))
		return 0, false
	}
	if syncs := after.Syncs - before.Syncs; ok && syncs > 0 {
		b.printf("   the mount: %d fsyncs by the agent during the load (%.0f/s, the device flushing %.0f%% of the time), %d writes and %d reads (pages the kernel did not cache), %.1f MB written to the disk by the fsyncs",
			syncs, float64(syncs)/secs, 100*float64(syncs)*o.slowDisk.fsync.Seconds()/secs, after.Writes-before.Writes,
			after.Reads-before.Reads, float64(after.SyncedBytes-before.SyncedBytes)/1e6)
		if cpuErr == nil && cpuErr1 == nil {
			// This process serves the mount; the load generator and the agent run apart.
			b.printf("; serving it cost this process %.0f ms of CPU (%.1f%% of a core)", float64((cpu1 - cpu0).Milliseconds()), 100*(cpu1-cpu0).Seconds()/secs)
		}
		b.printf("\n")
	}
	return rate, ok
}

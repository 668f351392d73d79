package main

import (
	"context"
	"errors"
	"os"
	"slices"
	"time"
)

// flushSample is one timed write + fsync of the disk watch.
type flushSample struct {
	at, took time.Duration // start, after the run's origin; duration
}

// watchDisk writes 4 KiB at the start of a file in dir and fsyncs it every period until ctx
// ends, and returns when each flush started and how long it took: whether the disk stalled
// while the agent did. It removes its file.
func watchDisk(ctx context.Context, dir string, origin time.Time, period time.Duration) (samples []flushSample, err error) {
	f, err := os.CreateTemp(dir, ".diskwatch-*")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, f.Close(), os.Remove(f.Name())) }()
	block := make([]byte, 4096)
	t := time.NewTicker(period)
	defer t.Stop()
	for i := 0; ; i++ {
		start := time.Now()
		block[0] = byte(i)
		if _, err := f.WriteAt(block, 0); err != nil {
			return samples, err
		}
		if err := f.Sync(); err != nil {
			return samples, err
		}
		samples = append(samples, flushSample{at: start.Sub(origin), took: time.Since(start)})
		select {
		case <-ctx.Done():
			return samples, nil
		case <-t.C:
		}
	}
}

// stall is a stretch of time in which the agent acknowledged publishes late.
type stall struct {
	from, to   time.Duration // first late publish, last late acknowledgement
	worst      time.Duration // the latest acknowledgement
	readings   int
	worstFlush time.Duration // the slowest flush of the disk watch overlapping it
}

// stalls groups the readings whose acknowledgement took longer than over into stretches
// (late publishes less than a gap apart), worst first.
func stalls(pub publishResult, disk []flushSample, over time.Duration) []stall {
	idx := make([]int, 0)
	for k := range pub.pub {
		if pub.ack[k] > 0 && pub.ack[k]-pub.pub[k] > over {
			idx = append(idx, k)
		}
	}
	slices.SortFunc(idx, func(a, b int) int { return int(pub.pub[a] - pub.pub[b]) })
	const gap = 100 * time.Millisecond
	var out []stall
	for _, k := range idx {
		d := pub.ack[k] - pub.pub[k]
		if n := len(out); n > 0 && pub.pub[k] <= out[n-1].to+gap {
			s := &out[n-1]
			s.to, s.worst, s.readings = max(s.to, pub.ack[k]), max(s.worst, d), s.readings+1
			continue
		}
		out = append(out, stall{from: pub.pub[k], to: pub.ack[k], worst: d, readings: 1})
	}
	for i := range out {
		for _, f := range disk {
			if f.at <= out[i].to && f.at+f.took >= out[i].from {
				out[i].worstFlush = max(out[i].worstFlush, f.took)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b stall) int { return int(b.worst - a.worst) })
	return out
}

func (b *bench) printStalls(pub publishResult, disk []flushSample, begin time.Duration) {
	const over = 50 * time.Millisecond
	ss := stalls(pub, disk, over)
	took := make([]time.Duration, len(disk))
	for i, f := range disk {
		took[i] = f.took
	}
	slices.Sort(took)
	b.printf("   disk watch: %d fsyncs of a 4 KiB write in the agent's data_dir during the run: p50 %.2f ms, p99 %.1f ms, max %.1f ms;\n"+
		"      agent stalls (publishes acknowledged more than %s late): %d\n",
		len(disk), ms(quantile(took, 0.5)), ms(quantile(took, 0.99)), ms(quantile(took, 1)), over, len(ss))
	for i, s := range ss {
		if i == 8 {
			b.printf("     ... and %d more\n", len(ss)-i)
			break
		}
		b.printf("     at %6.2f s for %4.0f ms: %5d readings, acknowledged up to %4.0f ms late; slowest disk flush meanwhile %.1f ms\n",
			(s.from - begin).Seconds(), ms(s.to-s.from), s.readings, ms(s.worst), ms(s.worstFlush))
	}
}

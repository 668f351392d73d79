package serialprobe

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// countingSink signals every stored reading, so the benchmark waits without polling.
type countingSink struct {
	arrived chan struct{}
}

func (s *countingSink) Ingest(_ context.Context, obs []telemetry.Observation) ([]error, error) {
	for range obs {
		s.arrived <- struct{}{}
	}
	return make([]error, len(obs)), nil
}

// cpuTime returns the user and system CPU time of this process.
func cpuTime(b *testing.B) (user, sys time.Duration) {
	var r syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r); err != nil {
		b.Fatal(err)
	}
	return time.Duration(r.Utime.Nano()), time.Duration(r.Stime.Nano())
}

// BenchmarkFiftyProbes: the agent's side of 50 pH probes polled every second, each on its
// own pseudo-terminal served by its own ph-sim process at real EZO timing (a reading takes
// 900 ms). One op is one reading stored. The simulators run in other processes, so the CPU
// figures (getrusage of this process) are the probes' alone: the port I/O, framing,
// parsing, scheduling, and the handoff to a sink that only counts.
//
// Metrics: cpu-µs/reading, %cpu (of one core, over the measured wall time, with 50
// readings a second), heap-KiB/probe (live heap after start-up), goroutines/probe.
// Run with -benchtime=20s or more for a stable %cpu.
func BenchmarkFiftyProbes(b *testing.B) {
	if testing.Short() {
		b.Skip("starts 50 simulator processes")
	}
	const probes = 50
	dir := b.TempDir()
	s := &countingSink{arrived: make(chan struct{}, 1024)}
	links := make([]string, probes)
	for i := range links {
		links[i] = filepath.Join(dir, fmt.Sprintf("ph-%02d", i))
		startSim(b, links[i], "--param", "ph", "--speed", "1", "--seed", fmt.Sprint(i+1))
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutinesBefore := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	for i, link := range links {
		cfg := Config{Station: "MH-BENCH-001", Name: fmt.Sprintf("ph-%02d", i), Param: telemetry.PH,
			Device: link, Interval: time.Second, Timeout: 2 * time.Second}
		p, err := New(cfg, s, newStation(cfg), nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			if err := p.Run(ctx); err != nil {
				b.Error(err)
			}
		})
	}
	// Start-up: every probe identified its circuit and stored a first reading.
	for range probes {
		<-s.arrived
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	goroutines := runtime.NumGoroutine() - goroutinesBefore

	user0, sys0 := cpuTime(b)
	wall0 := time.Now()
	for b.Loop() {
		select {
		case <-s.arrived:
		case <-time.After(guard):
			b.Fatal("no reading")
		}
	}
	user1, sys1 := cpuTime(b)
	user, sys, wall := user1-user0, sys1-sys0, time.Since(wall0)
	cpu := user + sys
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/reading")
	b.ReportMetric(float64(sys.Microseconds())/float64(b.N), "sys-µs/reading")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%cpu")
	b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/1024/probes, "heap-KiB/probe")
	b.ReportMetric(float64(goroutines)/probes, "goroutines/probe")
}

func BenchmarkParseLine(b *testing.B) {
	for _, line := range []string{"7.820", "1413,765,0.76,1.000", "*OK", "?i,pH,2.16"} {
		b.Run(line, func(b *testing.B) {
			in := []byte(line)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseLine(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkFramer(b *testing.B) {
	in := []byte("7.820\r*OK\r")
	var f framer
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		f.feed(in, func([]byte, bool) bool { return true })
	}
}

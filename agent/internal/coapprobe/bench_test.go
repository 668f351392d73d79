package coapprobe

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/purehealth/purehealth/agent/internal/probetest"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// countingSink counts what it is given; the bench measures the probes, not a store.
type countingSink struct {
	n       atomic.Int64
	arrived chan struct{} // a token per Ingest, so the bench waits without polling
}

func (s *countingSink) Ingest(_ context.Context, obs []telemetry.Observation) ([]error, error) {
	s.n.Add(int64(len(obs)))
	select {
	case s.arrived <- struct{}{}:
	default:
	}
	return make([]error, len(obs)), nil
}

type nopHealth struct{}

func (nopHealth) RecordError(string, telemetry.Param, string) {}
func (nopHealth) RecordReconnect(string)                      {}

// BenchmarkObserve50 is a station with 50 CoAP probes observing at 1 s, the probes served
// by ph-sim in its own process (so the CPU measured is the agent side's alone). One op is
// one round: 50 notifications received, acknowledged, decoded and handed to the sink.
// Reported: the share of one core the probes use (%cpu), CPU per notification, and heap
// and goroutines per probe. Run without -race: go test -run '^$' -bench Observe50
// -benchtime 20x ./agent/internal/coapprobe
func BenchmarkObserve50(b *testing.B) {
	const probes = 50
	srv := probetest.StartSim(b, "coap", "127.0.0.1:0", "--interval", "1s", "--params", "do")
	s := &countingSink{arrived: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(b.Context())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()

	heap0, goroutines0 := heapInUse(), runtime.NumGoroutine()
	for i := range probes {
		p, err := New(Config{Name: fmt.Sprintf("do-%d", i), Param: telemetry.DO, URL: srv.URLs[0],
			Interval: time.Second, Observe: true}, s, nopHealth{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			if err := p.Run(ctx); err != nil {
				b.Error(err)
			}
		})
	}
	waitCount := func(n int64) {
		timeout := time.After(30 * time.Second)
		for s.n.Load() < n {
			select {
			case <-s.arrived:
			case <-timeout:
				b.Fatalf("only %d of %d notifications within 30s", s.n.Load(), n)
			}
		}
	}
	waitCount(2 * probes) // registered and in their stride
	heapPerProbe := float64(heapInUse()-heap0) / probes
	goroutinesPerProbe := float64(runtime.NumGoroutine()-goroutines0) / probes

	base := s.n.Load()
	cpu0, wall0 := cpuTime(b), time.Now()
	b.ResetTimer()
	for i := range b.N {
		waitCount(base + int64(probes*(i+1)))
	}
	b.StopTimer()
	cpu, wall := cpuTime(b)-cpu0, time.Since(wall0)
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%cpu")
	b.ReportMetric(float64(cpu.Microseconds())/float64(probes*b.N), "cpu-µs/notification")
	b.ReportMetric(heapPerProbe, "heap-B/probe")
	b.ReportMetric(goroutinesPerProbe, "goroutines/probe")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

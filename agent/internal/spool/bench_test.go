package spool

import (
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// BenchmarkAppendConcurrent measures durable append throughput: 64 goroutines each
// appending one reading per call, as probes and MQTT publishers do. The variants:
//
//	fsync        the production setting: every call returns after its group commit is fsynced
//	nosync       the same load with fsync off (unsafe; shows what durability costs)
//	sequential   one goroutine, one reading per commit: the disk's fsync-bound floor
//
// Each reports readings/s and readings/commit. Load: readings of 1 sensor, 512 MiB bound
// (no eviction), a fresh file per variant on the test's temporary directory.
func BenchmarkAppendConcurrent(b *testing.B) {
	for _, bm := range []struct {
		name       string
		nosync     bool
		goroutines int
	}{
		{"fsync", false, 64},
		{"nosync", true, 64},
		{"sequential", false, 1},
	} {
		b.Run(bm.name, func(b *testing.B) {
			s, err := Open(Options{Path: filepath.Join(b.TempDir(), "agent.db"), NoSync: bm.nosync})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}()
			r := []telemetry.Reading{reading("ph-1", telemetry.PH, 7.2, t0)}
			procs := max(1, bm.goroutines/runtime.GOMAXPROCS(0))
			b.SetParallelism(procs)
			start := time.Now()
			commits0 := s.Stats().Commits
			if bm.goroutines == 1 {
				for b.Loop() {
					if _, err := s.AppendReadings(b.Context(), r); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := s.AppendReadings(b.Context(), r); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			elapsed := time.Since(start)
			st := s.Stats()
			b.ReportMetric(float64(st.Appended)/elapsed.Seconds(), "readings/s")
			b.ReportMetric(float64(st.Appended)/float64(max(st.Commits-commits0, 1)), "readings/commit")
		})
	}
}

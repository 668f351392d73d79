package uplink

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/spool"
)

// BenchmarkDrain measures how fast a backlog drains to a local fake cloud (httptest over
// loopback, the real wire.Decode and dedup map): 20 000 readings per op, batches of
// batch_max, with the cursor acknowledged in the spool after every batch, with and without
// fsync. The metric is readings/s.
func BenchmarkDrain(b *testing.B) {
	for _, bc := range []struct {
		name     string
		noSync   bool
		batchMax int
	}{
		{"fsync/batch=500", false, 500},
		{"fsync/batch=2000", false, 2000},
		{"nofsync/batch=500", true, 500},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const n = 20000
			s, err := spool.Open(spool.Options{Path: filepath.Join(b.TempDir(), "agent.db"), NoSync: bc.noSync,
				MaxBytes: 256 << 20})
			require.NoError(b, err)
			b.Cleanup(func() { require.NoError(b, s.Close()) })
			cloud := newCloud(b, nil)
			u, err := New(Options{URL: cloud.url(), Station: station, Token: staticToken("secret"),
				Interval: time.Hour, BatchMax: bc.batchMax}, s, nil)
			require.NoError(b, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- u.Run(ctx) }()
			b.Cleanup(func() {
				cancel()
				require.NoError(b, <-done)
			})
			require.Eventually(b, func() bool { return u.Flush(ctx) == nil }, guard, time.Millisecond)

			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				addReadings(b, s, n)
				b.StartTimer()
				start := time.Now()
				require.NoError(b, u.Flush(ctx))
				elapsed += time.Since(start)
			}
			b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "readings/s")
			b.ReportMetric(float64(u.Status().BytesToday)/float64(n*b.N), "wire-bytes/reading")
		})
	}
}

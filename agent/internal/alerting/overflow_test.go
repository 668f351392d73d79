package alerting

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/shared/criteria"
)

// TestOverflow: eviction of unsent readings raises one critical buffer_overflow alert,
// with the buffer's counts; it resolves only after an hour without such evictions.
// Evictions of forwarded history alone raise nothing.
func TestOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		m, err := New(Options{Station: "MH-PUNE-001", Class: criteria.ClassB}, store, &pubRecorder{}, nil)
		require.NoError(t, err)
		counts := spool.Evicted{Downsampled: 40, DroppedUnforwarded: 2}
		o := &Overflow{Alerts: m, Stats: func() spool.Stats { return spool.Stats{MaxBytes: 512 << 20, Evicted: counts} }}
		o.OnEvict(spool.Eviction{Evicted: spool.Evicted{Downsampled: 40}, Full: true}) // before Run: kept
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- o.Run(ctx) }()
		synctest.Wait()

		active := m.Active()
		require.Len(t, active, 1)
		assert.Equal(t, RuleBufferOverflow, active[0].Rule)
		assert.Equal(t, Critical, active[0].Severity)
		assert.Equal(t, "Buffer full (512 MiB): unsent readings downsampled to hourly means: 40, dropped: 2; the uplink has been down too long", active[0].Message)

		time.Sleep(40 * time.Minute)
		o.OnEvict(spool.Eviction{Evicted: spool.Evicted{DroppedUnforwarded: 2}, Full: true})
		o.OnEvict(spool.Eviction{Evicted: spool.Evicted{ExpiredForwarded: 9}}) // the hourly retention pass
		synctest.Wait()
		time.Sleep(OverflowQuiet - time.Minute)
		synctest.Wait()
		assert.Len(t, m.Active(), 1, "an hour has not passed since the last eviction of unsent data")
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		assert.Empty(t, m.Active(), "quiet for an hour: resolved")
		assert.Equal(t, []string{"opened buffer:overflow", "resolved buffer:overflow"}, store.transitions(t))

		cancel()
		assert.NoError(t, <-done)
	})
}

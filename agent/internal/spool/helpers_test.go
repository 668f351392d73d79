package spool

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// TestMain fails the run if any test leaves a goroutine behind (the writer must stop on
// Close).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable clock for Options.Now.
var t0 = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

// openSpool opens a spool in a fresh directory (unless opts.Path is set). On cleanup it
// closes it and checks the file read-only with bbolt's own consistency check.
func openSpool(t testing.TB, opts Options) *Spool {
	t.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(t.TempDir(), "agent.db")
	}
	s, err := Open(opts)
	require.NoError(t, err, "open %s", opts.Path)
	t.Cleanup(func() {
		require.NoError(t, s.Close(), "close")
		mustCheck(t, opts.Path)
	})
	return s
}

// mustCheck opens path read-only and fails the test if bbolt's check finds anything.
func mustCheck(t testing.TB, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err, "open %s read-only for the check", path)
	var errs []error
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return nil
	}))
	require.NoError(t, db.Close())
	require.NoError(t, errors.Join(errs...), "bbolt check of %s", path)
}

// reading builds a valid reading.
func reading(sensor string, p telemetry.Param, v float64, at time.Time) telemetry.Reading {
	info, _ := telemetry.Info(p)
	return telemetry.Reading{
		Station: "MH-PUNE-001", Sensor: sensor, Param: p, Value: v, Unit: info.Unit,
		Time: at, Source: telemetry.SourceSensor, Quality: telemetry.Good,
	}
}

// series builds n ph readings of one sensor, every step from start.
func series(sensor string, n int, start time.Time, step time.Duration) []telemetry.Reading {
	rs := make([]telemetry.Reading, n)
	for i := range rs {
		rs[i] = reading(sensor, telemetry.PH, 7+float64(i%100)/100, start.Add(time.Duration(i)*step))
	}
	return rs
}

// appendAll appends rs in calls of at most batch readings and returns them with seqs.
func appendAll(t testing.TB, s *Spool, rs []telemetry.Reading, batch int) []telemetry.Reading {
	t.Helper()
	var out []telemetry.Reading
	for len(rs) > 0 {
		n := min(batch, len(rs))
		got, err := s.AppendReadings(t.Context(), rs[:n])
		require.NoError(t, err, "append")
		out = append(out, got...)
		rs = rs[n:]
	}
	return out
}

// allReadings reads the whole readings stream in seq order.
func allReadings(t testing.TB, s *Spool) []telemetry.Reading {
	t.Helper()
	var out []telemetry.Reading
	after := uint64(0)
	for {
		rs, err := s.ReadingsAfter(after, 5000)
		require.NoError(t, err)
		if len(rs) == 0 {
			return out
		}
		out = append(out, rs...)
		after = rs[len(rs)-1].Seq
	}
}

// evictions collects OnEvict reports without blocking the writer.
type evictions struct {
	ch chan Eviction
}

func newEvictions() *evictions { return &evictions{ch: make(chan Eviction, 1000)} }

func (e *evictions) hook(ev Eviction) {
	select {
	case e.ch <- ev:
	default:
		panic("eviction reports not consumed")
	}
}

// next waits for the next report.
func (e *evictions) next(t testing.TB) Eviction {
	t.Helper()
	select {
	case ev := <-e.ch:
		return ev
	case <-time.After(30 * time.Second):
		require.FailNow(t, "no eviction report within 30s")
		return Eviction{}
	}
}

// none asserts that no report is pending.
func (e *evictions) none(t testing.TB) {
	t.Helper()
	select {
	case ev := <-e.ch:
		require.FailNow(t, "unexpected eviction", "%+v", ev)
	default:
	}
}

func seqs(rs []telemetry.Reading) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

package fsyncrate

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMeasure(t *testing.T) {
	for _, m := range []Method{Fdatasync, Fsync} {
		t.Run(string(m), func(t *testing.T) {
			dir := t.TempDir()
			res, err := Measure(t.Context(), dir, m, 20*time.Millisecond)
			require.NoError(t, err)
			assert.Equal(t, m, res.Method)
			assert.GreaterOrEqual(t, res.Ops, 10, "at least ten operations, however fast the disk")
			assert.GreaterOrEqual(t, res.Elapsed, 20*time.Millisecond)
			assert.Positive(t, res.PerSecond())

			left, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, left, "the test file is removed")
		})
	}
}

func TestMeasureErrors(t *testing.T) {
	tests := []struct {
		name   string
		dir    func(t *testing.T) string
		method Method
		ctx    func(t *testing.T) context.Context
	}{
		{
			name:   "unknown method",
			dir:    func(t *testing.T) string { return t.TempDir() },
			method: "msync",
			ctx:    func(t *testing.T) context.Context { return t.Context() },
		},
		{
			name:   "missing directory",
			dir:    func(t *testing.T) string { return t.TempDir() + "/missing" },
			method: Fsync,
			ctx:    func(t *testing.T) context.Context { return t.Context() },
		},
		{
			name:   "context ended",
			dir:    func(t *testing.T) string { return t.TempDir() },
			method: Fsync,
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return ctx
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Measure(tt.ctx(t), tt.dir(t), tt.method, time.Millisecond)
			assert.Error(t, err)
		})
	}
}

func TestResultPerSecond(t *testing.T) {
	assert.InDelta(t, 250.0, Result{Ops: 500, Elapsed: 2 * time.Second}.PerSecond(), 1e-9)
	assert.Zero(t, Result{Ops: 5}.PerSecond(), "no elapsed time: no rate")
}

func TestFSType(t *testing.T) {
	assert.NotEmpty(t, FSType(t.TempDir()))
	assert.Equal(t, "unknown", FSType(t.TempDir()+"/missing"))
}

// BenchmarkFdatasync is the same operation as Measure, for `go test -bench` on a
// directory of choice (FSYNCRATE_DIR, default a temporary directory).
func BenchmarkFdatasync(b *testing.B) {
	dir := os.Getenv("FSYNCRATE_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	f, err := os.CreateTemp(dir, ".fsyncrate-bench-*")
	require.NoError(b, err)
	b.Cleanup(func() {
		assert.NoError(b, f.Close())
		assert.NoError(b, os.Remove(f.Name()))
	})
	block := make([]byte, BlockSize)
	for b.Loop() {
		_, err := f.WriteAt(block, 0)
		require.NoError(b, err)
		require.NoError(b, fdatasync(f))
	}
}

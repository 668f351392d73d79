// Package fsyncrate measures how many durable writes per second a disk completes: the
// physical limit a store that syncs every commit cannot beat, and the yardstick for the
// agent's group commits.
//
// One operation is what a small database commit costs: write 4 KiB at the start of a file
// (overwriting, so no file-size metadata has to reach the disk) and flush it with
// fdatasync(2), the call bbolt uses on Linux, or fsync(2). The loop runs in the caller's
// goroutine on one file in the directory given, so measure the directory the store will
// use: filesystems and devices differ by orders of magnitude (an SD card manages tens to
// a few hundred, a laptop SSD thousands, tmpfs millions because it does nothing).
package fsyncrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Method is the flush call.
type Method string

// The flush calls.
const (
	Fdatasync Method = "fdatasync" // data and the metadata needed to read it back (bbolt on Linux)
	Fsync     Method = "fsync"     // data and all metadata
)

// BlockSize is the size of each write.
const BlockSize = 4096

// Result is one measurement.
type Result struct {
	Method  Method
	Ops     int           // writes flushed
	Elapsed time.Duration // from the first write to the last flush
}

// PerSecond is the rate of flushed writes.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Measure writes and flushes a 4 KiB block in a loop for at least d (and at least 10
// operations), in a temporary file in dir that it removes afterwards. It stops early with
// ctx's error when ctx ends.
func Measure(ctx context.Context, dir string, m Method, d time.Duration) (res Result, err error) {
	flush := flushFunc(m)
	if flush == nil {
		return Result{}, fmt.Errorf("unknown flush method %q", m)
	}
	f, err := os.CreateTemp(dir, ".fsyncrate-*")
	if err != nil {
		return Result{}, fmt.Errorf("create test file: %w", err)
	}
	defer func() {
		err = errors.Join(err, f.Close(), os.Remove(f.Name()))
	}()
	block := make([]byte, BlockSize)
	// The first write allocates the block and sets the size; it is not part of the rate.
	if _, err := f.WriteAt(block, 0); err != nil {
		return Result{}, fmt.Errorf("write test file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return Result{}, fmt.Errorf("sync test file: %w", err)
	}
	res.Method = m
	start := time.Now()
	for res.Ops < 10 || time.Since(start) < d {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		block[0] = byte(res.Ops) // a real change, so no layer can skip the write
		if _, err := f.WriteAt(block, 0); err != nil {
			return Result{}, fmt.Errorf("write test file: %w", err)
		}
		if err := flush(f); err != nil {
			return Result{}, fmt.Errorf("%s test file: %w", m, err)
		}
		res.Ops++
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

func flushFunc(m Method) func(*os.File) error {
	switch m {
	case Fdatasync:
		return fdatasync
	case Fsync:
		return (*os.File).Sync
	}
	return nil
}

// FSType names the filesystem dir is on ("ext4", "tmpfs", ...), or "unknown". A result on
// tmpfs or overlayfs on tmpfs says nothing about a disk.
func FSType(dir string) string { return fsType(dir) }

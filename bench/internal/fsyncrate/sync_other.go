//go:build !linux

package fsyncrate

import "os"

// fdatasync falls back to fsync where there is no fdatasync(2).
func fdatasync(f *os.File) error { return f.Sync() }

func fsType(string) string { return "unknown" }

// Package lazyfstest mounts lazy filesystems (package lazyfs) for tests, and decides what
// a machine without FUSE means: the test is skipped, unless PH_REQUIRE_TOOLS=1 (as in CI),
// when it fails.
package lazyfstest

import (
	"errors"
	"testing"

	"github.com/purehealth/purehealth/internal/lazyfs"
	"github.com/purehealth/purehealth/internal/testtool"
)

// Mount mounts a lazy filesystem over backing at mountpoint, unmounted when the test ends
// unless the test did it first. Without FUSE it skips t, or fails it when
// PH_REQUIRE_TOOLS=1; any other failure fails t.
func Mount(t testing.TB, backing, mountpoint string, o lazyfs.Options) *lazyfs.FS {
	t.Helper()
	fsys, err := lazyfs.Mount(backing, mountpoint, o)
	switch {
	case errors.Is(err, lazyfs.ErrUnavailable) && testtool.Required():
		t.Fatalf("%v and %s=1 (Debian: apt-get install fuse3; the kernel needs FUSE and the test root or /dev/fuse access)", err, testtool.EnvRequire)
	case errors.Is(err, lazyfs.ErrUnavailable):
		t.Skipf("%v (Debian: apt-get install fuse3; the kernel needs FUSE and the test root or /dev/fuse access)", err)
	case err != nil:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fsys.Unmount(); err != nil {
			t.Errorf("lazyfs: %v", err)
		}
	})
	return fsys
}

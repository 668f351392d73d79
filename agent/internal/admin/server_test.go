package admin

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The admin socket has mode 0660 from the moment it exists at its path, whatever the
// umask: it used to be bound with the umask's mode (0777 here) and chmod-ed afterwards,
// leaving a window in which anyone could connect.
func TestSocketModeFromTheStart(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	path := filepath.Join(t.TempDir(), "admin.sock")
	modes := make(chan os.FileMode, 1)
	socketAppeared = func(p string) {
		fi, err := os.Lstat(p)
		if err == nil {
			modes <- fi.Mode()
		}
	}
	t.Cleanup(func() { socketAppeared = func(string) {} })

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- NewServer(path, nil, nil).Run(ctx) }()
	select {
	case m := <-modes:
		assert.Equal(t, os.ModeSocket|0o660, m, "mode when the socket appeared")
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("no socket")
	}
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket|0o660, fi.Mode())
	cancel()
	require.NoError(t, <-done)
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Empty(t, entries, "the socket and its temporary directory are gone after shutdown")
}

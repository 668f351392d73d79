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

// TestListen: the socket is bound by Listen, so a second agent on the same socket fails
// there, before it runs; Close releases a socket nobody served, and a stale socket file
// is replaced.
func TestListen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "admin.sock")
	first := NewServer(path, nil, nil)
	require.NoError(t, first.Listen())
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket|0o660, info.Mode()&(os.ModeSocket|os.ModePerm))

	second := NewServer(path, nil, nil)
	err = second.Listen()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is in use: is another ph-agent running?")

	require.NoError(t, first.Close())
	require.NoError(t, first.Close(), "Close is idempotent")
	_, err = os.Stat(path)
	assert.ErrorIs(t, err, os.ErrNotExist, "Close removes the socket file")

	// A socket file left behind by a crashed agent does not stop the next one.
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	require.NoError(t, second.Listen())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, second.Run(ctx), "Run serves what Listen bound, and stops with its context")
	_, err = os.Stat(path)
	assert.ErrorIs(t, err, os.ErrNotExist, "Run removes the socket when it stops")
}

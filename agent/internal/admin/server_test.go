package admin

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/exitcode"
	"github.com/purehealth/purehealth/internal/lazyfs"
	"github.com/purehealth/purehealth/internal/testtool"
)

// The command mounts, and a cut loses what was never synced and unmounts.
func TestRunCut(t *testing.T) {
	dir := t.TempDir()
	backing, mnt := filepath.Join(dir, "b"), filepath.Join(dir, "m")
	require.NoError(t, os.Mkdir(backing, 0o700))
	require.NoError(t, os.Mkdir(mnt, 0o700))
	out, w := io.Pipe()
	cut := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() {
		err := run(t.Context(), cut, []string{"-tear", backing, mnt}, w, io.Discard)
		w.CloseWithError(io.EOF)
		done <- err
	}()
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		err := <-done
		if errors.Is(err, lazyfs.ErrUnavailable) && !testtool.Required() {
			t.Skip(err)
		}
		t.Fatalf("no output; run: %v", err)
	}
	require.Equal(t, "mounted", lines.Text())
	require.NoError(t, os.WriteFile(filepath.Join(mnt, "f"), []byte("unsynced"), 0o600))
	cut <- os.Interrupt
	require.True(t, lines.Scan(), "a line after the cut")
	assert.Equal(t, "power cut: 1 pages of 1 files not synced, 0 written back", lines.Text())
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("lazyfs did not exit after the cut")
	}
	b, err := os.ReadFile(filepath.Join(backing, "f"))
	require.NoError(t, err)
	assert.Empty(t, b, "the file exists (metadata) but its data was lost")
}

func TestRunUsage(t *testing.T) {
	err := run(context.Background(), nil, []string{"only-one"}, io.Discard, io.Discard)
	assert.Equal(t, exitcode.Startup, exitcode.Of(err))
}

package clock

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSync(t *testing.T) {
	floor := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	marker := filepath.Join(t.TempDir(), "synchronized")
	tests := []struct {
		name   string
		mode   Mode
		now    time.Time
		kernel func() (bool, error)
		marker bool
		want   bool
	}{
		{"none trusts even 1970", None, time.Unix(0, 0), nil, false, true},
		{"floor rejects a reset clock", Floor, time.Date(1970, 1, 1, 0, 0, 5, 0, time.UTC), nil, false, false},
		{"floor accepts after floor", Floor, floor.Add(time.Hour), nil, false, true},
		{"kernel synced", Kernel, floor.Add(time.Hour), func() (bool, error) { return true, nil }, false, true},
		{"kernel unsynced", Kernel, floor.Add(time.Hour), func() (bool, error) { return false, nil }, false, false},
		{"kernel error is untrusted", Kernel, floor.Add(time.Hour), func() (bool, error) { return false, errors.New("eperm") }, false, false},
		{"kernel synced but before floor", Kernel, floor.Add(-time.Hour), func() (bool, error) { return true, nil }, false, false},
		{"file present", File, floor.Add(time.Hour), nil, true, true},
		{"file absent", File, floor.Add(time.Hour), nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.marker {
				require.NoError(t, os.WriteFile(marker, nil, 0o644))
				t.Cleanup(func() { _ = os.Remove(marker) })
			}
			s, err := New(tt.mode, marker, floor, func() time.Time { return tt.now })
			require.NoError(t, err)
			if tt.kernel != nil {
				s.kernelSynced = tt.kernel
			}
			ok, reason := s.State()
			assert.Equal(t, tt.want, ok, "reason: %s", reason)
			if !ok {
				assert.NotEmpty(t, reason, "an untrusted clock must say why")
			}
		})
	}
}

func TestSyncCachesAndRechecks(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := New(Kernel, "", time.Time{}, func() time.Time { return now })
	require.NoError(t, err)
	calls, synced := 0, false
	s.kernelSynced = func() (bool, error) { calls++; return synced, nil }
	assert.False(t, s.Synced())
	synced = true
	assert.False(t, s.Synced(), "answer is cached within the recheck period")
	now = now.Add(recheck)
	assert.True(t, s.Synced(), "answer is refreshed after the recheck period")
	assert.Equal(t, 2, calls)
}

func TestNewRejectsUnknownMode(t *testing.T) {
	_, err := New("ntp", "", time.Time{}, nil)
	assert.ErrorContains(t, err, `"ntp"`)
}

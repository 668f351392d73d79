package spool

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// OnCommit hears of every group commit, the failed ones too, with how long it took.
func TestOnCommitTimesEveryCommit(t *testing.T) {
	var mu sync.Mutex
	var took []time.Duration
	faults := &Faults{}
	s := openSpool(t, Options{NoSync: true, Faults: faults, OnCommit: func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		took = append(took, d)
	}})
	ctx := t.Context()
	_, err := s.AppendReadings(ctx, []telemetry.Reading{reading("ph-1", telemetry.PH, 7, t0)})
	require.NoError(t, err)
	require.NoError(t, s.Put(ctx, "k", []byte("v")))
	faults.FailCommits(true)
	_, err = s.AppendReadings(ctx, []telemetry.Reading{reading("ph-1", telemetry.PH, 7.1, t0)})
	require.ErrorIs(t, err, ErrInjected)
	faults.FailCommits(false)

	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(took), 3, "two commits and a failed one")
	for _, d := range took {
		assert.Positive(t, d)
	}
	assert.Equal(t, uint64(len(took)-1), s.Stats().Commits, "every commit but the failed one counts as committed")
}

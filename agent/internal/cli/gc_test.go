package cli

import (
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTuneGC(t *testing.T) {
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})

	// Restored after the test, set or not.
	t.Setenv("GOGC", "50")
	t.Setenv("GOMEMLIMIT", "1GiB")
	tuneGC()
	assert.Equal(t, 100, debug.SetGCPercent(100), "GOGC in the environment wins")
	assert.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(math.MaxInt64), "GOMEMLIMIT in the environment wins")

	os.Unsetenv("GOGC")
	os.Unsetenv("GOMEMLIMIT")
	tuneGC()
	assert.Equal(t, agentGCPercent, debug.SetGCPercent(100), "without GOGC the agent's own target")
	assert.Equal(t, int64(agentMemoryLimit), debug.SetMemoryLimit(math.MaxInt64), "without GOMEMLIMIT the agent's own limit")
}

package cli

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTuneRuntime(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		runtime.GOMAXPROCS(procs)
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})

	// Restored after the test, set or not.
	t.Setenv("GOGC", "50")
	t.Setenv("GOMEMLIMIT", "1GiB")
	t.Setenv("GOMAXPROCS", "3")
	runtime.GOMAXPROCS(3)
	tuneRuntime()
	assert.Equal(t, 3, runtime.GOMAXPROCS(0), "GOMAXPROCS in the environment wins")
	assert.Equal(t, 100, debug.SetGCPercent(100), "GOGC in the environment wins")
	assert.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(math.MaxInt64), "GOMEMLIMIT in the environment wins")

	os.Unsetenv("GOGC")
	os.Unsetenv("GOMEMLIMIT")
	os.Unsetenv("GOMAXPROCS")
	tuneRuntime()
	assert.Equal(t, agentProcs, runtime.GOMAXPROCS(0), "without GOMAXPROCS the agent's own")
	assert.Equal(t, agentGCPercent, debug.SetGCPercent(100), "without GOGC the agent's own target")
	assert.Equal(t, int64(agentMemoryLimit), debug.SetMemoryLimit(math.MaxInt64), "without GOMEMLIMIT the agent's own limit")
}

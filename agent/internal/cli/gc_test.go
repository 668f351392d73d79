package cli

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	t.Setenv("GOGC", "50") // restored after the test, unset or not
	tuneGC()
	assert.Equal(t, 100, debug.SetGCPercent(100), "GOGC in the environment wins")

	os.Unsetenv("GOGC")
	tuneGC()
	assert.Equal(t, agentGCPercent, debug.SetGCPercent(100), "without GOGC the agent's own target")
}

package cli

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a run starts — sensors, publish waiters, the client libraries' own —
// must be gone when it returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

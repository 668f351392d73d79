package e2e

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/internal/testproc"
)

// guard bounds every single wait (a process starting, a command, a publish). It only turns
// a hang into a failure: no test asserts how fast anything happens. It is generous because
// the processes under test may be race-detector builds sharing two cores.
const guard = 30 * time.Second

// drainGuard bounds the wait for a whole backlog to reach the cloud.
const drainGuard = 90 * time.Second

// mustCmd runs a command and requires it to succeed.
func mustCmd(t *testing.T, bin string, args ...string) string {
	t.Helper()
	res := testproc.Run(t, guard, bin, args...)
	require.Equal(t, 0, res.Code, "%s %v exited %d; stderr: %s", bin, args, res.Code, res.Stderr)
	return res.Stdout
}

// bins builds the programs under test once per run, on first use.
var bins testproc.Builder

// TestMain stops the shared PostgreSQL server after the tests, and fails the run if
// goroutines outlive them: the helpers own some too (MQTT clients, process waiters, the
// proxy).
func TestMain(m *testing.M) {
	os.Exit(testproc.Main(&bins, func() int { return pgtest.Main(m) }))
}

// agentBin and cloudBin are ph-agent and ph-cloud; with -race both get the race detector,
// and their logs are checked for reports.
func agentBin(t testing.TB) string {
	t.Helper()
	return bins.Binary(t, "ph-agent", "github.com/purehealth/purehealth/agent", testproc.Race)
}

func cloudBin(t testing.TB) string {
	t.Helper()
	return bins.Binary(t, "ph-cloud", "github.com/purehealth/purehealth/cloud", testproc.Race)
}

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/purehealth/purehealth/internal/pgtest"
)

// The binaries under test, built once by TestMain.
var (
	agentBin string
	cloudBin string
)

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ph-system-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	agentBin, cloudBin = filepath.Join(dir, "ph-agent"), filepath.Join(dir, "ph-cloud")
	code := pgtest.Main(m)
	if code == 0 {
		// The helpers own goroutines too (MQTT clients, process waiters, the proxy): none
		// may outlive its test.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: goroutines left after the tests:", err)
			return 1
		}
	}
	return code
}

// build compiles ph-agent and ph-cloud into dir with one go command, so that the two share
// the work; with -race both get the race detector and their logs are checked for reports.
func build(dir string) error {
	args := []string{"build"}
	if raceBuild {
		args = append(args, "-race")
	}
	args = append(args, "-o", dir+string(filepath.Separator),
		"github.com/purehealth/purehealth/agent", "github.com/purehealth/purehealth/cloud")
	if out, err := exec.Command(goTool(), args...).CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	// go build names a command after the last element of its import path.
	for from, to := range map[string]string{"agent": "ph-agent", "cloud": "ph-cloud"} {
		if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
			return err
		}
	}
	return nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// procEnv is the environment of every process under test. A race-detector build waits a
// second at exit by default, for reports from other goroutines; the tests check the logs
// instead, so that wait would only slow every CLI command down.
func procEnv() []string {
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	return append(os.Environ(), "GORACE="+gorace)
}

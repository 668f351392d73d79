// Package testtool finds the programs from outside Go that some tests drive (Mosquitto's
// clients, libcoap's coap-client, Chromium) and decides what a missing one means: the test
// is skipped, unless PH_REQUIRE_TOOLS=1 (as in CI, which installs them), when it fails.
package testtool

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// EnvRequire names the variable that turns a missing tool from a skip into a failure
// when it is "1".
const EnvRequire = "PH_REQUIRE_TOOLS"

// Required reports whether a missing tool fails the test (PH_REQUIRE_TOOLS=1).
func Required() bool { return os.Getenv(EnvRequire) == "1" }

// LookPath returns the path of the first of names found on PATH (a tool some Debian
// releases install under another name takes them all). When none is found it skips t, or
// fails it when PH_REQUIRE_TOOLS=1, saying which Debian package installs the tool.
func LookPath(t testing.TB, debianPackage string, names ...string) string {
	t.Helper()
	var first error
	for _, name := range names {
		path, err := exec.LookPath(name)
		if err == nil {
			return path
		}
		if first == nil {
			first = err
		}
	}
	what := strings.Join(names, " or ")
	if Required() {
		t.Fatalf("%s not found and %s=1: %v (Debian: apt-get install %s)", what, EnvRequire, first, debianPackage)
	} else {
		t.Skipf("%s not found: %v (Debian: apt-get install %s)", what, first, debianPackage)
	}
	return ""
}

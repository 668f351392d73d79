package testproc

import (
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/goleak"
)

// Main runs the tests of a package that starts processes, for its TestMain: run is m.Run,
// or a wrapper of it such as pgtest.Main. Afterwards it removes what bins built and, when
// the tests passed, fails the run if goroutines are left (goleak): every process is reaped
// by a goroutine that must end with its test, and so must the tests' own. Pass its result
// to os.Exit.
//
//	var bins testproc.Builder
//
//	func TestMain(m *testing.M) { os.Exit(testproc.Main(&bins, m.Run)) }
func Main(bins *Builder, run func() int) int {
	code := run()
	name := filepath.Base(os.Args[0])
	if err := bins.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: remove the built programs: %v\n", name, err)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: goroutines left after the tests: %v\n", name, err)
			return 1
		}
	}
	return code
}

//go:build race

package testproc

// Race is true when the test binary has the race detector; pass it to Build so that the
// program under test gets it too and its log can be checked for reports.
const Race = true

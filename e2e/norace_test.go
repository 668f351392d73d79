//go:build !race

package e2e

// raceBuild is true when the tests run with -race; the binaries under test are then built
// with the race detector as well.
const raceBuild = false

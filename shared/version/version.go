// Package version holds the build's version string, set by the linker.
package version

// Version is replaced at link time with `git describe` (see the Makefile).
var Version = "dev"

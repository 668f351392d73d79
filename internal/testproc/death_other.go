//go:build !linux

package testproc

import "os/exec"

// DieWithParent does nothing: only Linux can tie a process's life to its parent's.
func DieWithParent(*exec.Cmd) {}

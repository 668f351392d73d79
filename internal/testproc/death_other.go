//go:build !linux

package testproc

import "os/exec"

// setDeathSignal does nothing: only Linux can tie a process's life to its parent's.
func setDeathSignal(*exec.Cmd) {}

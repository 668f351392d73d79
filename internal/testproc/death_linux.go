package testproc

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill the process should the test binary die without its
// cleanups.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

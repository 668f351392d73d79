package testproc

import (
	"os/exec"
	"syscall"
)

// DieWithParent has the kernel kill the program of cmd should this process die without
// stopping it, even by SIGKILL. (The signal follows the OS thread that started the child;
// the Go runtime retires a thread only when a goroutine exits while locked to it, which
// nothing here does.)
func DieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

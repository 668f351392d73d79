package harness

import "syscall"

// sysProcAttr has the kernel kill a started program when the benchmark dies, even by
// SIGKILL. (Pdeathsig follows the OS thread that started the child; the Go runtime does
// not retire threads unless a goroutine exits while locked to one, which this program does
// not do.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

package ezo

import (
	"fmt"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// openPTY creates a pseudo-terminal in raw mode. master is served by the runtime poller, so
// a blocked Read or Write ends when it is closed or its deadline passes; tty is the slave,
// held open so the master never reads EIO while no client has the device open.
func openPTY() (master, tty *os.File, err error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("open pseudo-terminal: %w", err)
	}
	defer func() {
		if err != nil {
			tty.Close()
		}
	}()
	// pty.Open calls Fd on the master, which switches it to blocking mode for good; a
	// blocked Read could then never be interrupted. Serve a non-blocking duplicate instead.
	fd, err := unix.FcntlInt(ptmx.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	closeErr := ptmx.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("duplicate pseudo-terminal master: %w", err)
	}
	if closeErr != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("close pseudo-terminal master: %w", closeErr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("pseudo-terminal master: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := makeRaw(tty); err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, tty, nil
}

// makeRaw puts the terminal in raw mode before any client opens it: no echo (the circuit
// would read its own replies back), no CR/NL translation, no line buffering.
func makeRaw(tty *os.File) error {
	rc, err := tty.SyscallConn()
	if err != nil {
		return fmt.Errorf("pseudo-terminal: %w", err)
	}
	var opErr error
	err = rc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			opErr = err
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR |
			unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		opErr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	if err == nil {
		err = opErr
	}
	if err != nil {
		return fmt.Errorf("pseudo-terminal raw mode: %w", err)
	}
	return nil
}

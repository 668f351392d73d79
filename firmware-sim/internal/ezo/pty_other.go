//go:build !linux

package ezo

import (
	"errors"
	"os"
)

func openPTY() (master, tty *os.File, err error) {
	return nil, nil, errors.New("the EZO emulator needs Linux pseudo-terminals")
}

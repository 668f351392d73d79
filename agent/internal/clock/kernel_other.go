//go:build !linux

package clock

import "errors"

func kernelSynced() (bool, error) {
	return false, errors.New("not supported on this platform")
}

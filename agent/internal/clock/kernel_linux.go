package clock

import "golang.org/x/sys/unix"

// kernelSynced reads the kernel's NTP state: STA_UNSYNC is cleared by chrony,
// systemd-timesyncd and ntpd once they have disciplined the clock.
func kernelSynced() (bool, error) {
	var t unix.Timex
	state, err := unix.Adjtimex(&t)
	if err != nil {
		return false, err
	}
	return state != unix.TIME_ERROR && t.Status&unix.STA_UNSYNC == 0, nil
}

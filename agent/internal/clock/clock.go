// Package clock decides whether the wall clock can be trusted. A Raspberry Pi has no
// real-time clock: after an offline boot its time can be years off until NTP syncs, so
// readings taken before then are flagged and ordered by sequence number instead.
package clock

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// Mode names how synchronization is detected.
type Mode string

// The modes. In every mode but None, a clock before the floor is untrusted.
const (
	Kernel Mode = "kernel" // the kernel's NTP status (adjtimex), kept by chrony or timesyncd
	File   Mode = "file"   // a marker file exists (systemd-timesyncd writes one when synced)
	Floor  Mode = "floor"  // only the sanity floor
	None   Mode = "none"   // always trusted
)

// Defaults for a station that says nothing about its clock.
const (
	DefaultMode     = Kernel
	DefaultSyncFile = "/run/systemd/timesync/synchronized" // written by systemd-timesyncd
)

// DefaultFloor is the default sanity floor: a clock before it is certainly wrong.
var DefaultFloor = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Sync answers "is the clock synchronized?" and caches the answer for a few seconds so it
// can sit on the ingest path. It is safe for concurrent use.
type Sync struct {
	mode  Mode
	file  string
	floor time.Time
	now   func() time.Time
	// kernelSynced is the platform seam (adjtimex on Linux).
	kernelSynced func() (bool, error)

	mu      sync.Mutex
	checked time.Time
	synced  bool
	reason  string
}

// New returns a Sync for mode. now may be nil (time.Now).
func New(mode Mode, file string, floor time.Time, now func() time.Time) (*Sync, error) {
	switch mode {
	case Kernel, File, Floor, None:
	default:
		return nil, fmt.Errorf("unknown clock sync mode %q", mode)
	}
	if now == nil {
		now = time.Now
	}
	return &Sync{mode: mode, file: file, floor: floor, now: now, kernelSynced: kernelSynced}, nil
}

// recheck is how long an answer is reused.
const recheck = 5 * time.Second

// Synced reports whether the clock is trusted now.
func (s *Sync) Synced() bool {
	ok, _ := s.State()
	return ok
}

// State reports whether the clock is trusted and, if not, why.
func (s *Sync) State() (bool, string) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.checked.IsZero() && now.Sub(s.checked) < recheck && !now.Before(s.checked) {
		return s.synced, s.reason
	}
	s.synced, s.reason = s.evaluate(now)
	s.checked = now
	return s.synced, s.reason
}

func (s *Sync) evaluate(now time.Time) (bool, string) {
	if s.mode == None {
		return true, ""
	}
	if now.Before(s.floor) {
		return false, fmt.Sprintf("clock reads %s, before the floor %s", now.UTC().Format(time.RFC3339), s.floor.Format(time.DateOnly))
	}
	switch s.mode {
	case Kernel:
		ok, err := s.kernelSynced()
		if err != nil {
			return false, "kernel time status unavailable: " + err.Error()
		}
		if !ok {
			return false, "kernel reports the clock unsynchronized (no NTP yet)"
		}
	case File:
		if _, err := os.Stat(s.file); err != nil {
			return false, "no sync marker at " + s.file
		}
	}
	return true, ""
}

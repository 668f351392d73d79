package uplink

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// stateKey is where the uplink keeps its counters in the store's key-value state.
const stateKey = "uplink/state"

// persisted is what survives a restart besides the cursors: the byte budget's day and
// use (so a restart does not hand a metered link a fresh budget), and the records set
// aside.
type persisted struct {
	Day            string    `json:"day"` // UTC date Bytes counts
	Bytes          int64     `json:"bytes"`
	Rejected       uint64    `json:"rejected"`
	LastRejectedAt time.Time `json:"last_rejected_at,omitzero"`
	// HeldDay is the UTC date on which the budget last held the backlog: from then until
	// the day ends the live lane carries no readings either.
	HeldDay string `json:"held_day,omitempty"`
}

func (u *Uplink) loadCounters() error {
	raw, err := u.memo.Get(stateKey)
	if err != nil {
		return fmt.Errorf("uplink: read state: %w", err)
	}
	if raw == nil {
		return nil
	}
	if err := json.Unmarshal(raw, &u.counters); err != nil || u.counters.Bytes < 0 {
		// Counters only: starting them again is better than not forwarding.
		u.log.Warn("uplink state unreadable; its counters start again", "err", err)
		u.counters = persisted{}
	}
	return nil
}

// rollLocked starts a new day's count at UTC midnight.
func (u *Uplink) rollLocked() {
	day := u.opts.Now().UTC().Format(time.DateOnly)
	if u.counters.Day != day {
		u.counters.Day, u.counters.Bytes = day, 0
		u.dirty = u.dirty || u.opts.DailyBytes > 0
	}
}

func (u *Uplink) bytesTodayLocked() int64 {
	u.rollLocked()
	return u.counters.Bytes
}

// budgetLeftLocked is what today's budget still allows (math.MaxInt64 without a budget).
func (u *Uplink) budgetLeftLocked() int64 {
	if u.opts.DailyBytes == 0 {
		return math.MaxInt64
	}
	return u.opts.DailyBytes - u.bytesTodayLocked()
}

// readingsAllowedLocked says whether the live lane may carry readings: the budget is not
// spent, and has not held the backlog today.
func (u *Uplink) readingsAllowedLocked() bool {
	if u.opts.DailyBytes == 0 {
		return true
	}
	return u.budgetLeftLocked() > 0 && u.counters.HeldDay != u.counters.Day
}

// holdLocked notes that the budget holds the backlog for the rest of the day.
func (u *Uplink) holdLocked() {
	u.rollLocked()
	if u.counters.HeldDay != u.counters.Day {
		u.counters.HeldDay, u.dirty = u.counters.Day, true
	}
}

// accountWire adds the bytes moved on the client's connections since it last looked to
// today's count, whichever requests moved them (batches may be in flight together). They
// are stored with the next commit when there is a budget (without one the count is for
// display, and not worth a write).
func (u *Uplink) accountWire() {
	u.mu.Lock()
	defer u.mu.Unlock()
	total := u.client.wire.Load()
	n := total - u.wireSeen
	if n <= 0 {
		return
	}
	u.wireSeen = total
	u.rollLocked()
	u.counters.Bytes += n
	u.dirty = u.dirty || u.opts.DailyBytes > 0
}

func (u *Uplink) setState(s State) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.st.State = s
	if s == Sending {
		u.st.NextRetryAt = time.Time{}
	}
}

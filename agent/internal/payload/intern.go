package payload

import (
	"hash/maphash"
	"sync/atomic"
)

// A device sends the same few units and sensor names in every message: strings made of
// them are shared instead of allocated each time. The table is direct-mapped and lossy (a
// collision replaces the entry), so that it is bounded and needs no lock; a string longer
// than internMaxLen is never kept.
const (
	internSlots  = 1 << 12
	internMaxLen = 64
)

var (
	internSeed  = maphash.MakeSeed()
	internTable [internSlots]atomic.Pointer[string]
)

// intern returns b as a string, shared with earlier calls for the same bytes.
func intern(b []byte) string {
	if len(b) > internMaxLen {
		return string(b)
	}
	slot := &internTable[maphash.Bytes(internSeed, b)&(internSlots-1)]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}

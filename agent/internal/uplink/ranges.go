package uplink

import "slices"

// seqRange is the closed interval [lo, hi] of seqs.
type seqRange struct{ lo, hi uint64 }

// rangeSet holds the seqs of one stream that the cloud has confirmed (or that were set
// aside) above the persisted cursor: sorted, disjoint, non-adjacent intervals. Its zero
// value is empty. It is not safe for concurrent use.
//
// A range may also cover seqs that no longer exist in the buffer (evicted before they were
// sent): a range only ever says "nothing in here still needs sending". The set stays small:
// each live-lane batch adds one range, and ranges merge as they meet and are trimmed as
// the cursor passes them.
type rangeSet struct{ rs []seqRange }

// add inserts [lo, hi], merging it with the ranges it overlaps or touches. Seqs are far
// below the uint64 limit (the spool counts from 1), so hi+1 does not overflow.
func (s *rangeSet) add(lo, hi uint64) {
	if lo > hi {
		return
	}
	i := 0
	for i < len(s.rs) && s.rs[i].hi+1 < lo {
		i++
	}
	j := i
	for j < len(s.rs) && s.rs[j].lo <= hi+1 {
		lo, hi = min(lo, s.rs[j].lo), max(hi, s.rs[j].hi)
		j++
	}
	s.rs = slices.Replace(s.rs, i, j, seqRange{lo, hi})
}

// find returns the range holding seq. The backlog asks it of every record it reads, and a
// long drain with readings arriving may leave a range per batch: it searches.
func (s *rangeSet) find(seq uint64) (seqRange, bool) {
	i, ok := slices.BinarySearchFunc(s.rs, seq, func(r seqRange, seq uint64) int {
		switch {
		case r.hi < seq:
			return -1
		case r.lo > seq:
			return 1
		}
		return 0
	})
	if !ok {
		return seqRange{}, false
	}
	return s.rs[i], true
}

// contains reports whether seq is in the set.
func (s *rangeSet) contains(seq uint64) bool {
	_, ok := s.find(seq)
	return ok
}

// prefix returns how far the set runs without a hole from cursor+1: the highest seq h such
// that every seq in (cursor, h] is in the set, or cursor itself when cursor+1 is not.
func (s *rangeSet) prefix(cursor uint64) uint64 {
	for _, r := range s.rs {
		if r.hi <= cursor {
			continue
		}
		if r.lo <= cursor+1 {
			return r.hi
		}
		break
	}
	return cursor
}

// trim drops every seq at or below cursor.
func (s *rangeSet) trim(cursor uint64) {
	i := 0
	for i < len(s.rs) && s.rs[i].hi <= cursor {
		i++
	}
	s.rs = slices.Delete(s.rs, 0, i)
	if len(s.rs) > 0 && s.rs[0].lo <= cursor {
		s.rs[0].lo = cursor + 1
	}
}

// count returns how many seqs the set covers.
func (s *rangeSet) count() uint64 {
	var n uint64
	for _, r := range s.rs {
		n += r.hi - r.lo + 1
	}
	return n
}

package store

import (
	"math"
	"slices"

	"github.com/jackc/pgx/v5/pgtype"
)

// seqRanges is a set of seqs as sorted, disjoint, non-adjacent half-open ranges
// [lo, hi): the seqs of one of a station's streams that the database may hold
// (station_ingest.readings_committed). It may say more than was stored, never less: a
// seq outside it has no row, so a reading with that seq can be copied into its table
// without looking; a seq inside it may have one, and takes the ON CONFLICT path.
type seqRanges []seqRange

type seqRange struct{ lo, hi int64 }

// maxSeqRanges bounds the ranges kept per stream. Holes that never fill (a record the
// cloud refused, which the agent then sets aside) would otherwise add up; past the bound
// the lowest holes are closed, which only sends their seqs down the ON CONFLICT path.
const maxSeqRanges = 32

// everySeq holds every seq: with it, every reading takes the checked path.
var everySeq = seqRanges{{math.MinInt64, math.MaxInt64}}

// contains reports whether seq is in the set.
func (s seqRanges) contains(seq int64) bool {
	i, _ := slices.BinarySearchFunc(s, seq, func(r seqRange, seq int64) int {
		switch {
		case r.hi <= seq:
			return -1
		case r.lo > seq:
			return 1
		}
		return 0
	})
	return i < len(s) && s[i].lo <= seq && seq < s[i].hi
}

// runsOf returns the set of seqs (in any order, repeats allowed) as ranges.
func runsOf(seqs []int64) seqRanges {
	if len(seqs) == 0 {
		return nil
	}
	sorted := slices.Clone(seqs)
	slices.Sort(sorted)
	out := seqRanges{{sorted[0], sorted[0] + 1}}
	for _, q := range sorted[1:] {
		last := &out[len(out)-1]
		if q <= last.hi {
			last.hi = max(last.hi, q+1)
			continue
		}
		out = append(out, seqRange{q, q + 1})
	}
	return out
}

// union returns the ranges of both sets, coalesced, and at most maxSeqRanges of them.
func (s seqRanges) union(o seqRanges) seqRanges {
	all := append(slices.Clone(s), o...)
	slices.SortFunc(all, func(a, b seqRange) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	var out seqRanges
	for _, r := range all {
		if n := len(out); n > 0 && r.lo <= out[n-1].hi {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	if extra := len(out) - maxSeqRanges; extra > 0 {
		// Close the lowest holes: old gaps are the ones that no longer fill.
		out[extra].lo = out[0].lo
		out = out[extra:]
	}
	return out
}

// multirange is s as PostgreSQL's int8multirange.
func (s seqRanges) multirange() pgtype.Multirange[pgtype.Range[pgtype.Int8]] {
	out := make(pgtype.Multirange[pgtype.Range[pgtype.Int8]], len(s))
	for i, r := range s {
		out[i] = pgtype.Range[pgtype.Int8]{
			Lower: pgtype.Int8{Int64: r.lo, Valid: true}, Upper: pgtype.Int8{Int64: r.hi, Valid: true},
			LowerType: pgtype.Inclusive, UpperType: pgtype.Exclusive, Valid: true,
		}
	}
	return out
}

// seqRangesOf reads an int8multirange as PostgreSQL returns it (canonical: [lo, hi)).
// An unbounded side, which the ingest never writes, is taken as the end of the seqs.
func seqRangesOf(m pgtype.Multirange[pgtype.Range[pgtype.Int8]]) seqRanges {
	out := make(seqRanges, 0, len(m))
	for _, r := range m {
		if !r.Valid || r.LowerType == pgtype.Empty {
			continue
		}
		lo, hi := int64(0), int64(1<<63-1)
		if r.LowerType != pgtype.Unbounded {
			lo = r.Lower.Int64
			if r.LowerType == pgtype.Exclusive {
				lo++
			}
		}
		if r.UpperType != pgtype.Unbounded {
			hi = r.Upper.Int64
			if r.UpperType == pgtype.Inclusive {
				hi++
			}
		}
		out = append(out, seqRange{lo, hi})
	}
	return seqRanges(nil).union(out)
}

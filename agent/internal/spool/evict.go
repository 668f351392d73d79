package spool

import (
	"errors"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Chunk sizes: each eviction transaction is small enough that appends waiting behind it
// are delayed by milliseconds, not seconds.
const (
	deleteChunk   = 10000 // records deleted per transaction at most
	downsampleMax = 20000 // raw readings examined per transaction
	minChunk      = 16
)

// Store-time marks. Retention is measured on the spool's own clock at the time a record
// was stored, not on a reading's measurement time, which comes from devices and may be
// anything. Rather than spend 8 bytes on every record, the writer notes the time of the
// first commit of every minute per stream: marks bucket, key stream byte + first seq,
// value unix nanoseconds. Because a new mark is written as soon as the previous one is a
// minute old (or the clock went back), every record between mark i and mark i+1 was
// stored within markEvery after mark i. A segment is therefore expired when its mark is
// older than Retention + markEvery: records go at most a minute late, never early.

// pass is an eviction pass in progress. Only the writer goroutine touches it.
type pass struct {
	full     bool   // run steps 1-4 until UsedBytes < target; otherwise step 1 only
	target   int64  // bytes
	step     int    // 1..4; beyond 4 nothing is left that may go
	dsFrom   uint64 // downsampling resumes at this seq
	chunkCap int    // lowered when even a deletion does not fit the file
	ev       Eviction
	waiters  []chan error // Expire callers
}

// startPass starts a pass, or joins the one in progress: a full pass absorbs a retention
// pass; Expire callers wait for step 1 of the current pass or, if that is over, for the
// next pass.
func (s *Spool) startPass(full bool, waiter chan error) {
	if s.pass == nil {
		s.pass = &pass{full: full, target: s.low, step: 1, chunkCap: deleteChunk,
			ev: Eviction{Full: full, UsedBefore: s.used}}
		if waiter != nil {
			s.pass.waiters = append(s.pass.waiters, waiter)
		}
		return
	}
	if full && !s.pass.full {
		s.pass.full, s.pass.ev.Full = true, true
	}
	if waiter != nil {
		if s.pass.step == 1 {
			s.pass.waiters = append(s.pass.waiters, waiter)
		} else {
			s.expireWaiting = append(s.expireWaiting, waiter)
		}
	}
}

// checkFull starts a full pass when UsedBytes is above the high watermark.
func (s *Spool) checkFull() {
	if s.used > s.high {
		s.startPass(true, nil)
	}
}

// makeRoom runs a full pass now until need bytes fit below the file's hard limit (and
// UsedBytes is below the low watermark), for a commit that would not fit otherwise.
func (s *Spool) makeRoom(need int64) {
	target := max(min(s.low, s.hardLimit-need), 0)
	s.startPass(true, nil)
	s.pass.target = min(s.pass.target, target)
	for s.pass != nil {
		s.stepPass()
	}
}

// stepPass runs one transaction of the current pass.
func (s *Spool) stepPass() {
	p := s.pass
	now := s.now()
	var d Evicted
	var progress int
	exhausted := false
	dsFrom := p.dsFrom
	err := s.update(func(tx *bolt.Tx, st *state) error {
		d, progress, exhausted, dsFrom = Evicted{}, 0, false, p.dsFrom
		var err error
		switch p.step {
		case 1:
			progress, err = s.expireChunk(tx, st, now, p.chunkCap, &d)
			exhausted = progress == 0
		case 2:
			progress, err = deleteOldest(tx, st, true, s.chunkFor(p), &d)
			exhausted = progress == 0
		case 3:
			progress, exhausted, dsFrom, err = downsampleChunk(tx, st, max(p.dsFrom, s.dsFrontier), min(p.chunkCap*2, downsampleMax), &d)
		case 4:
			progress, err = deleteOldest(tx, st, false, s.chunkFor(p), &d)
			exhausted = progress == 0
		}
		if err != nil {
			return err
		}
		st.evicted.add(d)
		if progress == 0 {
			return errNothing
		}
		return nil
	})
	switch {
	case errors.Is(err, errNothing):
		p.dsFrom = dsFrom // a chunk of readings that cannot be grouped still moves on
		s.dsFrontier = max(s.dsFrontier, dsFrom)
	case errors.Is(err, berrors.ErrMaxSizeReached) && p.chunkCap > 1:
		// Deleting rewrites pages too; with the file at its bound, take smaller bites.
		p.chunkCap = max(p.chunkCap/4, 1)
		return
	case err != nil:
		s.log.Error("eviction step failed", "step", p.step, "err", err)
		s.finishPass(err)
		return
	default:
		p.ev.add(d)
		p.dsFrom = dsFrom
		s.dsFrontier = max(s.dsFrontier, dsFrom)
	}
	if exhausted {
		p.step++
	}
	switch {
	case !p.full && p.step > 1:
		s.finishPass(nil)
	case p.full && p.step > 1 && s.used < p.target:
		s.finishPass(nil)
	case p.step > 4:
		// Only alert events and key-value state are left; say so, but not on every commit.
		if now := s.now(); now.Sub(s.stuckLogged) >= time.Hour || now.Before(s.stuckLogged) {
			s.stuckLogged = now
			s.log.Error("buffer still above its target after evicting everything the policy allows",
				"used_bytes", s.used, "target_bytes", p.target, "max_bytes", s.maxBytes)
		}
		s.finishPass(nil)
	}
}

// chunkFor sizes a deletion: about the records that hold the bytes still to free.
func (s *Spool) chunkFor(p *pass) int {
	total := 0
	for _, ss := range s.st.s {
		total += ss.count
	}
	if total == 0 {
		return minChunk
	}
	perRecord := max(s.used/int64(total), 1)
	n := (s.used-p.target)/perRecord + 1
	return int(min(max(n, minChunk), int64(p.chunkCap)))
}

// finishPass reports the pass and answers its waiters.
func (s *Spool) finishPass(err error) {
	p := s.pass
	s.pass = nil
	p.ev.UsedAfter = s.used
	if p.ev.Evicted != (Evicted{}) {
		lvl := s.log.Info
		if p.ev.Unforwarded() > 0 {
			lvl = s.log.Warn
		}
		lvl("buffer eviction", "full", p.ev.Full,
			"expired_forwarded", p.ev.ExpiredForwarded, "forwarded", p.ev.Forwarded,
			"downsampled", p.ev.Downsampled, "downsampled_bad", p.ev.DownsampledBad,
			"means", p.ev.Means, "dropped_unforwarded", p.ev.DroppedUnforwarded,
			"dropped_wqi", p.ev.DroppedWQI,
			"used_before", p.ev.UsedBefore, "used_after", p.ev.UsedAfter)
		if s.onEvict != nil {
			s.onEvict(p.ev)
		}
	}
	for _, w := range p.waiters {
		w <- err
	}
	if len(s.expireWaiting) > 0 {
		ws := s.expireWaiting
		s.expireWaiting = nil
		s.startPass(false, nil)
		s.pass.waiters = ws
	}
}

// expireChunk deletes forwarded records whose store time is past the retention, all
// streams, up to limit records.
func (s *Spool) expireChunk(tx *bolt.Tx, st *state, now time.Time, limit int, d *Evicted) (int, error) {
	cutoff := now.Add(-s.retention).UnixNano() - int64(markEvery)
	total := 0
	for _, stream := range allStreams {
		ss := &st.s[stream.idx()]
		// Records with seq < bound were stored before the cutoff.
		var bound uint64
		mc := tx.Bucket(bucketMarks).Cursor()
		for k, v := mc.Seek([]byte{byte(stream)}); k != nil; k, v = mc.Next() {
			seq, t := markAt(stream, k, v)
			if seq == 0 {
				break // next stream's marks
			}
			if t > cutoff {
				bound = seq
				break
			}
			bound = ss.next // expired so far: everything up to the next mark
		}
		if bound == 0 {
			continue
		}
		n, err := deleteRange(tx, st, stream, min(bound-1, ss.cursor), limit-total, true, d)
		if err != nil {
			return total, err
		}
		total += n
		if total >= limit {
			break
		}
	}
	return total, nil
}

// deleteOldest deletes the oldest records: readings, then WQI records. With forwarded it
// takes only records up to the cursor (step 2); otherwise any (step 4, by then normally
// only unforwarded ones are left). Alert events are never taken.
func deleteOldest(tx *bolt.Tx, st *state, forwarded bool, limit int, d *Evicted) (int, error) {
	for _, stream := range []Stream{Readings, WQI} {
		to := uint64(anySeq)
		if forwarded {
			to = st.s[stream.idx()].cursor
		}
		n, err := deleteRange(tx, st, stream, to, limit, false, d)
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, nil
}

// deleteRange deletes up to limit of the oldest records of stream with seq <= to, and
// counts them in d by why they went (expired: past the retention).
func deleteRange(tx *bolt.Tx, st *state, stream Stream, to uint64, limit int, expired bool, d *Evicted) (int, error) {
	if to == 0 || limit <= 0 {
		return 0, nil
	}
	ss := &st.s[stream.idx()]
	b := tx.Bucket(stream.bucket())
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && seqOf(k) <= to && len(keys) < limit; k, _ = c.Next() {
		keys = append(keys, append([]byte{}, k...))
	}
	// Deleting through the cursor while iterating skips keys in bbolt; delete afterwards.
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
		ss.count--
		switch {
		case seqOf(k) <= ss.cursor:
			ss.fwd--
			if expired {
				d.ExpiredForwarded++
			} else {
				d.Forwarded++
			}
		case stream == WQI:
			d.DroppedWQI++
		default:
			d.DroppedUnforwarded++
		}
	}
	if len(keys) > 0 {
		if err := trimMarks(tx, st, stream); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// trimMarks deletes marks that no longer describe any stored record: mark i goes when mark
// i+1 is at or before the first record left. The newest mark always stays.
func trimMarks(tx *bolt.Tx, st *state, stream Stream) error {
	first := st.s[stream.idx()].next
	if k, _ := tx.Bucket(stream.bucket()).Cursor().First(); k != nil {
		first = seqOf(k)
	}
	mb := tx.Bucket(bucketMarks)
	mc := mb.Cursor()
	var stale [][]byte
	var prev []byte
	for k, v := mc.Seek([]byte{byte(stream)}); k != nil; k, v = mc.Next() {
		seq, _ := markAt(stream, k, v)
		if seq == 0 || seq > first {
			break
		}
		if prev != nil {
			stale = append(stale, prev)
		}
		prev = append([]byte{}, k...)
	}
	for _, k := range stale {
		if err := mb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// groupKey is what a downsampled reading stands for: one sensor's parameter from one
// source in one UTC hour.
type groupKey struct {
	station, sensor, unit string
	param                 telemetry.Param
	source                telemetry.Source
	hour                  int64
}

type group struct {
	seqs             []uint64
	first            telemetry.Reading
	sum, badSum      float64
	usable, bad      int
	allGood          bool
	flags            telemetry.Flags
	usableV, allBadV []float64 // for a sum that overflows
}

// downsampleChunk replaces groups of raw unforwarded readings with hourly means (step 3),
// examining up to limit raw readings from seq from on. It returns the readings replaced,
// whether the scan reached the newest reading, and where the next chunk starts.
func downsampleChunk(tx *bolt.Tx, st *state, from uint64, limit int, d *Evicted) (int, bool, uint64, error) {
	ss := &st.s[Readings.idx()]
	from = max(from, ss.cursor+1)
	b := tx.Bucket(Readings.bucket())
	groups := map[groupKey]*group{}
	var order []*group
	scanned := 0
	next := from
	c := b.Cursor()
	k, v := c.Seek(seqKey(from))
	for ; k != nil && scanned < limit; k, v = c.Next() {
		seq := seqOf(k)
		next = seq + 1
		r, err := decodeReading(seq, v)
		if err != nil || r.Flags.Has(telemetry.FlagDownsampled) {
			continue // corrupt values and means stay until step 4
		}
		scanned++
		gk := groupKey{r.Station, r.Sensor, r.Unit, r.Param, r.Source, r.Time.Truncate(time.Hour).Unix()}
		g := groups[gk]
		if g == nil {
			g = &group{first: r, allGood: true}
			groups[gk] = g
			order = append(order, g)
		}
		g.seqs = append(g.seqs, seq)
		g.flags |= r.Flags
		if r.Quality != telemetry.Good {
			g.allGood = false
		}
		if r.Quality == telemetry.Bad {
			g.bad++
			g.badSum += r.Value
			g.allBadV = append(g.allBadV, r.Value)
		} else {
			g.usable++
			g.sum += r.Value
			g.usableV = append(g.usableV, r.Value)
		}
	}
	exhausted := k == nil
	replaced := 0
	for _, g := range order {
		if len(g.seqs) < 2 {
			continue
		}
		m := g.first
		m.Time = m.Time.Truncate(time.Hour)
		m.Flags = g.flags | telemetry.FlagDownsampled
		switch {
		case g.usable > 0:
			m.Value = mean(g.sum, g.usableV)
			m.Quality = telemetry.Suspect
			if g.allGood {
				m.Quality = telemetry.Good
			}
			d.DownsampledBad += uint64(g.bad)
		default:
			// Only bad readings this hour: keep one bad mean, so the fault stays on record.
			m.Value = mean(g.badSum, g.allBadV)
			m.Quality = telemetry.Bad
		}
		enc, err := encodeReading(nil, &m)
		if err != nil {
			continue // cannot happen for a reading that decoded; leave the group raw
		}
		for _, seq := range g.seqs[1:] {
			if err := b.Delete(seqKey(seq)); err != nil {
				return 0, false, from, err
			}
		}
		if err := b.Put(seqKey(g.seqs[0]), enc); err != nil {
			return 0, false, from, err
		}
		ss.count -= len(g.seqs) - 1
		replaced += len(g.seqs)
		d.Downsampled += uint64(len(g.seqs))
		d.Means++
	}
	return replaced, exhausted, next, nil
}

// mean is sum/n in seq order; if the sum overflowed it falls back to a running mean.
func mean(sum float64, vs []float64) float64 {
	if !math.IsInf(sum, 0) {
		return sum / float64(len(vs))
	}
	m := 0.0
	for i, v := range vs {
		m += (v - m) / float64(i+1)
	}
	return m
}

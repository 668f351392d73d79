package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Faults makes failures happen on purpose, for tests. A nil *Faults injects nothing.
type Faults struct {
	failCommits atomic.Bool
}

// FailCommits makes every write transaction fail with ErrInjected and roll back while on
// is true: appends, acks, puts and eviction alike. It is safe for concurrent use.
func (f *Faults) FailCommits(on bool) { f.failCommits.Store(on) }

func (f *Faults) commitFails() bool { return f != nil && f.failCommits.Load() }

type opKind uint8

const (
	opAppend opKind = iota // values into stream
	opAck                  // cursor of stream to seq
	opPut                  // values[0] (or delete if none) under key
)

// request is one call waiting for the writer. The writer sets first and err before it
// sends on done, which is buffered so the writer never blocks on a caller that gave up.
type request struct {
	op     opKind
	stream Stream
	values [][]byte
	buf    []byte // backs values, for AppendReadings' reuse of requests
	seq    uint64
	key    string
	puts   []KV // opAppend: key-value writes of the same transaction

	first uint64 // first seq assigned (opAppend)
	err   error  // this request's own failure; the commit still holds the others
	done  chan error
}

// records is what r counts against MaxBatch.
func (r *request) records() int { return max(len(r.values), 1) }

// bytes estimates what r adds to the file: the values, their keys and bbolt's element
// headers.
func (r *request) bytes() int64 {
	n := int64(len(r.key)) + 16
	for _, v := range r.values {
		n += int64(len(v)) + 8 + 16
	}
	for _, kv := range r.puts {
		n += int64(len(kv.Key)+len(kv.Value)) + 16
	}
	return n
}

// errNothing rolls back a transaction that changed nothing, so it costs no fsync.
var errNothing = errors.New("nothing to do")

// run is the writer goroutine. It owns every write transaction: group commits of queued
// requests, and eviction passes, one chunk at a time, alternating with group commits so
// appends keep flowing while the buffer is being trimmed.
func (s *Spool) run() {
	defer close(s.done)
	ticker := time.NewTicker(expireEvery)
	defer ticker.Stop()

	s.startPass(false, nil) // retention at start, in case the agent was down for long
	s.checkFull()
	for {
		if s.carry != nil {
			r := s.carry
			s.carry = nil
			s.serve(r)
			continue
		}
		if s.pass != nil {
			select {
			case <-s.stop:
				s.shutdown()
				return
			case r := <-s.reqs:
				s.serve(r)
			case w := <-s.expireReqs:
				s.startPass(false, w)
			default:
			}
			if s.pass != nil {
				s.stepPass()
			}
			continue
		}
		select {
		case <-s.stop:
			s.shutdown()
			return
		case r := <-s.reqs:
			s.serve(r)
		case w := <-s.expireReqs:
			s.startPass(false, w)
		case <-ticker.C:
			s.startPass(false, nil)
		}
	}
}

// shutdown answers everything still waiting with ErrClosed.
func (s *Spool) shutdown() {
	if s.pass != nil {
		for _, w := range s.pass.waiters {
			w <- ErrClosed
		}
		s.pass = nil
	}
	for _, w := range s.expireWaiting {
		w <- ErrClosed
	}
	if s.carry != nil {
		s.carry.done <- ErrClosed
	}
	for {
		select {
		case r := <-s.reqs:
			r.done <- ErrClosed
		case w := <-s.expireReqs:
			w <- ErrClosed
		default:
			return
		}
	}
}

// serve collects first and every request already queued behind it, up to MaxBatch
// records, and commits them in one transaction.
//
// It yields the processor once before collecting. When the process is busy, the callers
// of the previous commit have just been answered and are runnable, and a moment later most
// of them are queued again (an MQTT client's next publish, say): the yield lets them join
// this commit instead of the next, so a commit and its fsync serve several times more
// records and cost that much less CPU per record. When nothing else is runnable the yield
// returns at once, so an idle station does not wait for its acknowledgements.
//
// One yield is not enough when a commit takes long (an SD card's fsync takes several
// milliseconds): the callers answered by one commit then come back while the next one,
// started with the few already queued, is in its fsync, and the load splits into two
// groups that take turns, each waiting for the other's commit. So when fewer appends are
// queued than the last commit held (if it held minGroupWait or more), serve waits for the
// rest, at most a quarter of the last commit's duration: the groups merge into one, at
// the price of that wait when callers have gone. A caller alone (an idle station) never
// waits.
func (s *Spool) serve(first *request) {
	runtime.Gosched()
	batch := []*request{first}
	n := first.records()
	appends := appendsIn(first)
	var timeout <-chan time.Time
collect:
	for n < s.maxBatch {
		var r *request
		select {
		case r = <-s.reqs:
		default:
			if appends >= s.lastAppends || s.lastAppends < minGroupWait {
				break collect
			}
			if timeout == nil {
				t := time.NewTimer(min(s.lastCommit/4, maxGroupWait))
				defer t.Stop()
				timeout = t.C
			}
			select {
			case r = <-s.reqs:
			case <-timeout:
				break collect
			case <-s.stop:
				break collect
			}
		}
		if n+r.records() > s.maxBatch {
			s.carry = r
			break collect
		}
		batch = append(batch, r)
		n += r.records()
		appends += appendsIn(r)
	}
	s.lastAppends = appends
	began := time.Now()
	s.commit(batch)
	s.lastCommit = time.Since(began)
}

// appendsIn is 1 for an append request, 0 for the others (acknowledgements, puts).
func appendsIn(r *request) int {
	if r.op == opAppend {
		return 1
	}
	return 0
}

// maxGroupWait bounds serve's wait for a group's stragglers, whatever a commit took.
const maxGroupWait = 10 * time.Millisecond

// minGroupWait is the fewest appends of the last group for which serve waits to gather as
// many again. A few callers gain nothing from waiting. Only appends count: the uplink's
// acknowledgements come one at a time, each holding up the next batch of a drain, and
// must not wait for company.
const minGroupWait = 4

// commit writes batch in one transaction and answers every request in it.
func (s *Spool) commit(batch []*request) {
	var need int64
	for _, r := range batch {
		need += r.bytes()
	}
	need = need*2 + 4*s.pageSize // page fill, branch pages and the pages copied on write
	if s.used+need > s.hardLimit {
		s.makeRoom(need)
	}
	now := s.now()
	apply := func(tx *bolt.Tx, st *state) error {
		s.keys = s.keys[:0]
		for _, r := range batch {
			r.err = nil
			if err := s.apply(tx, st, now, r); err != nil {
				return err
			}
		}
		return nil
	}
	began := time.Now()
	err := s.update(apply)
	if errors.Is(err, berrors.ErrMaxSizeReached) {
		// The estimate was short. Make room for twice the batch and try once more.
		s.log.Warn("buffer file at its bound during a commit: evicting before retrying",
			"used_bytes", s.used, "max_bytes", s.maxBytes)
		s.makeRoom(2 * need)
		err = s.update(apply)
		if errors.Is(err, berrors.ErrMaxSizeReached) {
			err = fmt.Errorf("%w: %w", ErrFull, err)
		}
	}
	if s.onCommit != nil {
		s.onCommit(time.Since(began))
	}
	if err != nil && !errors.Is(err, ErrInjected) {
		s.log.Error("commit failed", "records", len(batch), "err", err)
	}
	for _, r := range batch {
		res := err
		if res == nil {
			res = r.err
		}
		if res == nil && r.op == opAppend {
			s.appended.Add(uint64(len(r.values)))
		}
		r.done <- res
	}
	if err == nil {
		s.checkFull()
	}
}

// apply performs r inside tx, updating st. An error aborts the whole transaction; a
// problem that concerns r alone goes to r.err.
func (s *Spool) apply(tx *bolt.Tx, st *state, now time.Time, r *request) error {
	switch r.op {
	case opAppend:
		ss := &st.s[r.stream.idx()]
		b := tx.Bucket(r.stream.bucket())
		b.FillPercent = appendFill
		r.first = ss.next
		if ss.markSeq == 0 || now.UnixNano()-ss.markTime >= int64(markEvery) || now.UnixNano() < ss.markTime {
			k := binary.BigEndian.AppendUint64([]byte{byte(r.stream)}, ss.next)
			if err := tx.Bucket(bucketMarks).Put(k, binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))); err != nil {
				return err
			}
			ss.markSeq, ss.markTime = ss.next, now.UnixNano()
		}
		for _, v := range r.values {
			// bbolt keeps the key until the transaction ends: the keys of one
			// transaction share s.keys, which the next one reuses. An append that outgrows
			// it leaves the earlier keys in the old array, which stays valid.
			s.keys = binary.BigEndian.AppendUint64(s.keys, ss.next)
			if err := b.Put(s.keys[len(s.keys)-8:len(s.keys):len(s.keys)], v); err != nil {
				return err
			}
			ss.next++
		}
		ss.count += len(r.values)
		for _, kv := range r.puts {
			if err := putKV(tx, kv.Key, kv.Value); err != nil {
				return err
			}
		}
	case opAck:
		ss := &st.s[r.stream.idx()]
		if r.seq <= ss.cursor {
			return nil
		}
		if r.seq >= ss.next {
			r.err = fmt.Errorf("%w: ack of %s seq %d, beyond the last assigned %d",
				ErrInvalid, r.stream, r.seq, ss.next-1)
			return nil
		}
		c := tx.Bucket(r.stream.bucket()).Cursor()
		for k, _ := c.Seek(seqKey(ss.cursor + 1)); k != nil && seqOf(k) <= r.seq; k, _ = c.Next() {
			ss.fwd++
		}
		ss.cursor = r.seq
	case opPut:
		var v []byte
		if len(r.values) > 0 {
			v = r.values[0]
		}
		return putKV(tx, r.key, v)
	}
	return nil
}

// putKV stores value under key in the key-value bucket; nil deletes it.
func putKV(tx *bolt.Tx, key string, value []byte) error {
	b := tx.Bucket(bucketKV)
	if value == nil {
		return b.Delete([]byte(key))
	}
	return b.Put([]byte(key), value)
}

// update runs fn in a write transaction on a copy of the state, and adopts the copy only
// if the commit succeeded, so a failed commit leaves memory as it leaves the file. fn
// returns errNothing when it changed nothing; update then rolls back and returns it.
func (s *Spool) update(fn func(tx *bolt.Tx, st *state) error) error {
	next := s.st
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := fn(tx, &next); err != nil {
			return err
		}
		if err := writeMeta(tx, &s.st, &next); err != nil {
			return err
		}
		if s.faults.commitFails() {
			return ErrInjected
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.st = next
	s.commits.Add(1)
	s.measure()
	return nil
}

// measure computes UsedBytes: the high-water mark of the file minus its free and pending
// pages (pending pages are freed by the last commit and reused once no reader needs them).
// It also publishes the state for Stats and Cursor.
func (s *Spool) measure() {
	var hw int64
	if err := s.db.View(func(tx *bolt.Tx) error {
		hw = tx.Size()
		return nil
	}); err != nil {
		s.log.Error("measure buffer", "err", err)
		return
	}
	bs := s.db.Stats()
	s.used = hw - int64(bs.FreePageN+bs.PendingPageN)*s.pageSize
	s.mu.Lock()
	s.pub = s.st
	s.pubUsed = s.used
	s.mu.Unlock()
}

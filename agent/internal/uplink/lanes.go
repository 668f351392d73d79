package uplink

import (
	"fmt"
	"slices"

	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// batch is what one pass step sends and what it may move the cursors over.
type batch struct {
	items []item // alerts, then WQI, then readings, each in seq order
	// cover[st], when set, says every stored record of st in (cursor, cover] is in items,
	// in skip, or already in the ahead set: the batch was read in one piece from the cursor.
	// Once the batch is through, the cursor may move to cover. from[st] is where the
	// read began: the cursor, or, behind batches still in flight, the end of what they
	// cover (the batch covers (from, cover] only).
	cover, from [numStreams + 1]uint64
	skip        []unsendable
	body        []byte // items encoded, when the budget check did it already
}

func (b *batch) empty() bool {
	return len(b.items) == 0 && len(b.skip) == 0 && b.cover == [numStreams + 1]uint64{}
}

// splitLive moves the live lane's items of b, when it holds backlog records too, into a
// batch of their own, which it returns (nil when there is nothing to split). The live
// items lie outside what b covers, so each batch is confirmed on its own answer.
func (b *batch) splitLive() *batch {
	var live, rest []item
	for _, it := range b.items {
		if it.lane == liveLane {
			live = append(live, it)
		} else {
			rest = append(rest, it)
		}
	}
	if len(live) == 0 || len(rest) == 0 {
		return nil
	}
	b.items, b.body = rest, nil
	return &batch{items: live}
}

// liveSet builds the live lane's batch: every unsent alert event (oldest first), the
// newest WQI record if it is unsent, and, when withReadings, readings. At the start of a
// pass (first) those are the newest LiveReadings unsent readings; later in the pass they
// are the readings stored since the last batch was built (above *seen), and only an alert
// or a new WQI record makes a live batch of its own: readings alone ride with the next
// backlog batch (see backlog), so a long drain is not interleaved with tiny batches. At
// most room records. *seen is moved to the newest reading looked at.
func (u *Uplink) liveSet(ahead *[numStreams + 1]rangeSet, seen *uint64, first, withReadings bool, room int) (*batch, error) {
	b := &batch{}
	curW := u.queue.Cursor(spool.WQI)
	recs, err := u.queue.LastRecords(spool.WQI, 1)
	if err != nil {
		return nil, fmt.Errorf("read WQI: %w", err)
	}
	if len(recs) == 1 && recs[0].Seq > curW && !ahead[spool.WQI].contains(recs[0].Seq) && room > 0 {
		if it, err := wqiItem(recs[0]); err != nil {
			b.skip = append(b.skip, unsendable{spool.WQI, recs[0].Seq, err.Error()})
		} else {
			b.items = append(b.items, it)
		}
	}
	alerts, cover, skip, err := u.scan(spool.Alerts, u.queue.Cursor(spool.Alerts), room-len(b.items), &ahead[spool.Alerts], 0)
	if err != nil {
		return nil, err
	}
	b.items = append(alerts, b.items...) // alerts first, as a batch lists them
	b.skip = append(b.skip, skip...)
	b.cover[spool.Alerts] = cover
	for i := range b.items {
		b.items[i].lane = liveLane
	}
	if !first && b.empty() {
		return b, nil
	}
	if !withReadings {
		return b, nil
	}
	if first {
		err = u.liveReadings(b, &ahead[spool.Readings], seen, room-len(b.items))
	} else {
		err = u.freshReadings(b, &ahead[spool.Readings], seen, min(u.opts.LiveReadings, room-len(b.items)))
	}
	return b, err
}

// liveReadings adds the newest unsent readings to b, oldest of them first.
func (u *Uplink) liveReadings(b *batch, ahead *rangeSet, seen *uint64, room int) error {
	if room <= 0 {
		return nil
	}
	cur := u.queue.Cursor(spool.Readings)
	rs, err := u.queue.Readings(spool.Query{Limit: u.opts.LiveReadings})
	if err != nil {
		return fmt.Errorf("read newest readings: %w", err)
	}
	if len(rs) > 0 {
		*seen = max(*seen, rs[0].Seq)
	}
	// reached: every reading above the cursor is among rs.
	reached := len(rs) < u.opts.LiveReadings
	var keep []telemetry.Reading // newest first
	for _, r := range rs {
		if r.Seq <= cur {
			reached = true
			break
		}
		if !ahead.contains(r.Seq) {
			keep = append(keep, r)
		}
	}
	if len(keep) > room {
		keep, reached = keep[:room], false
	}
	slices.Reverse(keep)
	u.addLive(b, keep)
	if reached && len(rs) > 0 && rs[0].Seq > cur {
		b.cover[spool.Readings] = rs[0].Seq
	}
	return nil
}

// freshReadings adds to b the readings stored since *seen (and above the cursor), at most
// limit of them: the newest, when more arrived. The older ones are left to the backlog,
// which reaches them in order. *seen moves to the newest reading stored, so each reading
// is offered to the live lane once in a pass.
func (u *Uplink) freshReadings(b *batch, ahead *rangeSet, seen *uint64, limit int) error {
	if limit <= 0 {
		return nil
	}
	after := max(*seen, u.queue.Cursor(spool.Readings))
	rs, err := u.queue.ReadingsAfter(after, limit+1)
	if err != nil {
		return fmt.Errorf("read new readings: %w", err)
	}
	if len(rs) > limit {
		if rs, err = u.queue.Readings(spool.Query{Limit: limit}); err != nil {
			return fmt.Errorf("read newest readings: %w", err)
		}
		slices.Reverse(rs)
	}
	if len(rs) == 0 {
		return nil
	}
	*seen = max(*seen, rs[len(rs)-1].Seq)
	u.addLive(b, slices.DeleteFunc(rs, func(r telemetry.Reading) bool { return r.Seq <= after || ahead.contains(r.Seq) }))
	return nil
}

// addLive adds readings (in seq order) to b as live-lane items.
func (u *Uplink) addLive(b *batch, rs []telemetry.Reading) {
	for _, r := range rs {
		it, err := readingItem(r)
		if err != nil {
			b.skip = append(b.skip, unsendable{spool.Readings, r.Seq, err.Error()})
			continue
		}
		it.lane = liveLane
		b.items = append(b.items, it)
	}
}

// backlog builds the backlog lane's batch: WQI history and readings from their cursors in
// seq order, skipping what the live lane has sent. WQI history takes at most an eighth of
// the batch (it is small; readings are the bulk). When withReadings, the readings stored
// since the last batch was built (above *seen) ride along in the live lane, up to
// LiveReadings and half the batch, so that a reading arriving during a long drain reaches
// the cloud with the next batch instead of after the whole backlog; *seen moves past them.
//
// Behind batches still in flight (see flights) the read of each stream starts at after
// (the end of what they cover) rather than at the cursor, and readings stop below below
// (the newest readings some of them carry; 0 for no bound), so that the batch covers no
// record whose fate it does not decide.
func (u *Uplink) backlog(ahead *[numStreams + 1]rangeSet, seen *uint64, withReadings bool, room int,
	after *[numStreams + 1]uint64, below uint64) (*batch, error) {
	fresh := &batch{}
	if withReadings {
		if err := u.freshReadings(fresh, &ahead[spool.Readings], seen, min(u.opts.LiveReadings, room/2)); err != nil {
			return nil, err
		}
	}
	b := &batch{}
	room -= len(fresh.items)
	for _, part := range []struct {
		st   spool.Stream
		want int
	}{
		{spool.WQI, max(1, room/8)},
		{spool.Readings, room},
	} {
		want := min(part.want, room-len(b.items))
		from := max(u.queue.Cursor(part.st), after[part.st])
		var stop uint64
		if part.st == spool.Readings {
			stop = below
		}
		items, cover, skip, err := u.scan(part.st, from, want, &ahead[part.st], stop)
		if err != nil {
			return nil, err
		}
		b.items = append(b.items, items...)
		b.skip = append(b.skip, skip...)
		b.cover[part.st], b.from[part.st] = cover, from
	}
	// Near the end of the backlog the scan may have reached the new readings itself:
	// those it holds go once, in its lane.
	reached := b.cover[spool.Readings]
	for _, it := range fresh.items {
		if it.seq > reached {
			b.items = append(b.items, it)
		}
	}
	for _, s := range fresh.skip {
		if s.seq > reached {
			b.skip = append(b.skip, s)
		}
	}
	*seen = max(*seen, reached)
	return b, nil
}

// scanChunk is the least a scan reads at a time, so that skipping over records the live
// lane sent does not take one read each.
const scanChunk = 64

// scan reads st after cursor, in seq order, until it has want records to send, skipping
// the ahead set and stopping before seq below (0: no bound). cover is the last seq it went
// past (0 if none).
func (u *Uplink) scan(st spool.Stream, cursor uint64, want int, ahead *rangeSet, below uint64) (items []item, cover uint64, skip []unsendable, err error) {
	pos := cursor
	for len(items) < want {
		n := max(want-len(items), scanChunk)
		recs, err := u.read(st, pos, n)
		if err != nil {
			return nil, 0, nil, err
		}
		if len(recs) == 0 {
			break
		}
		jumped, stopped := false, false
		for _, rec := range recs {
			if below > 0 && rec.seq >= below {
				stopped = true
				break
			}
			if r, ok := ahead.find(rec.seq); ok {
				pos, cover, jumped = r.hi, r.hi, true
				break
			}
			if rec.err != nil {
				skip = append(skip, unsendable{st, rec.seq, rec.err.Error()})
			} else {
				items = append(items, rec.item)
			}
			pos, cover = rec.seq, rec.seq
			if len(items) == want {
				break
			}
		}
		if stopped || (!jumped && len(recs) < n) {
			break // the end of the stream, or the bound
		}
	}
	return items, cover, skip, nil
}

type scanned struct {
	seq  uint64
	item item
	err  error // the record cannot be sent
}

func (u *Uplink) read(st spool.Stream, after uint64, n int) ([]scanned, error) {
	var out []scanned
	if st == spool.Readings {
		rs, err := u.queue.ReadingsAfter(after, n)
		if err != nil {
			return nil, fmt.Errorf("read readings: %w", err)
		}
		for _, r := range rs {
			it, err := readingItem(r)
			out = append(out, scanned{r.Seq, it, err})
		}
		return out, nil
	}
	recs, err := u.queue.RecordsAfter(st, after, n)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", st, err)
	}
	convert := alertItem
	if st == spool.WQI {
		convert = wqiItem
	}
	for _, rec := range recs {
		it, err := convert(rec)
		out = append(out, scanned{rec.Seq, it, err})
	}
	return out, nil
}

package uplink

import (
	"fmt"

	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// batch is what one pass step sends and what it may move the cursors over.
type batch struct {
	items []item // alerts, then WQI, then readings, each in seq order
	// cover[st], when set, says every stored record of st in (cursor, cover] is in items,
	// in skip, or already in the ahead set: the batch was read in one piece from the cursor.
	// Once the batch is through, the cursor may move to cover.
	cover [numStreams + 1]uint64
	skip  []unsendable
	body  []byte // items encoded, when the budget check did it already
}

func (b *batch) empty() bool {
	return len(b.items) == 0 && len(b.skip) == 0 && b.cover == [numStreams + 1]uint64{}
}

// liveSet builds the live lane's batch: every unsent alert event (oldest first), the
// newest WQI record if it is unsent, and, when withReadings, the newest LiveReadings unsent
// readings. Unless first (the start of a pass), only an alert or a new WQI record makes a
// live batch: readings alone wait for the backlog then, so a long drain is not interleaved
// with tiny batches. At most room records.
func (u *Uplink) liveSet(ahead *[numStreams + 1]rangeSet, first, withReadings bool, room int) (*batch, error) {
	b := &batch{}
	curW := u.store.Cursor(spool.WQI)
	recs, err := u.store.LastRecords(spool.WQI, 1)
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
	alerts, cover, skip, err := u.scan(spool.Alerts, u.store.Cursor(spool.Alerts), room-len(b.items), &ahead[spool.Alerts])
	if err != nil {
		return nil, err
	}
	b.items = append(alerts, b.items...) // alerts first, as a batch lists them
	b.skip = append(b.skip, skip...)
	b.cover[spool.Alerts] = cover
	if !first && b.empty() {
		return b, nil
	}
	if withReadings {
		if err := u.liveReadings(b, &ahead[spool.Readings], room-len(b.items)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// liveReadings adds the newest unsent readings to b, oldest of them first.
func (u *Uplink) liveReadings(b *batch, ahead *rangeSet, room int) error {
	if room <= 0 {
		return nil
	}
	cur := u.store.Cursor(spool.Readings)
	rs, err := u.store.Readings(spool.Query{Limit: u.opts.LiveReadings})
	if err != nil {
		return fmt.Errorf("read newest readings: %w", err)
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
	for i := len(keep) - 1; i >= 0; i-- {
		if it, err := readingItem(keep[i]); err != nil {
			b.skip = append(b.skip, unsendable{spool.Readings, keep[i].Seq, err.Error()})
		} else {
			b.items = append(b.items, it)
		}
	}
	if reached && len(rs) > 0 && rs[0].Seq > cur {
		b.cover[spool.Readings] = rs[0].Seq
	}
	return nil
}

// backlog builds the backlog lane's batch: WQI history and readings from their cursors in
// seq order, skipping what the live lane has sent. WQI history takes at most an eighth of
// the batch (it is small; readings are the bulk).
func (u *Uplink) backlog(ahead *[numStreams + 1]rangeSet, room int) (*batch, error) {
	b := &batch{}
	for _, part := range []struct {
		st   spool.Stream
		want int
	}{
		{spool.WQI, max(1, room/8)},
		{spool.Readings, room},
	} {
		want := min(part.want, room-len(b.items))
		items, cover, skip, err := u.scan(part.st, u.store.Cursor(part.st), want, &ahead[part.st])
		if err != nil {
			return nil, err
		}
		b.items = append(b.items, items...)
		b.skip = append(b.skip, skip...)
		b.cover[part.st] = cover
	}
	return b, nil
}

// scanChunk is the least a scan reads at a time, so that skipping over records the live
// lane sent does not take one read each.
const scanChunk = 64

// scan reads st after cursor, in seq order, until it has want records to send, skipping
// the ahead set. cover is the last seq it went past (0 if none).
func (u *Uplink) scan(st spool.Stream, cursor uint64, want int, ahead *rangeSet) (items []item, cover uint64, skip []unsendable, err error) {
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
		jumped := false
		for _, rec := range recs {
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
		if !jumped && len(recs) < n {
			break // the end of the stream
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
		rs, err := u.store.ReadingsAfter(after, n)
		if err != nil {
			return nil, fmt.Errorf("read readings: %w", err)
		}
		for _, r := range rs {
			it, err := readingItem(r)
			out = append(out, scanned{r.Seq, it, err})
		}
		return out, nil
	}
	recs, err := u.store.RecordsAfter(st, after, n)
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

package store

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/shared/wire"
)

// A batch's readings are stored in two ways. Those whose seq the station's committed
// ranges (seqRanges) do not hold are new for certain: one binary COPY puts them straight
// into measurements, with no staging and no conflict check. The others (a batch sent
// again, an overlap, an agent counting from 1 again after losing its buffer, a seq twice
// in one batch) are staged and inserted with ON CONFLICT DO NOTHING, which returns those
// actually new. The batch's new readings then update the latest values, the rollups (plain
// layout) and the committed ranges with a few rows each, aggregated here, and become one
// events row (a readings event of one id per reading) and at most one backfill notice.
//
// The rows go in before the station's row lock is taken (storeReadings), the rest after it
// (readingsBookkeeping), so that a station's batches store their rows side by side and
// queue only for the few statements after. The ranges read without the lock may lack a
// batch committed meanwhile, never hold one that is not: a reading they call new that a
// concurrent batch stored first breaks the unique key of measurements, the COPY fails, and
// Ingest stores the batch again with every reading checked.

// readingColumns are the columns of measurements a reading fills, in copyReadings' order.
var readingColumns = []string{"time", "station_id", "param", "value", "unit", "quality", "source", "seq", "sensor",
	"flags", "sample_id", "lab", "method", "received_at"}

// stagedReadingColumns are those of stage_readings, in the same order less the station
// and received_at.
var stagedReadingColumns = []string{"time", "param", "value", "unit", "quality", "source", "seq", "sensor",
	"flags", "sample_id", "lab", "method"}

// insertStagedReadingsSQL inserts the staged readings that are new ($1 station, $2
// received_at) and returns the key of each inserted row.
const insertStagedReadingsSQL = `INSERT INTO measurements (time, station_id, param, value, unit, quality, source, seq, sensor,
		flags, sample_id, lab, method, received_at)
	SELECT time, $1, param, value, unit, quality, source, seq, sensor, flags, sample_id, lab, method, $2
	FROM stage_readings ORDER BY seq, time
	ON CONFLICT DO NOTHING
	RETURNING seq, time`

// readingKey identifies a stored reading (the unique key of measurements, less the
// station).
type readingKey struct {
	seq int64
	at  time.Time
}

// storedReadings are a batch's readings as storeReadings stored them.
type storedReadings struct {
	now   time.Time   // their received_at
	times []time.Time // as stored
	fresh []int       // the new readings, by seq then time
}

// storeReadings stores the new readings of rs in the transaction open on conn: those
// whose seq committed does not hold by COPY, the others by the checked path.
func (s *Store) storeReadings(ctx context.Context, conn *pgx.Conn, station string, rs []wire.Reading, committed seqRanges) (storedReadings, error) {
	now := s.opts.Now()
	times := make([]time.Time, len(rs))
	order := make([]int, len(rs)) // rs by seq, then time
	for i := range rs {
		times[i], order[i] = dbTime(rs[i].Time), i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(rs[a].Seq, rs[b].Seq), times[a].Compare(times[b]))
	})
	// sure: new for certain; maybe: for ON CONFLICT to decide.
	var sure, maybe []int
	for k, i := range order {
		seq := rs[i].Seq
		repeated := (k > 0 && rs[order[k-1]].Seq == seq) || (k+1 < len(order) && rs[order[k+1]].Seq == seq)
		// The last bigint cannot end a range: it always takes the checked path.
		if repeated || seq >= math.MaxInt64 || committed.contains(int64(seq)) {
			maybe = append(maybe, i)
		} else {
			sure = append(sure, i)
		}
	}
	if len(sure) > 0 {
		if err := copyReadings(ctx, conn, pgx.Identifier{"measurements"}, readingColumns, station, now, rs, times, sure); err != nil {
			return storedReadings{}, fmt.Errorf("copy readings: %w", err)
		}
	}
	isNew := make([]bool, len(rs))
	for _, i := range sure {
		isNew[i] = true
	}
	if len(maybe) > 0 {
		if err := insertChecked(ctx, conn, station, now, rs, times, maybe, isNew); err != nil {
			return storedReadings{}, err
		}
	}
	fresh := make([]int, 0, len(rs))
	for _, i := range order {
		if isNew[i] {
			fresh = append(fresh, i)
		}
	}
	return storedReadings{now: now, times: times, fresh: fresh}, nil
}

// readingsBookkeeping adds the seqs of rs to the station's committed ranges (as read
// under its row lock) and updates the latest values, rollups and events from the new
// readings stored.
func (s *Store) readingsBookkeeping(ctx context.Context, conn *pgx.Conn, station string, rs []wire.Reading, stored storedReadings,
	committed seqRanges, res *IngestResult) error {
	times, fresh := stored.times, stored.fresh
	res.NewReadings = int64(len(fresh))
	seqs := make([]int64, 0, len(rs))
	for _, r := range rs {
		if r.Seq < math.MaxInt64 {
			seqs = append(seqs, int64(r.Seq))
		}
	}
	after := committed.union(runsOf(seqs))

	batch := &pgx.Batch{}
	if !slices.Equal(after, committed) {
		batch.Queue(`UPDATE station_ingest SET readings_committed = $2 WHERE station_id = $1`, station, after.multirange())
	}
	if len(fresh) > 0 {
		queueLatest(batch, station, rs, times, fresh)
		if s.schema.Mode == ModePlain {
			queueRollups(batch, station, rs, times, fresh)
		}
		evs, release, err := s.readingEvents(station, stored.now, rs, times, fresh)
		if err != nil {
			return err
		}
		// The batch is sent, its arguments encoded, when SendBatch returns.
		defer release()
		queueStageEvents(batch, evs)
	}
	if batch.Len() == 0 {
		return nil
	}
	if err := conn.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("readings bookkeeping: %w", err)
	}
	return nil
}

// insertChecked stages the readings rs[idx] and inserts those that are new, marking them
// in isNew. Of several copies of one key in the batch, the first is the new one.
func insertChecked(ctx context.Context, conn *pgx.Conn, station string, now time.Time, rs []wire.Reading, times []time.Time, idx []int, isNew []bool) error {
	if err := copyReadings(ctx, conn, pgx.Identifier{"stage_readings"}, stagedReadingColumns, "", now, rs, times, idx); err != nil {
		return fmt.Errorf("stage readings: %w", err)
	}
	rows, err := conn.Query(ctx, insertStagedReadingsSQL, station, now)
	if err != nil {
		return fmt.Errorf("insert readings: %w", err)
	}
	inserted := map[readingKey]bool{}
	var k readingKey
	_, err = pgx.ForEachRow(rows, []any{&k.seq, &k.at}, func() error {
		inserted[readingKey{k.seq, k.at.UTC()}] = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("insert readings: %w", err)
	}
	for _, i := range idx {
		key := readingKey{int64(rs[i].Seq), times[i]}
		if inserted[key] {
			isNew[i] = true
			delete(inserted, key)
		}
	}
	return nil
}

// copyReadings copies rs[idx] into table: with the station and received_at (now) when
// station is not empty, as stage_readings takes them otherwise. The columns are
// readingColumns or stagedReadingColumns, in the order written here.
func copyReadings(ctx context.Context, conn *pgx.Conn, table pgx.Identifier, columns []string, station string, now time.Time,
	rs []wire.Reading, times []time.Time, idx []int) error {
	c := newCopyBinary(len(idx) * 160)
	received := dbTime(now)
	for _, i := range idx {
		r := &rs[i]
		c.row(len(columns))
		c.timestamptz(times[i])
		if station != "" {
			c.text(station)
		}
		c.text(r.Param)
		c.float8(r.Value)
		c.text(r.Unit)
		c.text(r.Quality)
		c.text(r.Source)
		c.int8(int64(r.Seq))
		c.text(r.Sensor)
		c.textArray(r.Flags)
		c.textOrNull(r.SampleID)
		c.textOrNull(r.Lab)
		c.textOrNull(r.Method)
		if station != "" {
			c.timestamptz(received)
		}
	}
	if err := c.run(ctx, conn, table, columns); err != nil {
		return err
	}
	c.release()
	return nil
}

// usable reports whether a reading feeds latest values and rollups (bad ones do not).
func usable(r *wire.Reading) bool { return r.Quality != "bad" }

// queueLatest queues the update of the station's latest values from the new readings
// rs[fresh]: per parameter and source the newest usable one, by time and then seq, if it
// is newer than the one stored.
func queueLatest(batch *pgx.Batch, station string, rs []wire.Reading, times []time.Time, fresh []int) {
	type key struct{ param, source string }
	best := map[key]int{}
	for _, i := range fresh {
		r := &rs[i]
		if !usable(r) {
			continue
		}
		k := key{r.Param, r.Source}
		if j, ok := best[k]; !ok || cmp.Or(times[i].Compare(times[j]), cmp.Compare(r.Seq, rs[j].Seq)) > 0 {
			best[k] = i
		}
	}
	if len(best) == 0 {
		return
	}
	var (
		params, sources, units, qualities, sensors []string
		ats                                        []time.Time
		values                                     []float64
		seqs                                       []int64
	)
	for _, i := range best {
		r := &rs[i]
		params, sources, units, qualities, sensors = append(params, r.Param), append(sources, r.Source),
			append(units, r.Unit), append(qualities, r.Quality), append(sensors, r.Sensor)
		ats, values, seqs = append(ats, times[i]), append(values, r.Value), append(seqs, int64(r.Seq))
	}
	batch.Queue(`INSERT INTO station_latest AS l (station_id, param, source, time, value, unit, quality, sensor, seq)
		SELECT $1, * FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::float8[], $6::text[], $7::text[], $8::text[], $9::bigint[])
		ON CONFLICT (station_id, param, source) DO UPDATE SET
			time = EXCLUDED.time, value = EXCLUDED.value, unit = EXCLUDED.unit,
			quality = EXCLUDED.quality, sensor = EXCLUDED.sensor, seq = EXCLUDED.seq
		WHERE (l.time, l.seq) < (EXCLUDED.time, EXCLUDED.seq)`,
		station, params, sources, ats, values, units, qualities, sensors, seqs)
}

// queueRollups queues, for the plain layout, the addition of the new usable readings
// rs[fresh] to their hourly and daily buckets: sums, counts, minima and maxima add up, so
// a bucket needs only the batch's aggregates, whatever it held before
// (0004_rollup_sums.plain.sql). The upsert is safe among concurrent batches on its own.
func queueRollups(batch *pgx.Batch, station string, rs []wire.Reading, times []time.Time, fresh []int) {
	for _, size := range []struct {
		table string
		d     time.Duration
	}{{"measurements_hourly", time.Hour}, {"measurements_daily", 24 * time.Hour}} {
		type key struct {
			bucket time.Time
			param  string
		}
		type agg struct {
			sum, min, max float64
			n             int64
		}
		buckets := map[key]*agg{}
		var keys []key
		for _, i := range fresh {
			r := &rs[i]
			if !usable(r) {
				continue
			}
			k := key{times[i].Truncate(size.d), r.Param} // UTC hours and days
			a := buckets[k]
			if a == nil {
				a = &agg{min: r.Value, max: r.Value}
				buckets[k] = a
				keys = append(keys, k)
			}
			a.sum += r.Value
			a.min, a.max = min(a.min, r.Value), max(a.max, r.Value)
			a.n++
		}
		if len(keys) == 0 {
			continue
		}
		var (
			at              []time.Time
			params          []string
			sums, mins, mxs []float64
			counts          []int64
		)
		for _, k := range keys {
			a := buckets[k]
			at, params = append(at, k.bucket), append(params, k.param)
			sums, mins, mxs, counts = append(sums, a.sum), append(mins, a.min), append(mxs, a.max), append(counts, a.n)
		}
		batch.Queue(`INSERT INTO `+size.table+` AS r (bucket, station_id, param, sum, count, min, max, avg)
			SELECT b, $1, p, su, n, mi, ma, su / n
			FROM unnest($2::timestamptz[], $3::text[], $4::float8[], $5::bigint[], $6::float8[], $7::float8[]) AS u(b, p, su, n, mi, ma)
			ON CONFLICT (station_id, param, bucket) DO UPDATE SET
				sum = r.sum + EXCLUDED.sum, count = r.count + EXCLUDED.count,
				min = least(r.min, EXCLUDED.min), max = greatest(r.max, EXCLUDED.max),
				avg = (r.sum + EXCLUDED.sum) / (r.count + EXCLUDED.count)`,
			station, at, params, sums, counts, mins, mxs)
	}
}

// liveCutoff is the oldest time a reading or WQI result stored at now may have and still
// get a live event of its own: LiveMaxAge before now (the zero time when every one does).
func (s *Store) liveCutoff(now time.Time) time.Time {
	if s.opts.LiveMaxAge <= 0 {
		return time.Time{}
	}
	return now.Add(-s.opts.LiveMaxAge)
}

// eventData keeps the data of past readings events for the next batch's: about 160 bytes
// a reading, which made a good part of the garbage the cloud collected during an ingest.
var eventData = sync.Pool{New: func() any { return new([]byte) }}

// maxKeptEventBytes is the largest readings event data eventData keeps.
const maxKeptEventBytes = 4 << 20

// readingEvents returns the live events of the new readings rs[fresh] (in seq order):
// one readings event for those younger than LiveMaxAge (one per maxEventSpan of them)
// and one backfill notice for the older ones. release gives the readings events' data
// back to eventData once the events are sent.
func (s *Store) readingEvents(station string, now time.Time, rs []wire.Reading, times []time.Time, fresh []int) (evs []newEvent, release func(), err error) {
	cutoff := s.liveCutoff(now)
	var kept []*[]byte
	release = func() {
		for _, p := range kept {
			if cap(*p) <= maxKeptEventBytes {
				eventData.Put(p)
			}
		}
	}
	var live []int
	var old BackfillSpan
	for _, i := range fresh {
		if times[i].Before(cutoff) {
			if old.Readings == 0 || times[i].Before(old.From) {
				old.From = times[i]
			}
			if old.Readings == 0 || times[i].After(old.To) {
				old.To = times[i]
			}
			old.Readings++
			continue
		}
		live = append(live, i)
	}
	for chunk := range slices.Chunk(live, maxEventSpan) {
		p := eventData.Get().(*[]byte)
		data := slices.Grow((*p)[:0], 160*len(chunk))
		data = append(data, '[')
		for k, i := range chunk {
			if k > 0 {
				data = append(data, ',')
			}
			data = appendReadingJSON(data, &rs[i], times[i])
		}
		data = append(data, ']')
		*p = data
		kept = append(kept, p)
		evs = append(evs, newEvent{station: station, typ: EventReadings, time: times[chunk[len(chunk)-1]], data: data,
			span: len(chunk), part: partReading, ord: int64(rs[chunk[0]].Seq)})
	}
	if old.Readings > 0 {
		e, err := makeEvent(station, EventStatus, old.To, Backfill{Backfill: old})
		if err != nil {
			return nil, release, err
		}
		e.part = partBackfill
		evs = append(evs, e)
	}
	return evs, release, nil
}

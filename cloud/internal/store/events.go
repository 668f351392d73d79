package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Event types: the "type" of a live message (contract).
const (
	EventReading    = "reading"
	EventWQI        = "wqi"
	EventAlert      = "alert"
	EventPrediction = "prediction"
	EventStatus     = "status"
)

// EventReadings is the type of an events row that stands for a batch's live readings, one
// reading event each (see 0012_ingest_ranges.sql): its Data is the array of their data,
// in seq order, and its Span ids are theirs. Events expands it; EventRows does not.
const EventReadings = "readings"

// EventsChannel is the PostgreSQL notification channel on which every commit that adds
// events announces its highest new id.
const EventsChannel = "ph_events"

// Event is one message of the live stream, as stored in the events table. IDs grow in the
// order the writing transactions committed (see the package documentation).
type Event struct {
	ID        int64
	Station   string
	Type      string
	Time      time.Time       // when it happened (a reading's time)
	Data      json.RawMessage // the message's data
	CreatedAt time.Time       // when it was stored
	// Span is, for a row of type EventReadings (EventRows), how many events it stands
	// for: those with ids ID-Span+1 .. ID. Otherwise 1 (or 0: one).
	Span int64
}

// First returns the id of the first event e stands for.
func (e Event) First() int64 { return e.ID - max(e.Span, 1) + 1 }

// Expand returns the events e stands for, in id order: the reading events of a readings
// row, with their ids, times and data; any other event as it is.
func (e Event) Expand() ([]Event, error) {
	if e.Type != EventReadings {
		return []Event{e}, nil
	}
	return appendReadingEvents(nil, e, EventQuery{})
}

// AlertChange is the data of an alert event: the alert as the API shows it after the
// transition, and the transition.
type AlertChange struct {
	Alert
	Transition string `json:"transition"` // opened, acknowledged, escalated, updated (cloud alerts), resolved
}

// StationStatus is the data of a status event: a station went offline or came back.
type StationStatus struct {
	State    string    `json:"state"` // online or offline
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen"` // the station's last batch before this change
	Since    time.Time `json:"since"`     // when this state began
	// OfflineSince is, for a station back online, when it had gone offline.
	OfflineSince *time.Time `json:"offline_since,omitempty"`
}

// Backfill is the data of a status event that announces readings (or WQI results) stored
// without a live event each: a batch brought them after they were older than
// Options.LiveMaxAge (a station's backlog after days offline, say). A client that shows
// that station's history of From..To reloads it from the query API instead of receiving
// every reading over its connection.
type Backfill struct {
	Backfill BackfillSpan `json:"backfill"`
}

// BackfillSpan counts the backfilled readings, or WQI results, of one batch and spans
// their times (a batch that brings both has a notice for each).
type BackfillSpan struct {
	Readings int64     `json:"readings"`
	WQI      int64     `json:"wqi,omitempty"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
}

// newEvent is an event to be written.
type newEvent struct {
	station string
	typ     string
	time    time.Time
	data    []byte
	// A staged event's place in its batch (stageEvents): part, then ord (0: its place
	// among the events staged with it); span is the ids it takes (0 for one).
	part int
	ord  int64
	span int
}

func makeEvent(station, typ string, at time.Time, v any) (newEvent, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return newEvent{}, fmt.Errorf("encode %s event: %w", typ, err)
	}
	return newEvent{station: station, typ: typ, time: at.UTC(), data: data}, nil
}

// writeEvents appends evs to the events table, in order, and queues the alert
// transitions among them for notification. It must be the last statement of its
// transaction that writes events: the trigger takes the events lock, held until the
// transaction ends.
func writeEvents(ctx context.Context, tx pgx.Tx, evs []newEvent) error {
	if len(evs) == 0 {
		return nil
	}
	if err := queueNotifications(ctx, tx, evs); err != nil {
		return err
	}
	stations, types, times, data := splitEvents(evs)
	_, err := tx.Exec(ctx, `INSERT INTO events (station_id, type, time, data)
		SELECT s, t, at, d::json FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[])
			WITH ORDINALITY AS e(s, t, at, d, n)
		ORDER BY n`, stations, types, times, data)
	if err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	return nil
}

func splitEvents(evs []newEvent) (stations, types []string, times []time.Time, data []string) {
	stations, types, times, data = make([]string, len(evs)), make([]string, len(evs)),
		make([]time.Time, len(evs)), make([]string, len(evs))
	for i, e := range evs {
		stations[i], types[i], times[i], data[i] = e.station, e.typ, e.time, string(e.data)
	}
	return stations, types, times, data
}

// A batch's events are staged in stage_events while its rows are stored (outside the
// events lock) and copied into events by publishAndCommit at the end. part orders the kinds
// as a batch's events come out: status changes, then readings, WQI results and alert
// transitions, each stream by seq.
const (
	partStatus = iota
	partReading
	partBackfill
	partWQI
	partAlert
)

// stageEvents stages events encoded in Go (a station back online) for publishAndCommit,
// ahead of the batch's data, and queues the alert transitions among them for
// notification.
func stageEvents(ctx context.Context, conn *pgx.Conn, evs []newEvent) error {
	if len(evs) == 0 {
		return nil
	}
	if err := queueNotifications(ctx, conn, evs); err != nil {
		return err
	}
	batch := &pgx.Batch{}
	queueStageEvents(batch, evs)
	if err := conn.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("stage events: %w", err)
	}
	return nil
}

// queueStageEvents queues the statement that stages evs, events encoded in Go, for
// publishAndCommit. It queues no notifications: readings and status events need none.
func queueStageEvents(batch *pgx.Batch, evs []newEvent) {
	n := len(evs)
	parts, ords, spans := make([]int16, n), make([]int64, n), make([]int32, n)
	times, types, data := make([]time.Time, n), make([]string, n), make([][]byte, n)
	for k, e := range evs {
		parts[k], ords[k], spans[k] = int16(e.part), e.ord, int32(max(e.span, 1))
		if e.ord == 0 {
			ords[k] = int64(k + 1)
		}
		// The data as bytes: a readings event is a few hundred KB, which a string would
		// copy once more on its way to the wire.
		times[k], types[k], data[k] = e.time, e.typ, e.data
	}
	batch.Queue(`INSERT INTO stage_events (part, ord, time, type, data, span)
		SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::timestamptz[], $4::text[], $5::json[], $6::int[])`,
		parts, ords, times, types, data, spans)
}

// publishAndCommit moves the staged events of station's batch into the events table, in
// order, and commits the transaction open on conn. The trigger on events takes the events
// lock, held until the transaction ends: everything before ran without it, and the COMMIT
// is sent in the same round trip, so that the lock is held for this one statement and the
// commit alone.
func publishAndCommit(ctx context.Context, conn *pgx.Conn, station string) error {
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO events (station_id, type, time, data, span)
		SELECT $1, type, time, data, span FROM stage_events ORDER BY part, ord, time`, station)
	batch.Queue("commit")
	br := conn.SendBatch(ctx, batch)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return fmt.Errorf("write events: %w", err)
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// The live messages of stored rows are built by PostgreSQL from the rows an INSERT
// returned, so that only new rows get one and the Go side encodes nothing per row. The
// expressions below produce, after the compaction every JSON encoder of ours applies
// (json.Marshal of a json.RawMessage), the bytes encoding/json makes of the query API's
// structs: the same keys in the same order, omitempty honoured, strings escaped alike,
// times in RFC 3339 with trailing zeros trimmed and numbers in Go's notation (see
// sqlJSONNumber for the one exception). They take column names, never input.

// sqlJSONString is a text column as a JSON string.
func sqlJSONString(col string) string { return `to_json(` + col + `::text)::text` }

// sqlJSONTime is a timestamptz column as time.Time's JSON: UTC with a Z, trailing zeros
// of the fraction trimmed (to_json of a timestamp trims them).
func sqlJSONTime(col string) string {
	return `(left(to_json(` + col + ` AT TIME ZONE 'UTC')::text, -1) || 'Z"')`
}

// sqlJSONNumber is a double precision column as encoding/json writes a float64. Both
// print the fewest digits that read back as the same number (the connection keeps
// extra_float_digits at 1) and differ in when they use an exponent: PostgreSQL below 1e-4
// and from 1e15, Go below 1e-6 and from 1e21, with e-7 where PostgreSQL has e-07. The
// exception: when that shortest decimal lies exactly on the boundary of the numbers that
// round to the value, Go takes it and PostgreSQL a longer one (7e+22 comes out as
// 7.0000000000000004e+22): other digits, the very same float64 once read.
func sqlJSONNumber(col string) string {
	t := col + `::text`
	return `(CASE WHEN strpos(` + t + `, 'e') = 0 THEN ` + t +
		` WHEN abs(` + col + `) >= '1e-6'::float8 AND abs(` + col + `) < '1e21'::float8 THEN ` + t + `::numeric::text` +
		` ELSE regexp_replace(` + t + `, 'e-0(\d)$', 'e-\1') END)`
}

// sqlJSONObject joins members built by sqlMember and sqlOptional into an object.
func sqlJSONObject(members ...string) string {
	var b strings.Builder
	b.WriteString(`('{' || `)
	for i, m := range members {
		if i > 0 {
			b.WriteString(` || `)
		}
		b.WriteString(m)
	}
	b.WriteString(` || '}')::json`)
	return b.String()
}

// sqlMember is the member "key": value, value being a JSON text expression; first says
// whether it opens the object (no comma).
func sqlMember(first bool, key, value string) string {
	sep := ","
	if first {
		sep = ""
	}
	return `'` + sep + `"` + key + `":' || ` + value
}

// sqlOptional is a member present only when cond holds (omitempty).
func sqlOptional(cond, key, value string) string {
	return `(CASE WHEN ` + cond + ` THEN ',"` + key + `":' || ` + value + ` ELSE '' END)`
}

// wqiJSON is the data of a WQI event: the query API's WQI point. encoding/json writes a
// map's keys in byte order, hence COLLATE "C".
var wqiJSON = sqlJSONObject(
	sqlMember(true, "seq", `seq::text`),
	sqlMember(false, "time", sqlJSONTime("time")),
	sqlMember(false, "wqi", sqlJSONNumber("wqi")),
	sqlMember(false, "class", sqlJSONString("class")),
	sqlMember(false, "category", sqlJSONString("category")),
	sqlMember(false, "partial", `partial::text`),
	sqlMember(false, "missing", `array_to_json(missing)::text`),
	sqlMember(false, "sub_indices", `(SELECT coalesce('{' || string_agg(`+sqlJSONString("k")+` || ':' || `+
		sqlJSONNumber("v")+`, ',' ORDER BY k COLLATE "C") || '}', '{}')
		FROM (SELECT key, value::float8 FROM jsonb_each_text(sub_indices)) AS e(k, v))`),
	sqlOptional(`do_saturation_pct IS NOT NULL`, "do_saturation_pct", sqlJSONNumber("do_saturation_pct")),
)

// alertJSON is the data of an alert event of a station's transition: the query API's
// Alert as the transition left it, and the transition (AlertChange); $1 is the station.
var alertJSON = sqlJSONObject(
	sqlMember(true, "id", `alert_id::text`),
	sqlMember(false, "station", sqlJSONString("$1")),
	sqlMember(false, "rule", sqlJSONString("rule")),
	sqlMember(false, "key", sqlJSONString("key")),
	sqlMember(false, "param", sqlJSONString("param")),
	sqlOptional(`sensor <> ''`, "sensor", sqlJSONString("sensor")),
	sqlMember(false, "severity", sqlJSONString("severity")),
	sqlMember(false, "state", sqlJSONString("state")),
	sqlMember(false, "opened_at", sqlJSONTime("opened_at")),
	sqlOptional(`acknowledged_at IS NOT NULL`, "acknowledged_at", sqlJSONTime("acknowledged_at")),
	sqlOptional(`acknowledged_by <> ''`, "acknowledged_by", sqlJSONString("acknowledged_by")),
	sqlMember(false, "resolved_at", `coalesce(`+sqlJSONTime("resolved_at")+`, 'null')`),
	sqlMember(false, "message", sqlJSONString("message")),
	sqlOptional(`value IS NOT NULL`, "value", sqlJSONNumber("value")),
	sqlOptional(`"limit" IS NOT NULL`, "limit", sqlJSONNumber(`"limit"`)),
	sqlMember(false, "origin", `'"`+OriginStation+`"'`),
	sqlMember(false, "updated_at", sqlJSONTime("time")),
	sqlMember(false, "transition", sqlJSONString("transition")),
)

// Microsecond precision, as PostgreSQL keeps times (pgx truncates): an event says what a
// query of the row would say.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// EventQuery selects events in id order.
type EventQuery struct {
	After    int64    // only ids above After
	Upto     int64    // only ids at most Upto; 0 for no bound
	Stations []string // only these stations; nil for every station
	Limit    int
}

// where selects the rows holding any of the events q selects: a row stands for the
// events id - span + 1 .. id.
func (q EventQuery) where() *where {
	var w where
	w.add("id > ?", q.After)
	if q.Upto > 0 {
		// The second bound lets the index stop: no row spans more than maxEventSpan ids.
		w.add("id - span < ?", q.Upto)
		w.add("id < ?", q.Upto+maxEventSpan)
	}
	if q.Stations != nil {
		w.add("station_id = ANY(?)", q.Stations)
	}
	return &w
}

// maxEventSpan bounds the events one row stands for (events_span_check).
const maxEventSpan = 10000

// Events lists events in id order, at most q.Limit of them. A row that stands for a
// batch's readings comes out as one reading event each, with the ids of its span; those
// outside (q.After, q.Upto] are left out.
func (s *Store) Events(ctx context.Context, q EventQuery) ([]Event, error) {
	rows, err := s.EventRows(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(rows))
	for _, e := range rows {
		if e.Type != EventReadings {
			out = append(out, e)
			continue
		}
		if out, err = appendReadingEvents(out, e, q); err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit] // the rest of a row comes with the next query after the last id
	}
	return out, nil
}

// EventRows lists the rows of the events table that hold the events q selects, in id
// order, at most q.Limit rows: a batch's readings are one event of type EventReadings
// (see Event.Span), whole, even when q's bounds fall inside it. The fan-out reads these
// and expands the rows its clients want (Event.Expand).
func (s *Store) EventRows(ctx context.Context, q EventQuery) ([]Event, error) {
	w := q.where()
	sql := `SELECT id, span, station_id, type, time, data, created_at FROM events` + w.String() +
		` ORDER BY id` + w.limit(q.Limit)
	var out []Event
	err := s.query(ctx, "events", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, sql, w.args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
			var e Event
			var data []byte
			err := row.Scan(&e.ID, &e.Span, &e.Station, &e.Type, &e.Time, &data, &e.CreatedAt)
			e.Data, e.Time, e.CreatedAt = data, e.Time.UTC(), e.CreatedAt.UTC()
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return out, nil
}

// appendReadingEvents appends the reading events a readings row e stands for, those q
// selects.
func appendReadingEvents(out []Event, e Event, q EventQuery) ([]Event, error) {
	elems, times, err := splitReadings(e.Data)
	if err != nil {
		return out, fmt.Errorf("event %d: %w", e.ID, err)
	}
	if int64(len(elems)) != max(e.Span, 1) {
		return out, fmt.Errorf("event %d: %d readings for a span of %d", e.ID, len(elems), e.Span)
	}
	out = slices.Grow(out, len(elems))
	first := e.First()
	for i, data := range elems {
		id := first + int64(i)
		if id <= q.After || (q.Upto > 0 && id > q.Upto) {
			continue
		}
		out = append(out, Event{ID: id, Station: e.Station, Type: EventReading, Time: times[i], Data: data, CreatedAt: e.CreatedAt, Span: 1})
	}
	return out, nil
}

// EventGap describes the events a query selects, counted up to its Limit.
type EventGap struct {
	Count        int       // events selected, at most the query's Limit
	FirstCreated time.Time // when the first of them was stored; zero when Count is 0
}

// Gap counts the events q selects (up to q.Limit) and says how old the first is, without
// reading them.
func (s *Store) Gap(ctx context.Context, q EventQuery) (EventGap, error) {
	w := q.where()
	upto := q.Upto
	if upto <= 0 {
		upto = math.MaxInt64
	}
	// Each row counts the ids of its span inside (After, Upto].
	inside := `least(id, ` + w.arg(upto) + `) - greatest(id - span, ` + w.arg(q.After) + `)`
	sql := `SELECT coalesce(sum(` + inside + `), 0), min(created_at)
		FROM (SELECT id, span, created_at FROM events` + w.String() + ` ORDER BY id` + w.limit(q.Limit) + `) g`
	var g EventGap
	err := s.query(ctx, "event gap", func(ctx context.Context) error {
		var first *time.Time
		var count int64
		if err := s.pool.QueryRow(ctx, sql, w.args...).Scan(&count, &first); err != nil {
			return err
		}
		g.Count = int(count)
		if q.Limit > 0 {
			g.Count = min(g.Count, q.Limit)
		}
		if first != nil {
			g.FirstCreated = first.UTC()
		}
		return nil
	})
	if err != nil {
		return EventGap{}, fmt.Errorf("event gap: %w", err)
	}
	return g, nil
}

// EventBounds returns the lowest and the highest event id in the events table (0, 0 when
// it is empty).
func (s *Store) EventBounds(ctx context.Context) (first, last int64, err error) {
	err = s.query(ctx, "event bounds", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT coalesce((SELECT id - span + 1 FROM events ORDER BY id LIMIT 1), 0),
			coalesce(max(id), 0) FROM events`).Scan(&first, &last)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("event bounds: %w", err)
	}
	return first, last, nil
}

// EventIDBefore returns the id of the newest event stored before t, or 0 when there is
// none: the events stored at or after t are those with higher ids.
func (s *Store) EventIDBefore(ctx context.Context, t time.Time) (int64, error) {
	var id int64
	err := s.query(ctx, "event before", func(ctx context.Context) error {
		// created_at follows id order. Look in widening windows before t, so that the
		// BRIN index reads only the blocks of a short stretch of time.
		for _, w := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 0} {
			var from any = t.Add(-w)
			if w == 0 {
				from = "-infinity"
			}
			err := s.pool.QueryRow(ctx, `SELECT id FROM events WHERE created_at < $1 AND created_at >= $2
				ORDER BY created_at DESC, id DESC LIMIT 1`, t, from).Scan(&id)
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		id = 0
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("event before %s: %w", t.Format(time.RFC3339), err)
	}
	return id, nil
}

// PruneEvents deletes the events stored before before, oldest first and in chunks so
// that no transaction grows large, and returns how many events it deleted.
func (s *Store) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	upto, err := s.EventIDBefore(ctx, before)
	if err != nil || upto == 0 {
		return 0, err
	}
	var total int64
	for {
		var rows, n int64
		err := s.query(ctx, "prune events", func(ctx context.Context) error {
			return s.pool.QueryRow(ctx, `WITH gone AS (DELETE FROM events WHERE id IN (
					SELECT id FROM events WHERE id <= $1 ORDER BY id LIMIT 10000) RETURNING span)
				SELECT count(*), coalesce(sum(span), 0) FROM gone`, upto).Scan(&rows, &n)
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("prune events: %w", err)
		}
		if rows < 10000 {
			return total, nil
		}
	}
}

// EventListener receives the notifications of new events on a dedicated connection
// (LISTEN ph_events). It is not safe for concurrent use: one goroutine owns it and
// closes it.
type EventListener struct {
	conn *pgx.Conn
}

// ListenEvents opens a connection of its own (not from the pool) and listens for new
// events on it.
func (s *Store) ListenEvents(ctx context.Context) (*EventListener, error) {
	return s.listen(ctx, EventsChannel)
}

// listen opens a connection of its own and listens on channel.
func (s *Store) listen(ctx context.Context, channel string) (*EventListener, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, wrapErr(fmt.Errorf("listen: connect: %w", err))
	}
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, wrapErr(fmt.Errorf("listen: %w", err))
	}
	return &EventListener{conn: conn}, nil
}

// ErrNoNotification: Wait's context ended before a notification came. The listener is
// still usable.
var ErrNoNotification = errors.New("no notification")

// Wait blocks until a notification arrives and returns the highest new event id it
// announces. When ctx ends first it returns an error matching ErrNoNotification and the
// listener stays usable; any other error means the connection is gone (Close it and
// listen again).
func (l *EventListener) Wait(ctx context.Context) (int64, error) {
	n, err := l.conn.WaitForNotification(ctx)
	if err != nil {
		if ctx.Err() != nil && !l.conn.IsClosed() {
			return 0, fmt.Errorf("%w: %w", ErrNoNotification, ctx.Err())
		}
		return 0, wrapErr(fmt.Errorf("wait for notification: %w", err))
	}
	id, err := strconv.ParseInt(n.Payload, 10, 64)
	if err != nil {
		// Someone else notified on the channel: no id to go by, so report "something new".
		return 0, nil
	}
	return id, nil
}

// Close closes the listener's connection.
func (l *EventListener) Close(ctx context.Context) error {
	return l.conn.Close(ctx)
}

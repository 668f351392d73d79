package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/shared/wire"
)

// Event types: the "type" of a live message (contract).
const (
	EventReading    = "reading"
	EventWQI        = "wqi"
	EventAlert      = "alert"
	EventPrediction = "prediction"
	EventStatus     = "status"
)

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
}

// AlertChange is the data of an alert event: the alert as the API shows it after the
// transition, and the transition.
type AlertChange struct {
	Alert
	Transition string `json:"transition"` // opened, acknowledged, escalated, resolved
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

// newEvent is an event to be written.
type newEvent struct {
	station string
	typ     string
	time    time.Time
	data    []byte
}

func makeEvent(station, typ string, at time.Time, v any) (newEvent, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return newEvent{}, fmt.Errorf("encode %s event: %w", typ, err)
	}
	return newEvent{station: station, typ: typ, time: at.UTC(), data: data}, nil
}

// writeEvents appends evs to the events table, in order. It must be the last statement
// of its transaction that writes events: the trigger takes the events lock, held until the
// transaction ends.
func writeEvents(ctx context.Context, tx pgx.Tx, evs []newEvent) error {
	if len(evs) == 0 {
		return nil
	}
	stations, types, times, data := make([]string, len(evs)), make([]string, len(evs)),
		make([]time.Time, len(evs)), make([]string, len(evs))
	for i, e := range evs {
		stations[i], types[i], times[i], data[i] = e.station, e.typ, e.time, string(e.data)
	}
	_, err := tx.Exec(ctx, `INSERT INTO events (station_id, type, time, data)
		SELECT s, t, at, d::json FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[])
			WITH ORDINALITY AS e(s, t, at, d, n)
		ORDER BY n`, stations, types, times, data)
	if err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	return nil
}

// Microsecond precision, as PostgreSQL keeps times (pgx truncates): an event says what a
// query of the row would say.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func readingEvents(station string, rs []wire.Reading, fresh []int64) ([]newEvent, error) {
	if len(fresh) == 0 {
		return nil, nil
	}
	isNew := make(map[int64]bool, len(fresh))
	for _, seq := range fresh {
		isNew[seq] = true
	}
	sorted := make([]*wire.Reading, 0, len(fresh))
	for i := range rs {
		if isNew[int64(rs[i].Seq)] {
			sorted = append(sorted, &rs[i])
			delete(isNew, int64(rs[i].Seq)) // a seq sent twice in one batch is stored once
		}
	}
	slices.SortFunc(sorted, func(a, b *wire.Reading) int { return cmpUint(a.Seq, b.Seq) })
	out := make([]newEvent, 0, len(sorted))
	for _, r := range sorted {
		at := dbTime(r.Time)
		ev, err := makeEvent(station, EventReading, at, Reading{
			Seq: r.Seq, Time: at, Param: r.Param, Value: r.Value, Unit: r.Unit, Quality: r.Quality,
			Source: r.Source, Sensor: r.Sensor, Flags: r.Flags,
		})
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

func wqiEvents(station string, ws []wire.WQIPoint, fresh []int64) ([]newEvent, error) {
	isNew := make(map[int64]bool, len(fresh))
	for _, seq := range fresh {
		isNew[seq] = true
	}
	var sorted []wire.WQIPoint
	for _, w := range ws {
		if isNew[int64(w.Seq)] {
			sorted = append(sorted, w)
			delete(isNew, int64(w.Seq))
		}
	}
	slices.SortFunc(sorted, func(a, b wire.WQIPoint) int { return cmpUint(a.Seq, b.Seq) })
	out := make([]newEvent, 0, len(sorted))
	for _, w := range sorted {
		w.Time = dbTime(w.Time)
		if w.Missing == nil {
			w.Missing = []string{}
		}
		if w.SubIndices == nil {
			w.SubIndices = map[string]float64{}
		}
		ev, err := makeEvent(station, EventWQI, w.Time, w)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

func alertEvents(station string, as []wire.AlertEvent, fresh []int64) ([]newEvent, error) {
	isNew := make(map[int64]bool, len(fresh))
	for _, seq := range fresh {
		isNew[seq] = true
	}
	var sorted []wire.AlertEvent
	for _, a := range as {
		if isNew[int64(a.Seq)] {
			sorted = append(sorted, a)
			delete(isNew, int64(a.Seq))
		}
	}
	slices.SortFunc(sorted, func(a, b wire.AlertEvent) int { return cmpUint(a.Seq, b.Seq) })
	out := make([]newEvent, 0, len(sorted))
	for _, a := range sorted {
		at := dbTime(a.Time)
		ev, err := makeEvent(station, EventAlert, at, AlertChange{Transition: a.Transition, Alert: Alert{
			ID: a.ID, Origin: OriginAgent, Station: station, Rule: a.Rule, Key: a.Key, Param: a.Param,
			Sensor: a.Sensor, Severity: a.Severity, State: a.State, OpenedAt: dbTime(a.OpenedAt),
			AcknowledgedAt: dbTimePtr(a.AcknowledgedAt), ResolvedAt: dbTimePtr(a.ResolvedAt),
			Message: a.Message, Value: a.Value, Limit: a.Limit, UpdatedAt: at,
		}})
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

func dbTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := dbTime(*t)
	return &v
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// EventQuery selects events in id order.
type EventQuery struct {
	After    int64    // only ids above After
	Upto     int64    // only ids at most Upto; 0 for no bound
	Stations []string // only these stations; nil for every station
	Limit    int
}

func (q EventQuery) where() *where {
	var w where
	w.add("id > ?", q.After)
	if q.Upto > 0 {
		w.add("id <= ?", q.Upto)
	}
	if q.Stations != nil {
		w.add("station_id = ANY(?)", q.Stations)
	}
	return &w
}

// Events lists events in id order.
func (s *Store) Events(ctx context.Context, q EventQuery) ([]Event, error) {
	w := q.where()
	sql := `SELECT id, station_id, type, time, data, created_at FROM events` + w.String() +
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
			err := row.Scan(&e.ID, &e.Station, &e.Type, &e.Time, &data, &e.CreatedAt)
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

// EventGap describes the events a query selects, counted up to its Limit.
type EventGap struct {
	Count        int       // events selected, at most the query's Limit
	FirstCreated time.Time // when the first of them was stored; zero when Count is 0
}

// Gap counts the events q selects (up to q.Limit) and says how old the first is, without
// reading them.
func (s *Store) Gap(ctx context.Context, q EventQuery) (EventGap, error) {
	w := q.where()
	sql := `SELECT count(*), min(created_at) FROM (SELECT created_at FROM events` + w.String() +
		` ORDER BY id` + w.limit(q.Limit) + `) g`
	var g EventGap
	err := s.query(ctx, "event gap", func(ctx context.Context) error {
		var first *time.Time
		if err := s.pool.QueryRow(ctx, sql, w.args...).Scan(&g.Count, &first); err != nil {
			return err
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

// EventBounds returns the lowest and the highest id in the events table (0, 0 when it is
// empty).
func (s *Store) EventBounds(ctx context.Context) (first, last int64, err error) {
	err = s.query(ctx, "event bounds", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM events`).Scan(&first, &last)
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
// that no transaction grows large, and returns how many it deleted.
func (s *Store) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	upto, err := s.EventIDBefore(ctx, before)
	if err != nil || upto == 0 {
		return 0, err
	}
	var total int64
	for {
		var n int64
		err := s.query(ctx, "prune events", func(ctx context.Context) error {
			tag, err := s.pool.Exec(ctx, `DELETE FROM events WHERE id IN (
				SELECT id FROM events WHERE id <= $1 ORDER BY id LIMIT 10000)`, upto)
			n = tag.RowsAffected()
			return err
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("prune events: %w", err)
		}
		if n < 10000 {
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
	cfg := s.pool.Config().ConnConfig.Copy()
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, wrapErr(fmt.Errorf("listen: connect: %w", err))
	}
	if _, err := conn.Exec(ctx, "LISTEN "+EventsChannel); err != nil {
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

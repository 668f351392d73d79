package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The notification outbox (0006_notify.sql). Every transaction that stores an alert
// transition queues it in notify_outbox: ingest for a station's transitions (a CTE of
// insertAlertsSQL over the rows actually inserted, so a transition received twice is
// queued once), and writeEvents and stageEvents for the cloud's own, whose alert events
// are built in Go: whatever alert transition is published live is notified. The methods
// below are the dispatcher's side (cloud/internal/notify): route queued transitions to
// channels, send what is due one stream (channel and station) at a time under the
// stream's row lock, report and prune.

// RuleNotifyFailing is the rule of the cloud alert opened on a station when its alert
// notifications to a channel keep failing. Its key is NotifyFailingKey(channel).
const RuleNotifyFailing = "notify_failing"

// NotifyFailingKey is the key of the notify_failing alert of channel.
func NotifyFailingKey(channel string) string { return RuleNotifyFailing + "/" + channel }

// NotifyWakeChannel is the PostgreSQL notification channel on which every commit that
// queued alert transitions wakes the dispatchers.
const NotifyWakeChannel = "ph_notify"

// Notification is an alert transition queued for notification.
type Notification struct {
	ID         int64  // its place in the outbox: ids grow as transitions are queued
	Station    string // the station the alert belongs to
	Origin     string // OriginStation or OriginCloud
	AlertID    uint64
	Transition string // opened, acknowledged, escalated, resolved
	Rule       string
	Key        string
	Severity   string
	Time       time.Time // when the transition happened
	QueuedAt   time.Time
	// Data is the alert after the transition with the transition (AlertChange), as its
	// live event carries it. RouteNotifications leaves it empty.
	Data json.RawMessage
}

// execer is a transaction or a connection in one.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// queueNotifications queues the alert transitions among evs, events built in Go (the
// cloud's own alerts), for notification, in the transaction that stores them
// (writeEvents and stageEvents call it).
func queueNotifications(ctx context.Context, db execer, evs []newEvent) error {
	var stations []string
	var times []time.Time
	var data []string
	for _, e := range evs {
		if e.typ == EventAlert {
			stations, times, data = append(stations, e.station), append(times, e.time), append(data, string(e.data))
		}
	}
	if len(data) == 0 {
		return nil
	}
	_, err := db.Exec(ctx, `INSERT INTO notify_outbox (station_id, origin, alert_id, transition, rule, key, severity, time, data)
		SELECT s, d->>'origin', (d->>'id')::bigint, d->>'transition', d->>'rule', d->>'key', d->>'severity', at, d
		FROM unnest($1::text[], $2::timestamptz[], $3::json[]) WITH ORDINALITY AS e(s, at, d, n)
		ORDER BY n`, stations, times, data)
	if err != nil {
		return fmt.Errorf("queue notifications: %w", err)
	}
	return nil
}

// RouteNotifications takes up to limit queued transitions that no dispatcher has routed
// yet, oldest first, asks route which channels each is for (route sees no Data), and
// records a pending delivery per channel, all in one transaction; it returns how many it
// routed. A (channel, station) stream seen for the first time is due at now, so the first
// transition of a quiet station goes out at once. Transitions another dispatcher is
// routing at the same moment are left to it.
func (s *Store) RouteNotifications(ctx context.Context, limit int, now time.Time, route func(Notification) []string) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("%w: route limit %d", ErrInvalid, limit)
	}
	now = dbTime(now)
	var routed int
	err := s.query(ctx, "route notifications", func(ctx context.Context) error {
		routed = 0
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT id, station_id, origin, alert_id, transition, rule, key, severity, time, created_at
				FROM notify_outbox WHERE routed_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
			if err != nil {
				return err
			}
			found, err := pgx.CollectRows(rows, scanNotification)
			if err != nil || len(found) == 0 {
				return err
			}
			ids := make([]int64, len(found))
			var channels, stations []string
			var outbox []int64
			for i, n := range found {
				ids[i] = n.ID
				for _, c := range route(n) {
					channels, stations, outbox = append(channels, c), append(stations, n.Station), append(outbox, n.ID)
				}
			}
			batch := &pgx.Batch{}
			batch.Queue(`INSERT INTO notify_deliveries (channel, outbox_id, station_id)
				SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[]) ON CONFLICT DO NOTHING`, channels, outbox, stations)
			// In key order, so that two dispatchers making the same new streams wait for
			// each other rather than deadlock.
			batch.Queue(`INSERT INTO notify_streams (channel, station_id, next_at)
				SELECT DISTINCT c, s, $3::timestamptz FROM unnest($1::text[], $2::text[]) AS u(c, s)
				ORDER BY c, s ON CONFLICT DO NOTHING`, channels, stations, now)
			batch.Queue(`UPDATE notify_outbox SET routed_at = $2 WHERE id = ANY($1)`, ids, now)
			if err := tx.SendBatch(ctx, batch).Close(); err != nil {
				return err
			}
			routed = len(found)
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("route notifications: %w", err)
	}
	return routed, nil
}

func scanNotification(row pgx.CollectableRow) (Notification, error) {
	var n Notification
	var id int64
	err := row.Scan(&n.ID, &n.Station, &n.Origin, &id, &n.Transition, &n.Rule, &n.Key, &n.Severity, &n.Time, &n.QueuedAt)
	n.AlertID, n.Time, n.QueuedAt = uint64(id), n.Time.UTC(), n.QueuedAt.UTC()
	return n, err
}

// NotifyClaim says which stream a dispatcher may take.
type NotifyClaim struct {
	Channels []string  // streams of these channels only
	Now      time.Time // streams due at or before Now
	Max      int       // at most this many transitions in one message
}

// NotifyMessage is one message to send: transitions of one station waiting for one
// channel.
type NotifyMessage struct {
	Channel string
	Station string
	// Number counts the stream's messages from 1. An attempt that failed is repeated with
	// the same Number and the same Notifications.
	Number int64
	// Failures is the number of consecutive failed attempts of the stream before this one.
	Failures int
	// FailingSince is when the first of them was made (zero when Failures is 0).
	FailingSince  time.Time
	Notifications []Notification // oldest first, with Data
}

// NotifyResult is how an attempt to send a NotifyMessage ended.
type NotifyResult struct {
	At     time.Time // when the attempt ended
	Err    error     // nil: delivered
	NextAt time.Time // the stream's next message not before (grouping window, or retry wait)
	// Failing, with Err, asks for the stream's notify_failing alert to be opened (once).
	Failing bool
}

// claimStreamSQL locks the due stream that has waited longest and has something to
// send ($1 channels, $2 now). Streams other dispatchers hold are skipped; a stream that
// one of them sent meanwhile is due later, which the lock's recheck of next_at sees.
const claimStreamSQL = `SELECT s.channel, s.station_id, s.messages, s.failures, s.failing_since, s.alert_id
	FROM notify_streams s
	WHERE s.channel = ANY($1) AND s.next_at <= $2
		AND EXISTS (SELECT 1 FROM notify_deliveries d
			WHERE d.channel = s.channel AND d.station_id = s.station_id AND d.state = 'pending')
	ORDER BY s.next_at
	LIMIT 1
	FOR UPDATE OF s SKIP LOCKED`

// The transitions of a stream's message, oldest first: those of the message begun
// before and not delivered (begunMessageSQL), or else up to $3 waiting ones, which become
// message $4 (newMessageSQL).
const (
	messageColumns = `o.id, o.station_id, o.origin, o.alert_id, o.transition, o.rule, o.key, o.severity,
		o.time, o.created_at, o.data`
	begunMessageSQL = `SELECT ` + messageColumns + ` FROM notify_deliveries d JOIN notify_outbox o ON o.id = d.outbox_id
		WHERE d.channel = $1 AND d.station_id = $2 AND d.state = 'pending' AND d.message IS NOT NULL
		ORDER BY o.id`
	newMessageSQL = `WITH pick AS (
			SELECT outbox_id FROM notify_deliveries
			WHERE channel = $1 AND station_id = $2 AND state = 'pending' AND message IS NULL
			ORDER BY outbox_id LIMIT $3
		), stamp AS (
			UPDATE notify_deliveries d SET message = $4 FROM pick
			WHERE d.channel = $1 AND d.outbox_id = pick.outbox_id
			RETURNING d.outbox_id
		)
		SELECT ` + messageColumns + ` FROM stamp JOIN notify_outbox o ON o.id = stamp.outbox_id
		ORDER BY o.id`
)

// DeliverNotification takes one due stream of the claim's channels, makes its message
// and calls send with it while it holds the stream's row lock, so that no other
// dispatcher sends the same stream meanwhile; then it records the result in the same
// transaction: delivered (the transitions are done, the stream's notify_failing alert
// resolved) or failed (counted, the next attempt at NextAt, the alert opened when asked).
// It reports whether it found a stream.
//
// send gets ctx and must return within its own deadline: one pooled connection stays in
// a transaction while it runs. When send fails because ctx ended (shutdown: its error is
// ctx's), nothing is recorded and the message goes again later; a failure the receiver
// answered is recorded even if ctx ended meanwhile. Should the database connection fail after
// a message was delivered, the message is sent again: receivers may see a message twice
// in that one case, with the same delivery number.
func (s *Store) DeliverNotification(ctx context.Context, c NotifyClaim, send func(context.Context, NotifyMessage) NotifyResult) (bool, error) {
	if c.Max <= 0 {
		return false, fmt.Errorf("%w: message size %d", ErrInvalid, c.Max)
	}
	found, err := s.deliverNotification(ctx, c, send)
	if err != nil {
		return found, fmt.Errorf("deliver notification: %w", wrapErr(err))
	}
	return found, nil
}

func (s *Store) deliverNotification(ctx context.Context, c NotifyClaim, send func(context.Context, NotifyMessage) NotifyResult) (bool, error) {
	qctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	tx, err := s.pool.Begin(qctx)
	if err != nil {
		return false, err
	}
	// The outcome of a send is recorded even when ctx ends meanwhile (a shutdown), so
	// that a delivered message is not sent again.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.QueryTimeout)
	defer rcancel()
	defer func() {
		if rerr := tx.Rollback(rctx); rerr != nil && !errors.Is(rerr, pgx.ErrTxClosed) {
			s.log.Debug("deliver notification: rollback", "err", rerr)
		}
	}()

	var (
		m       NotifyMessage
		since   *time.Time
		alertID *int64
	)
	err = tx.QueryRow(qctx, claimStreamSQL, c.Channels, dbTime(c.Now)).Scan(&m.Channel, &m.Station, &m.Number, &m.Failures, &since, &alertID)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim: %w", err)
	}
	if since != nil {
		m.FailingSince = since.UTC()
	}
	scan := func(row pgx.CollectableRow) (Notification, error) {
		var n Notification
		var id int64
		var data []byte
		err := row.Scan(&n.ID, &n.Station, &n.Origin, &id, &n.Transition, &n.Rule, &n.Key, &n.Severity, &n.Time, &n.QueuedAt, &data)
		n.AlertID, n.Time, n.QueuedAt, n.Data = uint64(id), n.Time.UTC(), n.QueuedAt.UTC(), data
		return n, err
	}
	rows, err := tx.Query(qctx, begunMessageSQL, m.Channel, m.Station)
	if err == nil {
		m.Notifications, err = pgx.CollectRows(rows, scan)
	}
	if err == nil && len(m.Notifications) == 0 {
		m.Number++
		rows, err = tx.Query(qctx, newMessageSQL, m.Channel, m.Station, c.Max, m.Number)
		if err == nil {
			m.Notifications, err = pgx.CollectRows(rows, scan)
		}
		if err == nil {
			_, err = tx.Exec(qctx, `UPDATE notify_streams SET messages = $3 WHERE channel = $1 AND station_id = $2`,
				m.Channel, m.Station, m.Number)
		}
	}
	if err != nil {
		return true, fmt.Errorf("message of %s to %s: %w", m.Station, m.Channel, err)
	}
	if len(m.Notifications) == 0 {
		return false, nil // given up (expired) since the claim looked: nothing to do now
	}

	res := send(ctx, m)
	if res.Err != nil && ctx.Err() != nil && errors.Is(res.Err, ctx.Err()) {
		return true, ctx.Err()
	}
	at := dbTime(res.At)
	var evs []newEvent
	if res.Err == nil {
		ids := make([]int64, len(m.Notifications))
		for i, n := range m.Notifications {
			ids[i] = n.ID
		}
		batch := &pgx.Batch{}
		batch.Queue(`UPDATE notify_deliveries SET state = 'delivered', done_at = $3
			WHERE channel = $1 AND outbox_id = ANY($2) AND state = 'pending'`, m.Channel, ids, at)
		batch.Queue(`UPDATE notify_streams SET sent_at = $3, next_at = $4, failures = 0, failing_since = NULL, alert_id = NULL
			WHERE channel = $1 AND station_id = $2`, m.Channel, m.Station, at, dbTime(res.NextAt))
		if err := tx.SendBatch(rctx, batch).Close(); err != nil {
			return true, fmt.Errorf("record delivery: %w", err)
		}
		if alertID != nil {
			if evs, err = resolveNotifyFailing(rctx, tx, m.Station, *alertID, at); err != nil {
				return true, err
			}
		}
	} else {
		failures := m.Failures + 1
		first := at
		if m.Failures > 0 {
			first = m.FailingSince
		}
		msg := cleanText(res.Err.Error(), maxErrorText)
		_, err := tx.Exec(rctx, `UPDATE notify_streams SET failures = $3, failing_since = $4, next_at = $5,
				last_error = $6, last_error_at = $7
			WHERE channel = $1 AND station_id = $2`, m.Channel, m.Station, failures, first, dbTime(res.NextAt), msg, at)
		if err != nil {
			return true, fmt.Errorf("record failure: %w", err)
		}
		if res.Failing && alertID == nil {
			text := fmt.Sprintf("alert notifications to channel %s are failing: %d attempts since %s, the last: %s",
				m.Channel, failures, first.Format(time.RFC3339), msg)
			if evs, err = openNotifyFailing(rctx, tx, m.Channel, m.Station, at, text); err != nil {
				return true, err
			}
		}
	}
	if err := writeEvents(rctx, tx, evs); err != nil {
		return true, err
	}
	if err := tx.Commit(rctx); err != nil {
		return true, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}

// maxErrorText bounds an error kept with a stream.
const maxErrorText = 500

// cleanText makes s storable as text and at most max bytes long: valid UTF-8 without NUL
// (PostgreSQL refuses both), cut at a rune boundary.
func cleanText(s string, max int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// openNotifyFailing opens the notify_failing alert of station for channel and records it
// on the stream; it returns the alert's event. A station removed meanwhile gets none.
func openNotifyFailing(ctx context.Context, tx pgx.Tx, channel, station string, at time.Time, msg string) ([]newEvent, error) {
	var id int64
	err := tx.QueryRow(ctx, `WITH a AS (
			INSERT INTO alerts (station_id, origin, alert_id, rule, key, param, sensor, severity,
				state, opened_at, message, updated_at, event_seq)
			SELECT $1, '`+OriginCloud+`', nextval('cloud_alert_ids'), $2, $3, '', '', 'warning', 'active', $4, $5, $4, 1
			WHERE EXISTS (SELECT 1 FROM stations WHERE id = $1)
			RETURNING alert_id)
		UPDATE notify_streams s SET alert_id = a.alert_id FROM a
		WHERE s.channel = $6 AND s.station_id = $1
		RETURNING a.alert_id`, station, RuleNotifyFailing, NotifyFailingKey(channel), at, msg, channel).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s alert of %s: %w", RuleNotifyFailing, station, err)
	}
	// Field by field rather than a composite literal: the fields are what the API shows,
	// however Alert groups them.
	var a Alert
	a.ID, a.Origin, a.Station, a.Rule, a.Key = uint64(id), OriginCloud, station, RuleNotifyFailing, NotifyFailingKey(channel)
	a.Severity, a.State, a.OpenedAt, a.Message, a.UpdatedAt = "warning", "active", at, msg, at
	ev, err := makeEvent(station, EventAlert, at, AlertChange{Alert: a, Transition: "opened"})
	if err != nil {
		return nil, err
	}
	return []newEvent{ev}, nil
}

// resolveNotifyFailing resolves station's notify_failing alert id (the caller clears it
// from the stream) and returns the alert's event; none when the alert is gone or resolved.
func resolveNotifyFailing(ctx context.Context, tx pgx.Tx, station string, id int64, at time.Time) ([]newEvent, error) {
	var a Alert
	err := tx.QueryRow(ctx, `UPDATE alerts a SET state = 'resolved', resolved_at = $3, updated_at = $3,
			event_seq = a.event_seq + 1
		WHERE station_id = $1 AND origin = '`+OriginCloud+`' AND alert_id = $2 AND state <> 'resolved'
		RETURNING key, message, severity, opened_at, acknowledged_at`, station, id, at).Scan(
		&a.Key, &a.Message, &a.Severity, &a.OpenedAt, &a.AcknowledgedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resolve %s alert of %s: %w", RuleNotifyFailing, station, err)
	}
	resolved := at
	utc(a.AcknowledgedAt)
	a.ID, a.Origin, a.Station, a.Rule = uint64(id), OriginCloud, station, RuleNotifyFailing
	a.State, a.OpenedAt, a.ResolvedAt, a.UpdatedAt = "resolved", a.OpenedAt.UTC(), &resolved, at
	ev, err := makeEvent(station, EventAlert, at, AlertChange{Alert: a, Transition: "resolved"})
	if err != nil {
		return nil, err
	}
	return []newEvent{ev}, nil
}

// NotifyStats is the state of the outbox, across all replicas.
type NotifyStats struct {
	Unrouted       int64     // transitions queued and not yet routed
	OldestUnrouted time.Time // when the oldest of them was queued; zero when none
	Channels       map[string]NotifyChannelStats
}

// NotifyChannelStats is the state of one channel's deliveries.
type NotifyChannelStats struct {
	Pending       int64     // transitions routed to the channel and not yet delivered
	OldestPending time.Time // when the oldest of them was queued; zero when none
	// Failures is the most consecutive failed attempts of any of the channel's streams
	// now (0: the last attempt of every stream went through).
	Failures     int
	FailingSince time.Time // when the longest failing stream began to fail; zero when none
	OpenAlerts   int       // notify_failing alerts open for the channel
	LastError    string    // the newest error of any attempt, kept after later successes
	LastErrorAt  time.Time
}

// NotificationStats reports the outbox and the given channels (absent channels have no
// deliveries yet).
func (s *Store) NotificationStats(ctx context.Context, channels []string) (NotifyStats, error) {
	var st NotifyStats
	err := s.query(ctx, "notification stats", func(ctx context.Context) error {
		st = NotifyStats{Channels: map[string]NotifyChannelStats{}}
		batch := &pgx.Batch{}
		batch.Queue(`SELECT count(*), min(created_at) FROM notify_outbox WHERE routed_at IS NULL`)
		batch.Queue(`SELECT d.channel, count(*), min(o.created_at)
			FROM notify_deliveries d JOIN notify_outbox o ON o.id = d.outbox_id
			WHERE d.state = 'pending' AND d.channel = ANY($1) GROUP BY d.channel`, channels)
		batch.Queue(`SELECT channel, max(failures), min(failing_since), count(alert_id),
				coalesce((array_agg(last_error ORDER BY last_error_at DESC) FILTER (WHERE last_error_at IS NOT NULL))[1], ''),
				max(last_error_at)
			FROM notify_streams WHERE channel = ANY($1) GROUP BY channel`, channels)
		br := s.pool.SendBatch(ctx, batch)
		defer br.Close()
		var oldest *time.Time
		if err := br.QueryRow().Scan(&st.Unrouted, &oldest); err != nil {
			return err
		}
		st.OldestUnrouted = zeroOr(oldest)
		rows, err := br.Query()
		if err != nil {
			return err
		}
		var (
			channel string
			pending int64
			first   time.Time
		)
		_, err = pgx.ForEachRow(rows, []any{&channel, &pending, &first}, func() error {
			c := st.Channels[channel]
			c.Pending, c.OldestPending = pending, first.UTC()
			st.Channels[channel] = c
			return nil
		})
		if err != nil {
			return err
		}
		rows, err = br.Query()
		if err != nil {
			return err
		}
		var (
			failures     int
			since, errAt *time.Time
			alerts       int
			lastError    string
		)
		_, err = pgx.ForEachRow(rows, []any{&channel, &failures, &since, &alerts, &lastError, &errAt}, func() error {
			c := st.Channels[channel]
			c.Failures, c.FailingSince, c.OpenAlerts = failures, zeroOr(since), alerts
			c.LastError, c.LastErrorAt = lastError, zeroOr(errAt)
			st.Channels[channel] = c
			return nil
		})
		return err
	})
	if err != nil {
		return NotifyStats{}, fmt.Errorf("notification stats: %w", err)
	}
	return st, nil
}

func zeroOr(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// NotifyPruned says what PruneNotifications did.
type NotifyPruned struct {
	// Expired counts deliveries given up, and transitions given up before any channel
	// was chosen for them (no dispatcher ran).
	Expired int64
	// Resolved counts notify_failing alerts resolved because their stream was left with
	// nothing to send.
	Resolved int
	Deleted  int64 // transitions deleted, with their deliveries
}

// pruneChunk bounds the rows one statement of PruneNotifications deletes.
const pruneChunk = 10000

// PruneNotifications gives up the transitions queued before expireBefore that are not
// delivered yet (or not even routed), resolves the notify_failing alerts of streams left
// with nothing to send, and deletes the transitions queued before deleteBefore that wait
// for nothing, with their deliveries; now stamps what it changes.
func (s *Store) PruneNotifications(ctx context.Context, expireBefore, deleteBefore, now time.Time) (NotifyPruned, error) {
	var p NotifyPruned
	now = dbTime(now)
	n, err := s.exec(ctx, "expire notifications", `UPDATE notify_deliveries d SET state = 'expired', done_at = $2
		FROM notify_outbox o WHERE o.id = d.outbox_id AND d.state = 'pending' AND o.created_at < $1`, expireBefore, now)
	p.Expired += n
	if err != nil {
		return p, err
	}
	n, err = s.exec(ctx, "expire notifications", `UPDATE notify_outbox SET routed_at = $2
		WHERE routed_at IS NULL AND created_at < $1`, expireBefore, now)
	p.Expired += n
	if err != nil {
		return p, err
	}
	err = s.query(ctx, "resolve idle notify_failing", func(ctx context.Context) error {
		p.Resolved = 0
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT s.channel, s.station_id, s.alert_id FROM notify_streams s
				WHERE s.alert_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM notify_deliveries d
					WHERE d.channel = s.channel AND d.station_id = s.station_id AND d.state = 'pending')
				ORDER BY s.channel, s.station_id
				FOR UPDATE OF s SKIP LOCKED`)
			if err != nil {
				return err
			}
			type idle struct {
				channel, station string
				alert            int64
			}
			found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (idle, error) {
				var x idle
				return x, row.Scan(&x.channel, &x.station, &x.alert)
			})
			if err != nil {
				return err
			}
			var evs []newEvent
			for _, x := range found {
				ev, err := resolveNotifyFailing(ctx, tx, x.station, x.alert, now)
				if err != nil {
					return err
				}
				evs = append(evs, ev...)
				if _, err := tx.Exec(ctx, `UPDATE notify_streams SET alert_id = NULL, failures = 0, failing_since = NULL
					WHERE channel = $1 AND station_id = $2`, x.channel, x.station); err != nil {
					return err
				}
			}
			p.Resolved = len(evs)
			return writeEvents(ctx, tx, evs)
		})
	})
	if err != nil {
		return p, fmt.Errorf("prune notifications: %w", err)
	}
	for {
		n, err := s.exec(ctx, "delete notifications", `DELETE FROM notify_outbox WHERE id IN (
			SELECT o.id FROM notify_outbox o
			WHERE o.created_at < $1 AND o.routed_at IS NOT NULL
				AND NOT EXISTS (SELECT 1 FROM notify_deliveries d WHERE d.outbox_id = o.id AND d.state = 'pending')
			ORDER BY o.id LIMIT $2)`, deleteBefore, pruneChunk)
		p.Deleted += n
		if err != nil {
			return p, err
		}
		if n < pruneChunk {
			return p, nil
		}
	}
}

// ListenNotifications opens a connection of its own (not from the pool) on which Wait
// returns (with 0) whenever a transaction that queued alert transitions has committed.
func (s *Store) ListenNotifications(ctx context.Context) (*EventListener, error) {
	return s.listen(ctx, NotifyWakeChannel)
}

package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/purehealth/purehealth/shared/wire"
)

// IngestResult says what a batch changed.
type IngestResult struct {
	Ack wire.Ack
	// New rows per stream; the rest of the batch was stored before.
	NewReadings, NewAlerts, NewWQI int64
	// NewHealth: the batch's health record is now the station's newest.
	NewHealth bool
}

// Ingest stores a validated batch of station exactly once: in one transaction, with
// duplicates of anything stored before ignored. The batch's Station must be station (the
// caller authenticated it). The ack holds, per stream, the highest seq in the batch (0 for
// a stream the batch does not carry): all of it is stored when Ingest returns nil.
//
// On a connection error the transaction is retried once; if the database stays out of
// reach the error matches ErrUnavailable and none of the batch is stored.
func (s *Store) Ingest(ctx context.Context, station string, b *wire.Batch) (IngestResult, error) {
	if b.Station != station {
		return IngestResult{}, fmt.Errorf("%w: batch of station %q sent for %q", ErrInvalid, b.Station, station)
	}
	if err := CheckBatch(b); err != nil {
		return IngestResult{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.IngestTimeout)
	defer cancel()

	if s.schema.Mode == ModePlain {
		times := make([]time.Time, len(b.Readings))
		for i, r := range b.Readings {
			times[i] = r.Time
		}
		if err := s.ensurePartitions(ctx, "measurements", times); err != nil {
			return IngestResult{}, fmt.Errorf("ingest: %w", err)
		}
		times = times[:0]
		for _, w := range b.WQI {
			times = append(times, w.Time)
		}
		if err := s.ensurePartitions(ctx, "wqi_readings", times); err != nil {
			return IngestResult{}, fmt.Errorf("ingest: %w", err)
		}
	}

	res := IngestResult{Ack: ackOf(b)}
	err := s.withRetry(ctx, "ingest", func(ctx context.Context) error {
		err := s.ingestOnce(ctx, station, b, &res, false)
		if isUniqueViolation(err) {
			// A concurrent batch of the station stored some of these readings first
			// (a replay racing its original): again, every reading checked.
			err = s.ingestOnce(ctx, station, b, &res, true)
		}
		return err
	})
	if err != nil {
		return IngestResult{}, fmt.Errorf("ingest: %w", err)
	}
	// Acknowledgements made in the cloud ride on the answer; the batch is stored whether or
	// not they can be read now, and the next answer carries them.
	if acks, err := s.PendingAcks(ctx, station); err != nil {
		s.log.Warn("ingest: pending acknowledgements not sent", "station", station, "err", err)
	} else {
		res.Ack.Acks = acks
	}
	return res, nil
}

func ackOf(b *wire.Batch) wire.Ack {
	var r, a, w uint64
	for _, x := range b.Readings {
		r = max(r, x.Seq)
	}
	for _, x := range b.Alerts {
		a = max(a, x.Seq)
	}
	for _, x := range b.WQI {
		w = max(w, x.Seq)
	}
	return wire.Ack{AckedSeq: r, Acked: map[string]uint64{"readings": r, "alerts": a, "wqi": w}}
}

// stagingDDL creates a connection's staging tables, once, when the pool opens the
// connection. ON COMMIT DELETE ROWS empties them at the end of every transaction that used
// them, and a rollback discards what a failed batch staged, so no batch sees another's
// rows. Creating them per batch (ON COMMIT DROP) costs catalog writes that took a third of
// a 500-reading batch's time and bloat the system catalogs at high batch rates.
// stage_events holds the batch's live events until publishAndCommit writes them. A
// batch's readings event is a few hundred KB of JSON: lz4, where the server has it,
// compresses it ten times faster than the default pglz, and the compressed value moves
// into events as it is, under the events lock.
const stagingDDL = `
CREATE TEMP TABLE IF NOT EXISTS stage_readings (
    time timestamptz, param text, value double precision, unit text, quality text,
    source text, seq bigint, sensor text, flags text[], sample_id text, lab text, method text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_wqi (
    time timestamptz, seq bigint, wqi double precision, class text, category text,
    partial boolean, missing text[], sub_indices jsonb, do_saturation_pct double precision
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_alerts (
    time timestamptz, seq bigint, alert_id bigint, transition text, rule text, key text,
    param text, sensor text, severity text, state text, opened_at timestamptz,
    acknowledged_at timestamptz, acknowledged_by text, resolved_at timestamptz, message text,
    value double precision, "limit" double precision
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_events (
    part smallint, ord bigint, time timestamptz, type text, data json, span integer NOT NULL DEFAULT 1
) ON COMMIT DELETE ROWS;
DO $$ BEGIN
    ALTER TABLE stage_events ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$;`

// ingestOnce makes one attempt at storing b: one transaction on one pooled connection.
// It runs the transaction itself rather than through pgx.Tx so that the statement
// publishing the batch's events can travel with the COMMIT (publishAndCommit).
//
// The readings are stored before the station's row lock is taken, all of them checked
// with checkAll, otherwise as the station's committed ranges read then say. No batch
// inserts readings while it holds the lock, so one that waits for the lock waits for a
// batch that waits for no readings. Two batches that insert the same readings wait for
// each other's keys only, in key order but for a seq repeated within a batch; such a
// cycle is a deadlock PostgreSQL breaks, and the transaction is retried.
func (s *Store) ingestOnce(ctx context.Context, station string, b *wire.Batch, res *IngestResult, checkAll bool) (err error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer pc.Release()
	conn := pc.Conn()
	// The ranges travel with the BEGIN.
	begin := &pgx.Batch{}
	begin.Queue("begin")
	var unlocked pgtype.Multirange[pgtype.Range[pgtype.Int8]]
	readRanges := !checkAll && len(b.Readings) > 0
	if readRanges {
		begin.Queue(`SELECT readings_committed FROM station_ingest WHERE station_id = $1`, station)
	}
	br := conn.SendBatch(ctx, begin)
	_, err = br.Exec()
	if err == nil && readRanges {
		if err = br.QueryRow().Scan(&unlocked); errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	defer func() {
		if err == nil || conn.IsClosed() || conn.PgConn().TxStatus() == 'I' {
			return
		}
		// When the rollback fails too, the pool drops the connection: it is still in a
		// transaction when released.
		if _, rerr := conn.Exec(ctx, "rollback"); rerr != nil {
			s.log.Debug("ingest: rollback", "err", rerr)
		}
	}()
	if err != nil {
		return err
	}
	var stored storedReadings
	if len(b.Readings) > 0 {
		ranges := seqRangesOf(unlocked)
		if checkAll {
			ranges = everySeq
		}
		if stored, err = s.storeReadings(ctx, conn, station, b.Readings, ranges); err != nil {
			return err
		}
	}
	publish, err := s.ingestTx(ctx, conn, station, b, stored, res)
	if err != nil {
		return err
	}
	if publish {
		return publishAndCommit(ctx, conn, station)
	}
	tag, err := conn.Exec(ctx, "commit")
	if err == nil && tag.String() == "ROLLBACK" {
		err = pgx.ErrTxCommitRollback
	}
	return err
}

// ingestTx stores b in the transaction open on conn, all but its readings, which stored
// holds (storeReadings), and its events, which it leaves staged; it reports whether there
// are any events to publish.
func (s *Store) ingestTx(ctx context.Context, conn *pgx.Conn, station string, b *wire.Batch, stored storedReadings, res *IngestResult) (publish bool, err error) {
	res.NewReadings, res.NewAlerts, res.NewWQI, res.NewHealth = 0, 0, 0, false
	ack := res.Ack.Acked
	// This statement takes the station's row lock, so that the rest of a station's
	// batches runs one after another (see station_ingest in 0001_core.sql). The second,
	// sent with it in one round trip and run after it, brings the station back online if
	// it was offline.
	now := dbTime(s.opts.Now())
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO station_ingest AS i
			(station_id, readings_seq, alerts_seq, wqi_seq, batches, last_batch_at, agent)
		VALUES ($1, $2, $3, $4, 1, now(), $5)
		ON CONFLICT (station_id) DO UPDATE SET
			readings_seq = greatest(i.readings_seq, EXCLUDED.readings_seq),
			alerts_seq = greatest(i.alerts_seq, EXCLUDED.alerts_seq),
			wqi_seq = greatest(i.wqi_seq, EXCLUDED.wqi_seq),
			batches = i.batches + 1, last_batch_at = now(), agent = EXCLUDED.agent
		RETURNING readings_committed`,
		station, int64(ack["readings"]), int64(ack["alerts"]), int64(ack["wqi"]), b.Agent)
	batch.Queue(backOnlineSQL, station, now)
	br := conn.SendBatch(ctx, batch)
	var committed pgtype.Multirange[pgtype.Range[pgtype.Int8]]
	if err := br.QueryRow().Scan(&committed); err != nil {
		br.Close()
		return false, fmt.Errorf("lock station: %w", err)
	}
	// A station that was offline is back first, then its data.
	status, err := backOnline(br.QueryRow(), station, now)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("back online: %w", cerr)
	}
	if err != nil {
		return false, err
	}
	if b.Health != nil {
		// After the station is back online, before its data: the fleet page learns of it
		// in that order.
		evs, err := storeHealth(ctx, conn, station, b.Health, now)
		if err != nil {
			return false, err
		}
		res.NewHealth = len(evs) > 0
		status = append(status, evs...)
	}
	if err := stageEvents(ctx, conn, status); err != nil {
		return false, err
	}
	if len(b.Readings) > 0 {
		if err := s.readingsBookkeeping(ctx, conn, station, b.Readings, stored, seqRangesOf(committed), res); err != nil {
			return false, err
		}
	}
	if len(b.WQI) > 0 {
		if err := s.ingestWQI(ctx, conn, station, b.WQI, s.opts.Now(), res); err != nil {
			return false, err
		}
	}
	if len(b.Alerts) > 0 {
		if err := ingestAlerts(ctx, conn, station, b.Alerts, res); err != nil {
			return false, err
		}
	}
	// Nothing new: no events, and no wait for the events lock.
	return len(status) > 0 || res.NewReadings+res.NewWQI+res.NewAlerts > 0, nil
}

// orNull is s, or NULL for "".
func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// insertWQISQL stores the staged WQI results that are new ($1 station, $2 received_at)
// and stages the events of those from $3 on; it returns the number of new rows, and the
// number and time span of those before $3.
var insertWQISQL = `WITH ins AS (
		INSERT INTO wqi_readings
			(time, station_id, seq, wqi, class, category, partial, missing, sub_indices, do_saturation_pct, received_at)
		SELECT time, $1, seq, wqi, class, category, partial, missing, sub_indices, do_saturation_pct, $2
		FROM stage_wqi ON CONFLICT DO NOTHING
		RETURNING seq, time, wqi, class, category, partial, missing, sub_indices, do_saturation_pct
	), staged AS (
		INSERT INTO stage_events (part, ord, time, type, data)
		SELECT ` + strconv.Itoa(partWQI) + `, seq, time, '` + EventWQI + `', ` + wqiJSON + ` FROM ins WHERE time >= $3
	)
	SELECT count(*), count(*) FILTER (WHERE time < $3), min(time) FILTER (WHERE time < $3),
		max(time) FILTER (WHERE time < $3) FROM ins`

// ingestWQI stores the new WQI results. Those younger than LiveMaxAge get a live event
// each; the older ones (a station's history after an outage) one backfill notice, as
// readings do: a dashboard fed every one of them would take an old index for the current
// one's news and fall behind.
func (s *Store) ingestWQI(ctx context.Context, conn *pgx.Conn, station string, ws []wire.WQIPoint, now time.Time, res *IngestResult) error {
	_, err := conn.CopyFrom(ctx, pgx.Identifier{"stage_wqi"},
		[]string{"time", "seq", "wqi", "class", "category", "partial", "missing", "sub_indices", "do_saturation_pct"},
		pgx.CopyFromSlice(len(ws), func(i int) ([]any, error) {
			w := &ws[i]
			sub := w.SubIndices
			if sub == nil {
				sub = map[string]float64{}
			}
			return []any{w.Time, int64(w.Seq), w.WQI, w.Class, w.Category, w.Partial, orEmpty(w.Missing), sub, w.DOSaturationPct}, nil
		}))
	if err != nil {
		return fmt.Errorf("copy wqi: %w", err)
	}
	var old BackfillSpan
	var from, to *time.Time
	if err := conn.QueryRow(ctx, insertWQISQL, station, now, s.liveCutoff(now)).Scan(&res.NewWQI, &old.WQI, &from, &to); err != nil {
		return fmt.Errorf("insert wqi: %w", err)
	}
	if old.WQI == 0 {
		return nil
	}
	old.From, old.To = from.UTC(), to.UTC()
	e, err := makeEvent(station, EventStatus, old.To, Backfill{Backfill: old})
	if err != nil {
		return err
	}
	e.part = partBackfill
	return stageEvents(ctx, conn, []newEvent{e})
}

// insertAlertsSQL stores the staged alert transitions that are new ($1 station), stages
// their events, updates the alerts' current rows and queues the new transitions for
// notification (notify.go); it returns the number of new transitions. The current row
// follows the newest transition received (by seq in the alerts stream), whatever order
// batches arrive in, with one exception: an acknowledgement made in the cloud that the
// station has not confirmed yet (ack_pending) keeps an active alert acknowledged. The
// first acknowledgement, wherever it was made, is the one kept.
var insertAlertsSQL = `WITH ins AS (
		INSERT INTO alert_events (time, station_id, seq, alert_id, transition, rule, key,
			param, sensor, severity, state, opened_at, acknowledged_at, acknowledged_by, resolved_at, message, value, "limit")
		SELECT time, $1, seq, alert_id, transition, rule, key, param, sensor, severity, state, opened_at,
			acknowledged_at, acknowledged_by, resolved_at, message, value, "limit"
		FROM stage_alerts ON CONFLICT DO NOTHING
		RETURNING time, seq, alert_id, transition, rule, key, param, sensor, severity, state, opened_at,
			acknowledged_at, acknowledged_by, resolved_at, message, value, "limit"
	), staged AS (
		INSERT INTO stage_events (part, ord, time, type, data)
		SELECT ` + strconv.Itoa(partAlert) + `, seq, time, '` + EventAlert + `', ` + alertJSON + ` FROM ins
	), current AS (
		INSERT INTO alerts AS a (station_id, alert_id, rule, key, param, sensor, severity,
			state, opened_at, acknowledged_at, acknowledged_by, resolved_at, message, value, "limit", updated_at, event_seq)
		SELECT DISTINCT ON (alert_id) $1, alert_id, rule, key, param, sensor, severity, state, opened_at,
			acknowledged_at, acknowledged_by, resolved_at, message, value, "limit", time, seq
		FROM stage_alerts ORDER BY alert_id, seq DESC
		ON CONFLICT (station_id, origin, alert_id) DO UPDATE SET
			rule = EXCLUDED.rule, key = EXCLUDED.key, param = EXCLUDED.param, sensor = EXCLUDED.sensor,
			severity = EXCLUDED.severity, opened_at = EXCLUDED.opened_at,
			state = CASE WHEN a.ack_pending AND EXCLUDED.state = 'active' THEN 'acknowledged' ELSE EXCLUDED.state END,
			acknowledged_at = CASE WHEN a.acknowledged_at IS NOT NULL AND
				(EXCLUDED.acknowledged_at IS NULL OR a.acknowledged_at <= EXCLUDED.acknowledged_at)
				THEN a.acknowledged_at ELSE EXCLUDED.acknowledged_at END,
			acknowledged_by = CASE WHEN a.acknowledged_at IS NOT NULL AND
				(EXCLUDED.acknowledged_at IS NULL OR a.acknowledged_at <= EXCLUDED.acknowledged_at)
				THEN a.acknowledged_by ELSE EXCLUDED.acknowledged_by END,
			ack_pending = a.ack_pending AND EXCLUDED.state = 'active',
			resolved_at = EXCLUDED.resolved_at,
			message = EXCLUDED.message, value = EXCLUDED.value, "limit" = EXCLUDED."limit",
			updated_at = EXCLUDED.updated_at, event_seq = EXCLUDED.event_seq
		WHERE a.event_seq < EXCLUDED.event_seq
	), notify AS (
		INSERT INTO notify_outbox (station_id, origin, alert_id, transition, rule, key, severity, time, data)
		SELECT $1, '` + OriginStation + `', alert_id, transition, rule, key, severity, time, ` + alertJSON + `
		FROM ins ORDER BY seq
	)
	SELECT count(*) FROM ins`

// ingestAlerts stores the new alert transitions and their events, and updates the
// alerts' current rows.
func ingestAlerts(ctx context.Context, conn *pgx.Conn, station string, as []wire.AlertEvent, res *IngestResult) error {
	_, err := conn.CopyFrom(ctx, pgx.Identifier{"stage_alerts"},
		[]string{"time", "seq", "alert_id", "transition", "rule", "key", "param", "sensor", "severity",
			"state", "opened_at", "acknowledged_at", "acknowledged_by", "resolved_at", "message", "value", "limit"},
		pgx.CopyFromSlice(len(as), func(i int) ([]any, error) {
			a := &as[i]
			return []any{a.Time, int64(a.Seq), int64(a.ID), a.Transition, a.Rule, a.Key, a.Param, a.Sensor,
				a.Severity, a.State, a.OpenedAt, a.AcknowledgedAt, a.AcknowledgedBy, a.ResolvedAt, a.Message, a.Value, a.Limit}, nil
		}))
	if err != nil {
		return fmt.Errorf("copy alerts: %w", err)
	}
	if err := conn.QueryRow(ctx, insertAlertsSQL, station).Scan(&res.NewAlerts); err != nil {
		return fmt.Errorf("insert alert events: %w", err)
	}
	return nil
}

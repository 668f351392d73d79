package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/shared/wire"
)

// IngestResult says what a batch changed.
type IngestResult struct {
	Ack wire.Ack
	// New rows per stream; the rest of the batch was stored before.
	NewReadings, NewAlerts, NewWQI int64
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
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			return s.ingestTx(ctx, tx, station, b, &res)
		})
	})
	if err != nil {
		return IngestResult{}, fmt.Errorf("ingest: %w", err)
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
const stagingDDL = `
CREATE TEMP TABLE IF NOT EXISTS stage_readings (
    time timestamptz, param text, value double precision, unit text, quality text,
    source text, seq bigint, sensor text, flags text[]
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_touched (bucket timestamptz, param text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_wqi (
    time timestamptz, seq bigint, wqi double precision, class text, category text,
    partial boolean, missing text[], sub_indices jsonb, do_saturation_pct double precision
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_alerts (
    time timestamptz, seq bigint, alert_id bigint, transition text, rule text, key text,
    param text, sensor text, severity text, state text, opened_at timestamptz,
    acknowledged_at timestamptz, resolved_at timestamptz, message text,
    value double precision, "limit" double precision
) ON COMMIT DELETE ROWS;`

func (s *Store) ingestTx(ctx context.Context, tx pgx.Tx, station string, b *wire.Batch, res *IngestResult) error {
	res.NewReadings, res.NewAlerts, res.NewWQI = 0, 0, 0
	ack := res.Ack.Acked
	// First statement: it takes the station's row lock, so this station's batches run one
	// after another (see station_ingest in 0001_core.sql). The second, sent with it in one
	// round trip and run after it, brings the station back online if it was offline.
	now := dbTime(s.opts.Now())
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO station_ingest AS i
			(station_id, readings_seq, alerts_seq, wqi_seq, batches, last_batch_at, agent)
		VALUES ($1, $2, $3, $4, 1, now(), $5)
		ON CONFLICT (station_id) DO UPDATE SET
			readings_seq = greatest(i.readings_seq, EXCLUDED.readings_seq),
			alerts_seq = greatest(i.alerts_seq, EXCLUDED.alerts_seq),
			wqi_seq = greatest(i.wqi_seq, EXCLUDED.wqi_seq),
			batches = i.batches + 1, last_batch_at = now(), agent = EXCLUDED.agent`,
		station, int64(ack["readings"]), int64(ack["alerts"]), int64(ack["wqi"]), b.Agent)
	batch.Queue(backOnlineSQL, station, now)
	br := tx.SendBatch(ctx, batch)
	_, err := br.Exec()
	if err != nil {
		br.Close()
		return fmt.Errorf("lock station: %w", err)
	}
	// Live events of what is new, written last (see writeEvents): a station that was
	// offline is back first, then its data.
	evs, err := backOnline(br.QueryRow(), station, now)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("back online: %w", cerr)
	}
	if err != nil {
		return err
	}
	if len(b.Readings) > 0 {
		fresh, err := s.ingestReadings(ctx, tx, station, b.Readings, res)
		if err != nil {
			return err
		}
		more, err := readingEvents(station, b.Readings, fresh)
		if err != nil {
			return err
		}
		evs = append(evs, more...)
	}
	if len(b.WQI) > 0 {
		fresh, err := ingestWQI(ctx, tx, station, b.WQI, s.opts.Now(), res)
		if err != nil {
			return err
		}
		more, err := wqiEvents(station, b.WQI, fresh)
		if err != nil {
			return err
		}
		evs = append(evs, more...)
	}
	if len(b.Alerts) > 0 {
		fresh, err := ingestAlerts(ctx, tx, station, b.Alerts, res)
		if err != nil {
			return err
		}
		more, err := alertEvents(station, b.Alerts, fresh)
		if err != nil {
			return err
		}
		evs = append(evs, more...)
	}
	return writeEvents(ctx, tx, evs)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ingestReadings stores the new readings and returns their seqs.
func (s *Store) ingestReadings(ctx context.Context, tx pgx.Tx, station string, rs []wire.Reading, res *IngestResult) ([]int64, error) {
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"stage_readings"},
		[]string{"time", "param", "value", "unit", "quality", "source", "seq", "sensor", "flags"},
		pgx.CopyFromSlice(len(rs), func(i int) ([]any, error) {
			r := &rs[i]
			return []any{r.Time, r.Param, r.Value, r.Unit, r.Quality, r.Source, int64(r.Seq), r.Sensor, orEmpty(r.Flags)}, nil
		}))
	if err != nil {
		return nil, fmt.Errorf("copy readings: %w", err)
	}
	// The rows that are new, and the hours of their usable values: only those rollup
	// buckets change.
	rows, err := tx.Query(ctx, `WITH ins AS (
			INSERT INTO measurements (time, station_id, param, value, unit, quality, source, seq, sensor, flags, received_at)
			SELECT time, $1, param, value, unit, quality, source, seq, sensor, flags, $2 FROM stage_readings
			ON CONFLICT DO NOTHING
			RETURNING time, param, quality, seq
		), touched AS (
			INSERT INTO stage_touched (bucket, param)
			SELECT DISTINCT date_trunc('hour', time, 'UTC'), param FROM ins WHERE quality <> 'bad'
		)
		SELECT seq FROM ins`, station, s.opts.Now())
	var fresh []int64
	if err == nil {
		fresh, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	if err != nil {
		return nil, fmt.Errorf("insert readings: %w", err)
	}
	res.NewReadings = int64(len(fresh))
	if res.NewReadings == 0 {
		return nil, nil
	}
	if s.schema.Mode == ModePlain {
		if err := updateRollups(ctx, tx, station); err != nil {
			return nil, err
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO station_latest AS l
			(station_id, param, source, time, value, unit, quality, sensor, seq)
		SELECT DISTINCT ON (param, source) $1, param, source, time, value, unit, quality, sensor, seq
		FROM stage_readings WHERE quality <> 'bad'
		ORDER BY param, source, time DESC, seq DESC
		ON CONFLICT (station_id, param, source) DO UPDATE SET
			time = EXCLUDED.time, value = EXCLUDED.value, unit = EXCLUDED.unit,
			quality = EXCLUDED.quality, sensor = EXCLUDED.sensor, seq = EXCLUDED.seq
		WHERE (l.time, l.seq) < (EXCLUDED.time, EXCLUDED.seq)`, station)
	if err != nil {
		return nil, fmt.Errorf("latest values: %w", err)
	}
	return fresh, nil
}

// updateRollups recomputes the hourly buckets in stage_touched from the raw rows, then
// their days from the hourly rows (a count-weighted mean of the hourly means). The
// station's row lock makes this safe: no other transaction adds rows of this station
// between the insert and the recompute.
func updateRollups(ctx context.Context, tx pgx.Tx, station string) error {
	// LATERAL makes each bucket one index range scan whatever the planner believes about
	// the size of a fresh partition.
	_, err := tx.Exec(ctx, `INSERT INTO measurements_hourly AS h (bucket, station_id, param, avg, min, max, count)
		SELECT t.bucket, $1, t.param, a.avg, a.min, a.max, a.count
		FROM stage_touched t CROSS JOIN LATERAL (
			SELECT avg(m.value) AS avg, min(m.value) AS min, max(m.value) AS max, count(*) AS count
			FROM measurements m
			WHERE m.station_id = $1 AND m.param = t.param AND m.quality <> 'bad'
				AND m.time >= t.bucket AND m.time < t.bucket + INTERVAL '1 hour'
		) a
		WHERE a.count > 0
		ON CONFLICT (station_id, param, bucket) DO UPDATE SET
			avg = EXCLUDED.avg, min = EXCLUDED.min, max = EXCLUDED.max, count = EXCLUDED.count`, station)
	if err != nil {
		return fmt.Errorf("hourly rollup: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO measurements_daily AS d (bucket, station_id, param, avg, min, max, count)
		SELECT t.bucket, $1, t.param, a.avg, a.min, a.max, a.count
		FROM (SELECT DISTINCT date_trunc('day', bucket, 'UTC') AS bucket, param FROM stage_touched) t
		CROSS JOIN LATERAL (
			SELECT sum(h.avg * h.count) / sum(h.count)::double precision AS avg,
				min(h.min) AS min, max(h.max) AS max, sum(h.count)::bigint AS count
			FROM measurements_hourly h
			WHERE h.station_id = $1 AND h.param = t.param
				AND h.bucket >= t.bucket AND h.bucket < t.bucket + INTERVAL '1 day'
		) a
		WHERE a.count > 0
		ON CONFLICT (station_id, param, bucket) DO UPDATE SET
			avg = EXCLUDED.avg, min = EXCLUDED.min, max = EXCLUDED.max, count = EXCLUDED.count`, station)
	if err != nil {
		return fmt.Errorf("daily rollup: %w", err)
	}
	return nil
}

// ingestWQI stores the new WQI results and returns their seqs.
func ingestWQI(ctx context.Context, tx pgx.Tx, station string, ws []wire.WQIPoint, now time.Time, res *IngestResult) ([]int64, error) {
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"stage_wqi"},
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
		return nil, fmt.Errorf("copy wqi: %w", err)
	}
	rows, err := tx.Query(ctx, `INSERT INTO wqi_readings
			(time, station_id, seq, wqi, class, category, partial, missing, sub_indices, do_saturation_pct, received_at)
		SELECT time, $1, seq, wqi, class, category, partial, missing, sub_indices, do_saturation_pct, $2
		FROM stage_wqi ON CONFLICT DO NOTHING RETURNING seq`, station, now)
	var fresh []int64
	if err == nil {
		fresh, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	if err != nil {
		return nil, fmt.Errorf("insert wqi: %w", err)
	}
	res.NewWQI = int64(len(fresh))
	return fresh, nil
}

// ingestAlerts stores the new alert transitions, updates the alerts' current rows and
// returns the new transitions' seqs.
func ingestAlerts(ctx context.Context, tx pgx.Tx, station string, as []wire.AlertEvent, res *IngestResult) ([]int64, error) {
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"stage_alerts"},
		[]string{"time", "seq", "alert_id", "transition", "rule", "key", "param", "sensor", "severity",
			"state", "opened_at", "acknowledged_at", "resolved_at", "message", "value", "limit"},
		pgx.CopyFromSlice(len(as), func(i int) ([]any, error) {
			a := &as[i]
			return []any{a.Time, int64(a.Seq), int64(a.ID), a.Transition, a.Rule, a.Key, a.Param, a.Sensor,
				a.Severity, a.State, a.OpenedAt, a.AcknowledgedAt, a.ResolvedAt, a.Message, a.Value, a.Limit}, nil
		}))
	if err != nil {
		return nil, fmt.Errorf("copy alerts: %w", err)
	}
	rows, err := tx.Query(ctx, `INSERT INTO alert_events (time, station_id, seq, alert_id, transition, rule, key,
			param, sensor, severity, state, opened_at, acknowledged_at, resolved_at, message, value, "limit")
		SELECT time, $1, seq, alert_id, transition, rule, key, param, sensor, severity, state, opened_at,
			acknowledged_at, resolved_at, message, value, "limit"
		FROM stage_alerts ON CONFLICT DO NOTHING RETURNING seq`, station)
	var fresh []int64
	if err == nil {
		fresh, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	if err != nil {
		return nil, fmt.Errorf("insert alert events: %w", err)
	}
	res.NewAlerts = int64(len(fresh))
	// The current row follows the newest transition received (by seq in the alerts
	// stream), whatever order batches arrive in.
	_, err = tx.Exec(ctx, `INSERT INTO alerts AS a (station_id, alert_id, rule, key, param, sensor, severity,
			state, opened_at, acknowledged_at, resolved_at, message, value, "limit", updated_at, event_seq)
		SELECT DISTINCT ON (alert_id) $1, alert_id, rule, key, param, sensor, severity, state, opened_at,
			acknowledged_at, resolved_at, message, value, "limit", time, seq
		FROM stage_alerts ORDER BY alert_id, seq DESC
		ON CONFLICT (station_id, origin, alert_id) DO UPDATE SET
			rule = EXCLUDED.rule, key = EXCLUDED.key, param = EXCLUDED.param, sensor = EXCLUDED.sensor,
			severity = EXCLUDED.severity, state = EXCLUDED.state, opened_at = EXCLUDED.opened_at,
			acknowledged_at = EXCLUDED.acknowledged_at, resolved_at = EXCLUDED.resolved_at,
			message = EXCLUDED.message, value = EXCLUDED.value, "limit" = EXCLUDED."limit",
			updated_at = EXCLUDED.updated_at, event_seq = EXCLUDED.event_seq
		WHERE a.event_seq < EXCLUDED.event_seq`, station)
	if err != nil {
		return nil, fmt.Errorf("update alerts: %w", err)
	}
	return fresh, nil
}

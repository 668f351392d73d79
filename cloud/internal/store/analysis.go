package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// WQISeries is the series name of a station's own water quality index in SeriesQuery
// results and forecasts.
const WQISeries = "wqi"

// SeriesQuery selects what the analytics jobs (forecasts, anomaly detection) read of some
// stations: weeks of history per parameter, cheaply. Hours before RawFrom come from the
// hourly rollup, so that a round reads one row per hour of each parameter however fast
// the probes report; hours from RawFrom on are the readings themselves, so that the
// recent past is judged on exactly the readings of the wanted qualities.
type SeriesQuery struct {
	Stations []string
	// From is the first hour; RawFrom the first hour of readings (both truncated to the
	// hour); To the end (excluded).
	From, RawFrom, To time.Time
	// Qualities are those of the readings from RawFrom on. The rollup before it holds
	// the usable ones (good and suspect) whatever Qualities says.
	Qualities []telemetry.Quality
	// WQI adds each station's own WQI as the series WQISeries (its readings count as good:
	// the agent computes the index from good readings only).
	WQI bool
}

// HourValue is one hour of a series from the rollup: the mean of its usable readings.
type HourValue struct {
	Hour  time.Time
	Mean  float64
	Count int64
}

// SeriesPoint is one reading.
type SeriesPoint struct {
	Time    time.Time
	Value   float64
	Quality telemetry.Quality
}

// Series is one station's parameter over a SeriesQuery: Hourly covers [From, RawFrom),
// Readings [RawFrom, To), each in time order.
type Series struct {
	Station  string
	Param    string
	Hourly   []HourValue
	Readings []SeriesPoint
}

// AnalysisSeries reads the series of q's stations, ordered by station and parameter. A
// parameter with neither hours nor readings in the span has no Series.
func (s *Store) AnalysisSeries(ctx context.Context, q SeriesQuery) ([]Series, error) {
	from, raw, to := q.From.UTC().Truncate(time.Hour), q.RawFrom.UTC().Truncate(time.Hour), q.To.UTC()
	if raw.Before(from) || to.Before(raw) || len(q.Stations) == 0 {
		return nil, fmt.Errorf("%w: series query from %s, raw from %s, to %s, %d stations", ErrInvalid,
			from.Format(time.RFC3339), raw.Format(time.RFC3339), to.Format(time.RFC3339), len(q.Stations))
	}
	qualities := make([]string, len(q.Qualities))
	for i, ql := range q.Qualities {
		qualities[i] = string(ql)
	}
	type key struct{ station, param string }
	byKey := map[key]*Series{}
	var order []key
	get := func(station, param string) *Series {
		k := key{station, param}
		if sr := byKey[k]; sr != nil {
			return sr
		}
		sr := &Series{Station: station, Param: param}
		byKey[k] = sr
		order = append(order, k)
		return sr
	}
	hourlySQL := `SELECT station_id, param, bucket, avg, count FROM measurements_hourly
		WHERE station_id = ANY($1) AND bucket >= $2 AND bucket < $3 ORDER BY station_id, param, bucket`
	rawSQL := `SELECT station_id, param, time, value, quality FROM measurements
		WHERE station_id = ANY($1) AND time >= $2 AND time < $3 AND quality = ANY($4)
		ORDER BY station_id, param, time`
	wqiHourlySQL := `SELECT station_id, date_trunc('hour', time) AS hour, avg(wqi), count(*) FROM wqi_readings
		WHERE station_id = ANY($1) AND time >= $2 AND time < $3 GROUP BY station_id, hour ORDER BY station_id, hour`
	wqiRawSQL := `SELECT station_id, time, wqi FROM wqi_readings
		WHERE station_id = ANY($1) AND time >= $2 AND time < $3 ORDER BY station_id, time`
	err := s.query(ctx, "analysis series", func(ctx context.Context) error {
		clear(byKey)
		order = order[:0]
		batch := &pgx.Batch{}
		batch.Queue(hourlySQL, q.Stations, from, raw).Query(func(rows pgx.Rows) error {
			var station, param string
			var h HourValue
			_, err := pgx.ForEachRow(rows, []any{&station, &param, &h.Hour, &h.Mean, &h.Count}, func() error {
				h.Hour = h.Hour.UTC()
				sr := get(station, param)
				sr.Hourly = append(sr.Hourly, h)
				return nil
			})
			return err
		})
		batch.Queue(rawSQL, q.Stations, raw, to, qualities).Query(func(rows pgx.Rows) error {
			var station, param, quality string
			var p SeriesPoint
			_, err := pgx.ForEachRow(rows, []any{&station, &param, &p.Time, &p.Value, &quality}, func() error {
				p.Time, p.Quality = p.Time.UTC(), telemetry.Quality(quality)
				sr := get(station, param)
				sr.Readings = append(sr.Readings, p)
				return nil
			})
			return err
		})
		if q.WQI {
			batch.Queue(wqiHourlySQL, q.Stations, from, raw).Query(func(rows pgx.Rows) error {
				var station string
				var h HourValue
				_, err := pgx.ForEachRow(rows, []any{&station, &h.Hour, &h.Mean, &h.Count}, func() error {
					h.Hour = h.Hour.UTC()
					sr := get(station, WQISeries)
					sr.Hourly = append(sr.Hourly, h)
					return nil
				})
				return err
			})
			batch.Queue(wqiRawSQL, q.Stations, raw, to).Query(func(rows pgx.Rows) error {
				var station string
				p := SeriesPoint{Quality: telemetry.Good}
				_, err := pgx.ForEachRow(rows, []any{&station, &p.Time, &p.Value}, func() error {
					p.Time = p.Time.UTC()
					sr := get(station, WQISeries)
					sr.Readings = append(sr.Readings, p)
					return nil
				})
				return err
			})
		}
		return s.pool.SendBatch(ctx, batch).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("analysis series: %w", err)
	}
	out := make([]Series, 0, len(order))
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	// Readings may add series the rollup lacked: order once.
	slices.SortFunc(out, func(a, b Series) int { return cmp.Or(cmp.Compare(a.Station, b.Station), cmp.Compare(a.Param, b.Param)) })
	return out, nil
}

// ErrBusy: another holder (this or another replica) has the lock RunExclusive asked for.
var ErrBusy = errors.New("held by another replica")

// RunExclusive runs fn while it holds the session-level advisory lock named name on a
// connection of its own, so that of several replicas running the same periodic job only
// one runs a round at a time. When another holds it, fn does not run and the error
// matches ErrBusy. The lock goes with the connection when the connection fails.
func (s *Store) RunExclusive(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	h := fnv.New64a()
	h.Write([]byte("ph-job:" + name))
	key := int64(h.Sum64())
	actx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	conn, err := s.pool.Acquire(actx)
	if err != nil {
		return fmt.Errorf("%s: lock: %w", name, wrapErr(err))
	}
	defer conn.Release()
	var mine bool
	if err := conn.QueryRow(actx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&mine); err != nil {
		return fmt.Errorf("%s: lock: %w", name, wrapErr(err))
	}
	if !mine {
		return fmt.Errorf("%s: %w", name, ErrBusy)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.QueryTimeout)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
			// A connection that cannot unlock must not go back to the pool holding it.
			conn.Conn().Close(uctx)
		}
	}()
	return fn(ctx)
}

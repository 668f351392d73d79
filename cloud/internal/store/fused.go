package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/cloud/internal/fusion"
)

// StoreFusedWQI records the station's fused WQI and announces it (a live event of type
// wqi whose data is w's JSON, with "source": "fused"), in one transaction, unless it says
// the same as the station's latest fused WQI (fusion.Same): then it stores nothing and
// reports false. A station keeps one result per time: a different one computed at the
// same instant replaces it.
func (s *Store) StoreFusedWQI(ctx context.Context, station string, w fusion.WQI) (bool, error) {
	w.Time = dbTime(w.Time)
	inputs, err := json.Marshal(w.Inputs)
	if err != nil {
		return false, fmt.Errorf("encode fused inputs: %w", err)
	}
	sub := map[string]float64{}
	for p, v := range w.Result.SubIndices {
		sub[string(p)] = v
	}
	missing := make([]string, len(w.Result.Missing))
	for i, m := range w.Result.Missing {
		missing[i] = string(m)
	}
	var sat *float64
	if _, ok := w.Result.SubIndices["do"]; ok {
		sat = &w.Result.DOSaturationPct
	}
	ev, err := makeEvent(station, EventWQI, w.Time, w)
	if err != nil {
		return false, err
	}
	data := ev.data
	stored := false
	err = s.query(ctx, "store fused wqi", func(ctx context.Context) error {
		stored = false
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			// One writer per station at a time (as for its external readings), so that two
			// replicas deciding "changed" at once do not both announce it.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, externalLockKey+station); err != nil {
				return err
			}
			prev, err := latestFused(ctx, tx, station)
			if err != nil {
				return err
			}
			if prev != nil && fusion.Same(*prev, w) {
				return nil
			}
			tag, err := tx.Exec(ctx, `INSERT INTO fused_wqi (time, station_id, wqi, class, category, partial, missing,
					sub_indices, do_saturation_pct, inputs, data)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::json)
				ON CONFLICT (station_id, time) DO UPDATE SET wqi = EXCLUDED.wqi, class = EXCLUDED.class,
					category = EXCLUDED.category, partial = EXCLUDED.partial, missing = EXCLUDED.missing,
					sub_indices = EXCLUDED.sub_indices, do_saturation_pct = EXCLUDED.do_saturation_pct,
					inputs = EXCLUDED.inputs, data = EXCLUDED.data`,
				w.Time, station, w.Result.WQI, w.Result.Class, w.Result.Category, w.Result.Partial, missing,
				sub, sat, inputs, string(data))
			if err != nil {
				return fmt.Errorf("insert fused wqi: %w", err)
			}
			stored = tag.RowsAffected() > 0
			return writeEvents(ctx, tx, []newEvent{ev})
		})
	})
	if err != nil {
		return false, fmt.Errorf("fused wqi of %s: %w", station, err)
	}
	return stored, nil
}

// LatestFusedWQI returns the station's newest stored fused WQI, or nil when it has none.
func (s *Store) LatestFusedWQI(ctx context.Context, station string) (*fusion.WQI, error) {
	var out *fusion.WQI
	err := s.query(ctx, "latest fused wqi", func(ctx context.Context) (err error) {
		out, err = latestFused(ctx, s.pool, station)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fused wqi of %s: %w", station, err)
	}
	return out, nil
}

// FusedWQIHistory lists the station's fused WQI results from from (inclusive) to to
// (exclusive; zero for open), newest first, at most limit.
func (s *Store) FusedWQIHistory(ctx context.Context, station string, from, to time.Time, limit int) ([]fusion.WQI, error) {
	var w where
	w.add("station_id = ?", station)
	w.timeRange("time", from, to)
	sql := `SELECT ` + fusedColumns + ` FROM fused_wqi` + w.String() + ` ORDER BY time DESC` + w.limit(limit)
	var out []fusion.WQI
	err := s.query(ctx, "fused wqi history", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, sql, w.args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanFused)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fused wqi of %s: %w", station, err)
	}
	return out, nil
}

// fusedColumns is a stored fused result as its JSON.
const fusedColumns = `data`

func scanFused(row pgx.CollectableRow) (fusion.WQI, error) {
	var raw []byte
	if err := row.Scan(&raw); err != nil {
		return fusion.WQI{}, err
	}
	var w fusion.WQI
	if err := json.Unmarshal(raw, &w); err != nil {
		return fusion.WQI{}, fmt.Errorf("decode fused wqi: %w", err)
	}
	w.Time = w.Time.UTC()
	return w, nil
}

func latestFused(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, station string) (*fusion.WQI, error) {
	rows, err := q.Query(ctx, `SELECT `+fusedColumns+` FROM fused_wqi WHERE station_id = $1 ORDER BY time DESC LIMIT 1`, station)
	if err != nil {
		return nil, err
	}
	ws, err := pgx.CollectRows(rows, scanFused)
	if err != nil || len(ws) == 0 {
		return nil, err
	}
	return &ws[0], nil
}

// FusionStations lists the stations whose fused state may have changed since since:
// those with a batch or a new external reading after it. Zero since lists every station.
func (s *Store) FusionStations(ctx context.Context, since time.Time) ([]string, error) {
	var out []string
	err := s.query(ctx, "fusion stations", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT id FROM stations s WHERE $1::timestamptz IS NULL
				OR EXISTS (SELECT 1 FROM station_ingest i WHERE i.station_id = s.id AND i.last_batch_at >= $1)
				OR EXISTS (SELECT 1 FROM external_readings x WHERE x.station_id = s.id AND x.received_at >= $1)
			ORDER BY id`, nullTime(since))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fusion stations: %w", err)
	}
	return out, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

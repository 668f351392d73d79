package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// RemoveStation takes a station out of service: its token stops working at once, it
// leaves the station listings and the health check (an offline alert of it resolves), and
// its data stays, readable by its id. With purge its data goes too: every row of every
// table that has a station_id column, then the station itself, in one transaction.
// TimescaleDB's continuous aggregates forget it at their next refresh.
func (s *Store) RemoveStation(ctx context.Context, id string, purge bool) error {
	err := s.query(ctx, "remove station", func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT true FROM stations WHERE id = $1 FOR UPDATE`, id).Scan(&exists); err != nil {
				if errNoRows(err) {
					return fmt.Errorf("station %s: %w", id, ErrNotFound)
				}
				return err
			}
			if !purge {
				_, hash := newToken() // nobody holds it: the station's token is revoked
				_, err := tx.Exec(ctx, `UPDATE stations SET token_sha256 = $2, token_set_at = now(),
					removed_at = coalesce(removed_at, now()) WHERE id = $1`, id, hash)
				if err != nil {
					return err
				}
				_, err = tx.Exec(ctx, `WITH gone AS (DELETE FROM station_offline WHERE station_id = $1 RETURNING alert_id)
					UPDATE alerts a SET state = 'resolved', resolved_at = now(), updated_at = now(), event_seq = a.event_seq + 1
					FROM gone WHERE a.station_id = $1 AND a.origin = 'cloud' AND a.alert_id = gone.alert_id`, id)
				return err
			}
			// Every table that names stations, whoever added it: a purge leaves nothing.
			rows, err := tx.Query(ctx, `SELECT c.table_name FROM information_schema.columns c
				JOIN information_schema.tables t USING (table_schema, table_name)
				WHERE c.table_schema = current_schema() AND c.column_name = 'station_id'
					AND t.table_type = 'BASE TABLE' AND c.table_name <> 'stations'
				ORDER BY c.table_name`)
			if err != nil {
				return err
			}
			tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			for _, table := range tables {
				if _, err := tx.Exec(ctx, `DELETE FROM `+pgx.Identifier{table}.Sanitize()+` WHERE station_id = $1`, id); err != nil {
					return fmt.Errorf("purge %s: %w", table, err)
				}
			}
			_, err = tx.Exec(ctx, `DELETE FROM stations WHERE id = $1`, id)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("remove station %s: %w", id, err)
	}
	return nil
}

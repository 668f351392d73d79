package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/wire"
)

// ErrResolved refuses to acknowledge an alert that is resolved already.
var ErrResolved = errors.New("the alert is resolved")

// AckAlert acknowledges an alert in the cloud on behalf of by (a token's name) and
// returns it as it then stands. Acknowledging an acknowledged alert changes nothing;
// a resolved one is refused with ErrResolved (and returned as it is). An alert of a
// station's own (origin station) is also marked ack_pending: the acknowledgement travels
// to the station in the answer to its next batch, and the station's own acknowledged or
// resolved transition confirms it (ingest.go). The transition is a live event and is
// notified like any other.
func (s *Store) AckAlert(ctx context.Context, station, origin string, id uint64, by string) (Alert, error) {
	if origin != OriginStation && origin != OriginCloud {
		return Alert{}, fmt.Errorf("%w: origin %q (station or cloud)", ErrInvalid, origin)
	}
	var out Alert
	err := s.query(ctx, "acknowledge alert", func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT `+alertColumns+` FROM alerts
				WHERE station_id = $1 AND origin = $2 AND alert_id = $3 FOR UPDATE`, station, origin, int64(id))
			if err != nil {
				return err
			}
			a, err := pgx.CollectExactlyOneRow(rows, scanAlert)
			if errNoRows(err) {
				return fmt.Errorf("alert %s/%s/%d: %w", origin, station, id, ErrNotFound)
			}
			if err != nil {
				return err
			}
			out = a
			switch a.State {
			case alert.Resolved:
				return ErrResolved
			case alert.Acknowledged:
				return nil
			}
			now := dbTime(s.opts.Now())
			a.State, a.AcknowledgedAt, a.AcknowledgedBy, a.UpdatedAt = alert.Acknowledged, &now, by, now
			a.AckPending = origin == OriginStation
			if _, err := tx.Exec(ctx, `UPDATE alerts SET state = 'acknowledged', acknowledged_at = $4,
					acknowledged_by = $5, ack_pending = $6, updated_at = $4
				WHERE station_id = $1 AND origin = $2 AND alert_id = $3`,
				station, origin, int64(id), now, by, a.AckPending); err != nil {
				return err
			}
			ev, err := makeEvent(station, EventAlert, now, AlertChange{Alert: a, Transition: "acknowledged"})
			if err != nil {
				return err
			}
			out = a
			return writeEvents(ctx, tx, []newEvent{ev})
		})
	})
	if errors.Is(err, ErrResolved) {
		return out, err
	}
	if err != nil {
		return Alert{}, fmt.Errorf("acknowledge alert: %w", err)
	}
	return out, nil
}

// PendingAcks returns the acknowledgements made in the cloud of station's own alerts
// that the station has not confirmed yet, oldest first, at most wire.MaxAcks.
func (s *Store) PendingAcks(ctx context.Context, station string) ([]wire.AlertAck, error) {
	var out []wire.AlertAck
	err := s.query(ctx, "pending acks", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT alert_id, acknowledged_at, acknowledged_by FROM alerts
			WHERE station_id = $1 AND origin = $2 AND ack_pending
			ORDER BY acknowledged_at LIMIT $3`, station, OriginStation, wire.MaxAcks)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (wire.AlertAck, error) {
			var a wire.AlertAck
			var id int64
			var at time.Time
			err := row.Scan(&id, &at, &a.By)
			a.ID, a.At = uint64(id), at.UTC()
			return a, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pending acks of %s: %w", station, err)
	}
	return out, nil
}

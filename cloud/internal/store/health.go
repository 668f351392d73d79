package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/shared/alert"
)

// RuleStationOffline is the rule of the cloud alert raised for a silent station.
const RuleStationOffline = "station_offline"

// Station states in status events.
const (
	StateOnline  = "online"
	StateOffline = "offline"
)

// HealthPolicy says when a station counts as silent.
type HealthPolicy struct {
	// OfflineAfter is how long a station may go without a batch before it is offline.
	OfflineAfter time.Duration
	// ByStation overrides OfflineAfter for some stations (one that uploads hourly, say).
	ByStation map[string]time.Duration
}

// StatusChange is a station that went offline or came back.
type StatusChange struct {
	Station  string
	Online   bool
	LastSeen time.Time // its last batch before the change
	Since    time.Time // when the change happened
	AlertID  uint64    // the cloud alert opened or resolved
}

// healthLockKey keeps the health checks of several replicas from running at once.
const healthLockKey = 0x70682d686c7468 // "ph-hlth"

// CheckStationHealth takes offline every station that has sent a batch before but none
// for longer than its threshold, as of the store's clock: it records the station as
// offline, opens a cloud alert (rule station_offline, origin cloud) and writes a status
// event and an alert event, all in one transaction. A station is back online with its next
// batch (Ingest). When another replica is running the check at the same moment, this one
// does nothing. It returns the stations it took offline.
func (s *Store) CheckStationHealth(ctx context.Context, p HealthPolicy) ([]StatusChange, error) {
	if p.OfflineAfter <= 0 {
		return nil, fmt.Errorf("%w: offline threshold %s", ErrInvalid, p.OfflineAfter)
	}
	now := dbTime(s.opts.Now())
	ids, secs := make([]string, 0, len(p.ByStation)), make([]float64, 0, len(p.ByStation))
	for id, d := range p.ByStation {
		ids, secs = append(ids, id), append(secs, d.Seconds())
	}
	var changes []StatusChange
	err := s.query(ctx, "station health", func(ctx context.Context) error {
		changes = nil
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var mine bool
			if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(healthLockKey)).Scan(&mine); err != nil {
				return err
			}
			if !mine {
				return nil
			}
			// FOR UPDATE waits for a batch of the station being stored (Ingest updates
			// station_ingest first) and then re-checks it against the new last_batch_at.
			rows, err := tx.Query(ctx, `SELECT i.station_id, i.last_batch_at, coalesce(t.secs, $4)
				FROM station_ingest i
				LEFT JOIN unnest($2::text[], $3::float8[]) AS t(id, secs) ON t.id = i.station_id
				WHERE i.last_batch_at IS NOT NULL
					AND i.last_batch_at < $1::timestamptz - make_interval(secs => coalesce(t.secs, $4))
					AND NOT EXISTS (SELECT 1 FROM stations s WHERE s.id = i.station_id AND s.removed_at IS NOT NULL)
					AND NOT EXISTS (SELECT 1 FROM station_offline o WHERE o.station_id = i.station_id)
				ORDER BY i.station_id
				FOR UPDATE OF i`, now, ids, secs, p.OfflineAfter.Seconds())
			if err != nil {
				return err
			}
			type silent struct {
				station  string
				lastSeen time.Time
				after    time.Duration
			}
			found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (silent, error) {
				var x silent
				var secs float64
				err := row.Scan(&x.station, &x.lastSeen, &secs)
				x.after = time.Duration(secs * float64(time.Second))
				return x, err
			})
			if err != nil {
				return err
			}
			var evs []newEvent
			for _, x := range found {
				msg := fmt.Sprintf("no data from the station for %s (last batch %s, threshold %s)",
					now.Sub(x.lastSeen).Round(time.Second), x.lastSeen.UTC().Format(time.RFC3339), x.after)
				var id int64
				err := tx.QueryRow(ctx, `WITH a AS (
						INSERT INTO alerts (station_id, origin, alert_id, rule, key, param, sensor, severity,
							state, opened_at, message, updated_at, event_seq)
						VALUES ($1, 'cloud', nextval('cloud_alert_ids'), $2, $2, '', '', 'warning',
							'active', $3, $4, $3, 1)
						RETURNING alert_id)
					INSERT INTO station_offline (station_id, since, last_seen, alert_id)
					SELECT $1, $3, $5, alert_id FROM a RETURNING alert_id`,
					x.station, RuleStationOffline, now, msg, x.lastSeen).Scan(&id)
				if err != nil {
					return fmt.Errorf("take %s offline: %w", x.station, err)
				}
				c := StatusChange{Station: x.station, LastSeen: x.lastSeen.UTC(), Since: now, AlertID: uint64(id)}
				changes = append(changes, c)
				status, err := makeEvent(x.station, EventStatus, now, StationStatus{
					State: StateOffline, LastSeen: c.LastSeen, Since: now,
				})
				if err != nil {
					return err
				}
				alert, err := makeEvent(x.station, EventAlert, now, AlertChange{Transition: "opened", Alert: Alert{
					Record: alert.Record{
						ID: c.AlertID, Station: x.station, Rule: RuleStationOffline, Key: RuleStationOffline,
						Severity: alert.Warning, State: alert.Active, OpenedAt: now, Message: msg,
					},
					Origin: OriginCloud, UpdatedAt: now,
				}})
				if err != nil {
					return err
				}
				evs = append(evs, status, alert)
			}
			return writeEvents(ctx, tx, evs)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("station health: %w", err)
	}
	return changes, nil
}

// backOnlineSQL is part of a batch's transaction, after the station's row lock: when the
// station was offline it is back, its station_offline alert resolved. It returns one row
// when that happened ($1 station, $2 now).
const backOnlineSQL = `WITH back AS (
		DELETE FROM station_offline WHERE station_id = $1 RETURNING since, last_seen, alert_id
	), resolved AS (
		UPDATE alerts a SET state = 'resolved', resolved_at = $2, updated_at = $2, event_seq = a.event_seq + 1
		FROM back WHERE a.station_id = $1 AND a.origin = 'cloud' AND a.alert_id = back.alert_id
		RETURNING a.alert_id, a.opened_at, a.message, a.severity, a.acknowledged_at
	)
	SELECT back.since, back.last_seen, r.alert_id, r.opened_at, r.message, r.severity, r.acknowledged_at
	FROM back LEFT JOIN resolved r ON true`

// backOnline reads the row of backOnlineSQL and returns the status and alert events to
// write.
func backOnline(row pgx.Row, station string, now time.Time) ([]newEvent, error) {
	var (
		since, lastSeen   time.Time
		alertID           *int64
		opened            *time.Time
		message, severity *string
		acknowledged      *time.Time
	)
	err := row.Scan(&since, &lastSeen, &alertID, &opened, &message, &severity, &acknowledged)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("back online: %w", err)
	}
	offlineSince := since.UTC()
	status, err := makeEvent(station, EventStatus, now, StationStatus{
		State: StateOnline, Online: true, LastSeen: now, Since: now, OfflineSince: &offlineSince,
	})
	if err != nil {
		return nil, err
	}
	evs := []newEvent{status}
	if alertID != nil {
		resolved := now
		alert, err := makeEvent(station, EventAlert, now, AlertChange{Transition: "resolved", Alert: Alert{
			Record: alert.Record{
				ID: uint64(*alertID), Station: station, Rule: RuleStationOffline, Key: RuleStationOffline,
				Severity: alert.Severity(*severity), State: alert.Resolved, OpenedAt: opened.UTC(),
				AcknowledgedAt: acknowledged, ResolvedAt: &resolved, Message: *message,
			},
			Origin: OriginCloud, UpdatedAt: now,
		}})
		if err != nil {
			return nil, err
		}
		evs = append(evs, alert)
	}
	return evs, nil
}

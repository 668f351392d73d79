package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/shared/wire"
)

// FleetStation is one station of the fleet (GET /v1/fleet, contract: id, last_seen,
// version, uptime_s, clock_synced, buffer, backlog, probes, calibration_due): what its
// newest health record says, and when the cloud last heard from it. A station that never
// sent a health record has null for each of the record's fields and an empty
// calibration_due.
type FleetStation struct {
	ID       string     `json:"id"`
	Name     string     `json:"name,omitempty"`
	LastSeen *time.Time `json:"last_seen"` // its last batch; null: never
	// Online is false while the station health check holds it offline.
	Online bool `json:"online"`
	// HealthAt is when the agent took its newest health record.
	HealthAt       *time.Time            `json:"health_at"`
	Version        *string               `json:"version"`
	UptimeS        *float64              `json:"uptime_s"`
	ClockSynced    *bool                 `json:"clock_synced"`
	Buffer         *wire.HealthBuffer    `json:"buffer"`
	Backlog        *int64                `json:"backlog"`
	Probes         *wire.HealthProbes    `json:"probes"`
	CalibrationDue []wire.CalibrationDue `json:"calibration_due"`
	Broker         *wire.HealthBroker    `json:"broker,omitempty"`
}

// fleetStation fills in the record's fields.
func fleetStation(id, name string, lastSeen *time.Time, online bool, h *wire.Health) FleetStation {
	f := FleetStation{ID: id, Name: name, LastSeen: utcPtr(lastSeen), Online: online, CalibrationDue: []wire.CalibrationDue{}}
	if h == nil {
		return f
	}
	at := h.Time.UTC()
	f.HealthAt, f.Version, f.UptimeS, f.ClockSynced = &at, &h.Version, &h.UptimeS, &h.ClockSynced
	f.Buffer, f.Backlog, f.Probes, f.Broker = &h.Buffer, &h.Backlog, &h.Probes, &h.Broker
	if f.Probes.Failing == nil {
		f.Probes.Failing = []wire.FailingProbe{}
	}
	if h.CalibrationDue != nil {
		f.CalibrationDue = h.CalibrationDue
	}
	return f
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// FleetHealth is the data of a status event that carries a station's new health record:
// its fleet entry as GET /v1/fleet shows it.
type FleetHealth struct {
	Health FleetStation `json:"health"`
}

// storeHealth keeps a batch's health record in the transaction open on conn: as the
// station's newest unless a newer one is stored already, and in the history. When it is
// the newest it returns the status event announcing it (nil otherwise).
func storeHealth(ctx context.Context, conn *pgx.Conn, station string, h *wire.Health, now time.Time) ([]newEvent, error) {
	data, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode health record: %w", err)
	}
	failing := make([]string, 0, len(h.Probes.Failing))
	for _, f := range h.Probes.Failing {
		failing = append(failing, f.Name)
	}
	var newest bool
	err = conn.QueryRow(ctx, `WITH latest AS (
			INSERT INTO station_health AS h (station_id, time, received_at, version, data)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (station_id) DO UPDATE SET time = EXCLUDED.time, received_at = EXCLUDED.received_at,
				version = EXCLUDED.version, data = EXCLUDED.data
			WHERE h.time < EXCLUDED.time
			RETURNING 1
		), history AS (
			INSERT INTO station_health_history (station_id, time, received_at, version, uptime_s, clock_synced,
				used_bytes, max_bytes, autonomy_h, backlog, probes_total, probes_online, failing,
				broker_clients, broker_rejects)
			VALUES ($1, $2, $3, $4, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
			ON CONFLICT DO NOTHING
		)
		SELECT EXISTS (SELECT 1 FROM latest)`,
		station, h.Time, now, h.Version, data, h.UptimeS, h.ClockSynced, h.Buffer.UsedBytes, h.Buffer.MaxBytes,
		h.Buffer.AutonomyH, h.Backlog, h.Probes.Total, h.Probes.Online, failing, h.Broker.Clients, h.Broker.Rejects,
	).Scan(&newest)
	if err != nil {
		return nil, fmt.Errorf("store health record: %w", err)
	}
	if !newest {
		return nil, nil
	}
	var (
		name    string
		offline bool
	)
	err = conn.QueryRow(ctx, `SELECT s.name, EXISTS (SELECT 1 FROM station_offline o WHERE o.station_id = s.id)
		FROM stations s WHERE s.id = $1`, station).Scan(&name, &offline)
	if err != nil {
		return nil, fmt.Errorf("health record: station %s: %w", station, err)
	}
	ev, err := makeEvent(station, EventStatus, now, FleetHealth{Health: fleetStation(station, name, &now, !offline, h)})
	if err != nil {
		return nil, err
	}
	return []newEvent{ev}, nil
}

// Fleet lists every station with its newest health record, by id.
func (s *Store) Fleet(ctx context.Context) ([]FleetStation, error) {
	var out []FleetStation
	err := s.query(ctx, "fleet", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT s.id, s.name, i.last_batch_at,
				NOT EXISTS (SELECT 1 FROM station_offline o WHERE o.station_id = s.id), h.data
			FROM stations s
			LEFT JOIN station_ingest i ON i.station_id = s.id
			LEFT JOIN station_health h ON h.station_id = s.id
			ORDER BY s.id`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (FleetStation, error) {
			var (
				id, name string
				lastSeen *time.Time
				online   bool
				data     []byte
			)
			if err := row.Scan(&id, &name, &lastSeen, &online, &data); err != nil {
				return FleetStation{}, err
			}
			h, err := decodeHealth(data)
			if err != nil {
				return FleetStation{}, fmt.Errorf("station %s: %w", id, err)
			}
			return fleetStation(id, name, lastSeen, online, h), nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	return out, nil
}

func decodeHealth(data []byte) (*wire.Health, error) {
	if data == nil {
		return nil, nil
	}
	var h wire.Health
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("stored health record does not decode: %w", err)
	}
	return &h, nil
}

// HealthPoint is one health record of a station's history, as its figures.
type HealthPoint struct {
	Time          time.Time `json:"time"`
	ReceivedAt    time.Time `json:"received_at"`
	Version       string    `json:"version"`
	UptimeS       float64   `json:"uptime_s"`
	ClockSynced   bool      `json:"clock_synced"`
	UsedBytes     int64     `json:"used_bytes"`
	MaxBytes      int64     `json:"max_bytes"`
	AutonomyH     *float64  `json:"autonomy_h"`
	Backlog       int64     `json:"backlog"`
	ProbesTotal   int       `json:"probes_total"`
	ProbesOnline  int       `json:"probes_online"`
	Failing       []string  `json:"failing"`
	BrokerClients int64     `json:"broker_clients"`
	BrokerRejects int64     `json:"broker_rejects"`
}

// HealthHistory lists a station's health records taken in [from, to), newest first, at
// most limit; ErrNotFound for an unknown station.
func (s *Store) HealthHistory(ctx context.Context, station string, from, to time.Time, limit int) ([]HealthPoint, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("%w: limit %d", ErrInvalid, limit)
	}
	var out []HealthPoint
	err := s.query(ctx, "health history", func(ctx context.Context) error {
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM stations WHERE id = $1)`, station).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return ErrNotFound
		}
		rows, err := s.pool.Query(ctx, `SELECT time, received_at, version, uptime_s, clock_synced, used_bytes,
				max_bytes, autonomy_h, backlog, probes_total, probes_online, failing, broker_clients, broker_rejects
			FROM station_health_history
			WHERE station_id = $1 AND time >= $2 AND time < $3
			ORDER BY time DESC LIMIT $4`, station, from, to, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (HealthPoint, error) {
			var p HealthPoint
			err := row.Scan(&p.Time, &p.ReceivedAt, &p.Version, &p.UptimeS, &p.ClockSynced, &p.UsedBytes,
				&p.MaxBytes, &p.AutonomyH, &p.Backlog, &p.ProbesTotal, &p.ProbesOnline, &p.Failing,
				&p.BrokerClients, &p.BrokerRejects)
			p.Time, p.ReceivedAt = p.Time.UTC(), p.ReceivedAt.UTC()
			return p, err
		})
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("health history: station %s: %w", station, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("health history: %w", err)
	}
	if out == nil {
		out = []HealthPoint{}
	}
	return out, nil
}

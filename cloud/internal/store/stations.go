package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Station is a registered station.
type Station struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Class       string     `json:"class"`
	Lat         *float64   `json:"lat"`
	Lon         *float64   `json:"lon"`
	CreatedAt   time.Time  `json:"created_at"`
	LastBatchAt *time.Time `json:"last_batch_at"` // nil before the first batch
	// OfflineSince is set while the station is offline: silent for longer than the
	// health check allows, until its next batch.
	OfflineSince *time.Time `json:"offline_since,omitempty"`
	Agent        string     `json:"agent,omitempty"`
	// The highest seq received of each stream.
	ReadingsSeq uint64 `json:"readings_seq"`
	AlertsSeq   uint64 `json:"alerts_seq"`
	WQISeq      uint64 `json:"wqi_seq"`
	// River and RiverKm place the station on its river (km growing downstream); both
	// absent when it is on none the cloud knows.
	River   *string  `json:"river,omitempty"`
	RiverKm *float64 `json:"river_km,omitempty"`
}

// NewStation is what registering a station needs.
type NewStation struct {
	ID       string
	Name     string
	Class    string // CPCB designated-best-use class A–E, default B
	Lat, Lon *float64
	River    *River // nil: on no river the cloud knows
}

func (n *NewStation) validate() error {
	var errs []error
	if !telemetry.ValidStationID(n.ID) {
		errs = append(errs, fmt.Errorf("station id %q must be %s", n.ID, telemetry.StationIDRule))
	}
	if n.Name == "" || len(n.Name) > 200 || strings.ContainsRune(n.Name, 0) {
		errs = append(errs, errors.New("name must be 1–200 bytes"))
	}
	if n.Class == "" {
		n.Class = "B"
	}
	n.Class = strings.ToUpper(n.Class)
	if !strings.Contains("ABCDE", n.Class) || len(n.Class) != 1 {
		errs = append(errs, fmt.Errorf("class %q must be one of A, B, C, D, E", n.Class))
	}
	if (n.Lat == nil) != (n.Lon == nil) {
		errs = append(errs, errors.New("give both lat and lon, or neither"))
	}
	if n.Lat != nil && !(*n.Lat >= -90 && *n.Lat <= 90) {
		errs = append(errs, fmt.Errorf("lat %v is outside -90..90", *n.Lat))
	}
	if n.Lon != nil && !(*n.Lon >= -180 && *n.Lon <= 180) {
		errs = append(errs, fmt.Errorf("lon %v is outside -180..180", *n.Lon))
	}
	if n.River != nil {
		errs = append(errs, n.River.validate())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// tokenPrefix marks Pure Health station tokens, so that secret scanners and people can
// recognise one.
const tokenPrefix = "pht_"

// newToken returns a fresh token (32 random bytes) and its hash.
func newToken() (string, []byte) {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashToken(token)
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// AddStation registers a station and returns its new token. Only the token's hash is
// stored: the token cannot be shown again, only replaced (RotateToken).
func (s *Store) AddStation(ctx context.Context, n NewStation) (token string, err error) {
	if err := n.validate(); err != nil {
		return "", err
	}
	token, hash := newToken()
	err = s.query(ctx, "add station", func(ctx context.Context) error {
		river, km := n.River.columns()
		_, err := s.pool.Exec(ctx, `INSERT INTO stations (id, name, class, lat, lon, token_sha256, river, river_km)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, n.ID, n.Name, n.Class, n.Lat, n.Lon, hash, river, km)
		return err
	})
	if isUniqueViolation(err) {
		return "", fmt.Errorf("station %s: %w", n.ID, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("add station %s: %w", n.ID, err)
	}
	return token, nil
}

// RotateToken gives the station a new token and returns it. The old token stops working
// at once.
func (s *Store) RotateToken(ctx context.Context, id string) (string, error) {
	token, hash := newToken()
	var tag pgconn.CommandTag
	err := s.query(ctx, "rotate token", func(ctx context.Context) (err error) {
		tag, err = s.pool.Exec(ctx, `UPDATE stations SET token_sha256 = $2, token_set_at = now() WHERE id = $1`, id, hash)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("rotate token of %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return "", fmt.Errorf("station %s: %w", id, ErrNotFound)
	}
	return token, nil
}

// Authenticate returns the id of the station whose token this is; ErrNotFound for an
// unknown token.
func (s *Store) Authenticate(ctx context.Context, token string) (string, error) {
	if token == "" {
		return "", ErrNotFound
	}
	hash := hashToken(token)
	var id string
	err := s.query(ctx, "authenticate", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT id FROM stations WHERE token_sha256 = $1`, hash).Scan(&id)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("authenticate: %w", err)
	}
	return id, nil
}

const stationColumns = `s.id, s.name, s.class, s.lat, s.lon, s.created_at, i.last_batch_at,
	coalesce(i.agent, ''), coalesce(i.readings_seq, 0), coalesce(i.alerts_seq, 0), coalesce(i.wqi_seq, 0), o.since,
	s.river, s.river_km`

// stationTables joins what stationColumns reads.
const stationTables = `stations s LEFT JOIN station_ingest i ON i.station_id = s.id
	LEFT JOIN station_offline o ON o.station_id = s.id`

func scanStation(row pgx.CollectableRow) (Station, error) {
	var st Station
	var r, a, w int64
	err := row.Scan(&st.ID, &st.Name, &st.Class, &st.Lat, &st.Lon, &st.CreatedAt, &st.LastBatchAt,
		&st.Agent, &r, &a, &w, &st.OfflineSince, &st.River, &st.RiverKm)
	utc(st.OfflineSince)
	st.ReadingsSeq, st.AlertsSeq, st.WQISeq = uint64(r), uint64(a), uint64(w)
	return st, err
}

// Stations lists the stations in service (not removed) ordered by id, starting after the id after ("" from the
// start), at most limit of them.
func (s *Store) Stations(ctx context.Context, after string, limit int) ([]Station, error) {
	var out []Station
	err := s.query(ctx, "list stations", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT `+stationColumns+`
			FROM `+stationTables+`
			WHERE s.id > $1 AND s.removed_at IS NULL ORDER BY s.id LIMIT $2`, after, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanStation)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list stations: %w", err)
	}
	return out, nil
}

// UnknownStations returns those of ids that name no station, in the order given.
func (s *Store) UnknownStations(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if slices.ContainsFunc(ids, func(id string) bool { return !telemetry.ValidStationID(id) }) {
		// Not a station id at all: no need to ask, and the database could not hold some.
		var unknown, valid []string
		for _, id := range ids {
			if telemetry.ValidStationID(id) {
				valid = append(valid, id)
			}
		}
		missing, err := s.UnknownStations(ctx, valid)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if !telemetry.ValidStationID(id) || slices.Contains(missing, id) {
				unknown = append(unknown, id)
			}
		}
		return unknown, nil
	}
	var unknown []string
	err := s.query(ctx, "look up stations", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT id FROM unnest($1::text[]) WITH ORDINALITY AS x (id, n)
			WHERE NOT EXISTS (SELECT 1 FROM stations s WHERE s.id = x.id) ORDER BY n`, ids)
		if err != nil {
			return err
		}
		unknown, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("look up stations: %w", err)
	}
	return unknown, nil
}

// Station returns one station; ErrNotFound if there is none with that id.
func (s *Store) Station(ctx context.Context, id string) (Station, error) {
	var st Station
	err := s.query(ctx, "get station", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT `+stationColumns+`
			FROM `+stationTables+` WHERE s.id = $1`, id)
		if err != nil {
			return err
		}
		st, err = pgx.CollectExactlyOneRow(rows, scanStation)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Station{}, fmt.Errorf("station %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Station{}, fmt.Errorf("get station %s: %w", id, err)
	}
	return st, nil
}

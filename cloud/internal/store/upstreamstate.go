package store

import (
	"context"
	"fmt"

	"github.com/purehealth/purehealth/cloud/internal/satellite"
	"github.com/purehealth/purehealth/cloud/internal/upstream"
)

// Cursor implements upstream.Cursors: the saved cursor of source, "" when there is none.
func (s *Store) Cursor(ctx context.Context, source string) (string, error) {
	var c string
	err := s.query(ctx, "upstream cursor", func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, `SELECT cursor FROM upstream_cursors WHERE source = $1`, source).Scan(&c)
		if errNoRows(err) {
			c = ""
			return nil
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("cursor of %s: %w", source, err)
	}
	return c, nil
}

// SetCursor implements upstream.Cursors.
func (s *Store) SetCursor(ctx context.Context, source, cursor string) error {
	if err := checkText(source, cursor); err != nil {
		return fmt.Errorf("%w: cursor of %s: %w", ErrInvalid, source, err)
	}
	_, err := s.exec(ctx, "set upstream cursor", `INSERT INTO upstream_cursors (source, cursor, updated_at)
		VALUES ($1, $2, now()) ON CONFLICT (source) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()`,
		source, cursor)
	return err
}

// MaxCacheBody bounds one cached satellite response.
const MaxCacheBody = 16 << 20

// SatelliteCache is a satellite.Cache in the database, shared by every replica and kept
// across restarts. Safe for concurrent use.
type SatelliteCache struct{ s *Store }

// SatelliteCache returns the store's satellite response cache.
func (s *Store) SatelliteCache() *SatelliteCache { return &SatelliteCache{s: s} }

// Get implements satellite.Cache.
func (c *SatelliteCache) Get(ctx context.Context, k satellite.CacheKey) ([]byte, bool, error) {
	var body []byte
	found := false
	err := c.s.query(ctx, "satellite cache get", func(ctx context.Context) error {
		err := c.s.pool.QueryRow(ctx, `SELECT body FROM satellite_cache
			WHERE station_id = $1 AND collection = $2 AND week_from = $3 AND week_to = $4 AND digest = $5`,
			k.Station, k.Collection, k.From, k.To, k.Digest).Scan(&body)
		if errNoRows(err) {
			found = false
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("satellite cache: %w", err)
	}
	return body, found, nil
}

// Put implements satellite.Cache. Putting a key again replaces its body.
func (c *SatelliteCache) Put(ctx context.Context, k satellite.CacheKey, body []byte) error {
	if len(body) > MaxCacheBody {
		return fmt.Errorf("%w: satellite cache: %d bytes, more than %d", ErrInvalid, len(body), MaxCacheBody)
	}
	if err := checkText(k.Station, k.Collection, k.Digest); err != nil {
		return fmt.Errorf("%w: satellite cache key: %w", ErrInvalid, err)
	}
	_, err := c.s.exec(ctx, "satellite cache put", `INSERT INTO satellite_cache (station_id, collection, week_from, week_to, digest, body)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (station_id, collection, week_from, week_to, digest) DO UPDATE SET body = EXCLUDED.body, stored_at = now()`,
		k.Station, k.Collection, k.From, k.To, k.Digest, body)
	return err
}

// checkText refuses texts PostgreSQL cannot store (a NUL).
func checkText(ss ...string) error {
	for _, s := range ss {
		for i := 0; i < len(s); i++ {
			if s[i] == 0 {
				return fmt.Errorf("%q contains a NUL character", s)
			}
		}
	}
	return nil
}

var (
	_ upstream.Sink    = (*Store)(nil)
	_ upstream.Cursors = (*Store)(nil)
	_ satellite.Cache  = (*SatelliteCache)(nil)
)

package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
)

// River places a station on a river: the cloud's anomaly detection compares the stations
// of one river in the order of Km.
type River struct {
	Name string
	// Km is the distance along the river, growing downstream, from any origin the
	// stations of the river share (a source, a confluence, a gauge).
	Km float64
}

// maxRiverKm bounds Km: longer than any river, so that only a typo is refused.
const maxRiverKm = 100000

func (r *River) validate() error {
	var errs []error
	if r.Name == "" || len(r.Name) > 100 || !utf8.ValidString(r.Name) || strings.ContainsRune(r.Name, 0) ||
		strings.TrimSpace(r.Name) != r.Name {
		errs = append(errs, fmt.Errorf("river name %q must be 1–100 bytes of text without surrounding spaces", r.Name))
	}
	if math.IsNaN(r.Km) || math.Abs(r.Km) > maxRiverKm {
		errs = append(errs, fmt.Errorf("river km %v must be a distance within ±%d km", r.Km, maxRiverKm))
	}
	return errors.Join(errs...)
}

// columns are the values of stations.river and river_km (NULL, NULL for none).
func (r *River) columns() (*string, *float64) {
	if r == nil {
		return nil, nil
	}
	return &r.Name, &r.Km
}

// SetRiver places a registered station on a river, or on none with nil.
func (s *Store) SetRiver(ctx context.Context, id string, r *River) error {
	if r != nil {
		if err := r.validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	name, km := r.columns()
	var tag pgconn.CommandTag
	err := s.query(ctx, "set river", func(ctx context.Context) (err error) {
		tag, err = s.pool.Exec(ctx, `UPDATE stations SET river = $2, river_km = $3 WHERE id = $1`, id, name, km)
		return err
	})
	if err != nil {
		return fmt.Errorf("set river of %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("station %s: %w", id, ErrNotFound)
	}
	return nil
}

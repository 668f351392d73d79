package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ForecastRecord is one row of forecasts: a forecast of one series (a station's parameter
// or its WQI) as issued, or why there was none.
type ForecastRecord struct {
	Station  string
	Param    string // a parameter or "wqi"
	IssuedAt time.Time
	Model    string // "" when there is no forecast
	Reason   string // why there is none
	// Digest identifies the content (model, reason, skill, points) apart from the time of
	// issue: a record whose digest is that of the newest stored for its series is not
	// stored again.
	Digest string
	// Data is the forecast object of the API and of the "prediction" live message (design
	// §5a); nil without a forecast.
	Data json.RawMessage
}

func (r ForecastRecord) validate() error {
	var errs []error
	if r.Station == "" || r.Param == "" || r.Digest == "" || r.IssuedAt.IsZero() {
		errs = append(errs, errors.New("station, param, digest and issued_at are required"))
	}
	if (r.Model == "") != (len(r.Data) == 0) {
		errs = append(errs, errors.New("a forecast has a model and data, a record without one has neither"))
	}
	if len(r.Data) > 0 && !json.Valid(r.Data) {
		errs = append(errs, errors.New("data is not JSON"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: forecast of %s %s: %w", ErrInvalid, r.Station, r.Param, err)
	}
	return nil
}

// StoreForecasts stores the records whose digest differs from that of the newest stored
// record of their series, and writes a "prediction" event with the data of each forecast
// stored, in one transaction. It returns the records it stored.
func (s *Store) StoreForecasts(ctx context.Context, recs []ForecastRecord) ([]ForecastRecord, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	n := len(recs)
	issued, stations, params, models, reasons, digests := make([]time.Time, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n)
	data := make([]*string, n)
	for i, r := range recs {
		if err := r.validate(); err != nil {
			return nil, err
		}
		issued[i], stations[i], params[i], models[i], reasons[i], digests[i] = dbTime(r.IssuedAt), r.Station, r.Param,
			r.Model, cleanText(r.Reason, maxCloudMessage), r.Digest
		if len(r.Data) > 0 {
			d := string(r.Data)
			data[i] = &d
		}
	}
	if s.schema.Mode == ModePlain {
		if err := s.ensurePartitions(ctx, "forecasts", issued); err != nil {
			return nil, fmt.Errorf("store forecasts: %w", err)
		}
	}
	var stored []ForecastRecord
	err := s.query(ctx, "store forecasts", func(ctx context.Context) error {
		stored = nil
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `INSERT INTO forecasts (issued_at, station_id, param, model, reason, digest, data)
				SELECT r.issued_at, r.station_id, r.param, r.model, r.reason, r.digest, r.data::json
				FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
					AS r(issued_at, station_id, param, model, reason, digest, data)
				WHERE r.digest IS DISTINCT FROM (SELECT f.digest FROM forecasts f
					WHERE f.station_id = r.station_id AND f.param = r.param ORDER BY f.issued_at DESC LIMIT 1)
				ON CONFLICT DO NOTHING
				RETURNING issued_at, station_id, param, model, reason, digest, data`,
				issued, stations, params, models, reasons, digests, data)
			if err != nil {
				return err
			}
			stored, err = pgx.CollectRows(rows, scanForecast)
			if err != nil {
				return err
			}
			var evs []newEvent
			for _, r := range stored {
				if len(r.Data) > 0 {
					evs = append(evs, newEvent{station: r.Station, typ: EventPrediction, time: r.IssuedAt, data: r.Data})
				}
			}
			return writeEvents(ctx, tx, evs)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store forecasts: %w", err)
	}
	return stored, nil
}

const forecastColumns = `issued_at, station_id, param, model, reason, digest, data`

func scanForecast(row pgx.CollectableRow) (ForecastRecord, error) {
	var r ForecastRecord
	var data []byte
	err := row.Scan(&r.IssuedAt, &r.Station, &r.Param, &r.Model, &r.Reason, &r.Digest, &data)
	r.IssuedAt = r.IssuedAt.UTC()
	if len(data) > 0 {
		r.Data = data
	}
	return r, err
}

// LatestForecasts returns the newest record of each series of station, by series
// (parameter or "wqi"), among those issued at or after since.
func (s *Store) LatestForecasts(ctx context.Context, station string, since time.Time) (map[string]ForecastRecord, error) {
	out := map[string]ForecastRecord{}
	err := s.query(ctx, "latest forecasts", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (param) `+forecastColumns+` FROM forecasts
			WHERE station_id = $1 AND issued_at >= $2 ORDER BY param, issued_at DESC`, station, since)
		if err != nil {
			return err
		}
		recs, err := pgx.CollectRows(rows, scanForecast)
		clear(out)
		for _, r := range recs {
			out[r.Param] = r
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("latest forecasts of %s: %w", station, err)
	}
	return out, nil
}

// LatestForecast returns the newest record of one series; ErrNotFound when there is none.
func (s *Store) LatestForecast(ctx context.Context, station, param string) (ForecastRecord, error) {
	var r ForecastRecord
	err := s.query(ctx, "latest forecast", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT `+forecastColumns+` FROM forecasts
			WHERE station_id = $1 AND param = $2 ORDER BY issued_at DESC LIMIT 1`, station, param)
		if err != nil {
			return err
		}
		r, err = pgx.CollectExactlyOneRow(rows, scanForecast)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return ForecastRecord{}, fmt.Errorf("forecast of %s %s: %w", station, param, ErrNotFound)
	}
	if err != nil {
		return ForecastRecord{}, fmt.Errorf("latest forecast of %s %s: %w", station, param, err)
	}
	return r, nil
}

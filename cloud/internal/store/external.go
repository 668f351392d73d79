package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Provenance says where a reading that did not come from a station's probes came from:
// the publisher's record, the satellite scenes, the lab. Zero fields are absent in JSON.
// Revision and Current describe the reading's place among the revisions of its
// observation (external readings only).
type Provenance struct {
	Origin       string     `json:"origin,omitempty"` // configured source name (cpcb-nwmp), "manual" for samples
	RecordID     string     `json:"record_id,omitempty"`
	StationCode  string     `json:"station_code,omitempty"`
	Collection   string     `json:"collection,omitempty"`
	SceneDate    *time.Time `json:"scene_date,omitempty"`
	Scenes       int        `json:"scenes,omitempty"`
	Pixels       int        `json:"pixels,omitempty"`
	SampleID     string     `json:"sample_id,omitempty"`
	Lab          string     `json:"lab,omitempty"`
	Method       string     `json:"method,omitempty"`
	Revision     int        `json:"revision,omitempty"`
	Current      *bool      `json:"current,omitempty"`
	SupersededAt *time.Time `json:"superseded_at,omitempty"`
}

// OriginManual is the origin of samples posted to the cloud: one origin whoever posts
// them, so that the same sample sent by two people is one observation.
const OriginManual = "manual"

// external is one reading to store in external_readings.
type external struct {
	telemetry.Reading
	Provenance
	// ident keys the observation instead of its time (a sample id); "" keys it by time.
	ident       string
	submittedBy string
}

type externalKey struct {
	origin, station string
	param           telemetry.Param
	ident           string
	time            time.Time // zero when ident is set
}

func (e *external) key() externalKey {
	k := externalKey{origin: e.Origin, station: e.Station, param: e.Param, ident: e.ident}
	if e.ident == "" {
		k.time = e.Time.UTC()
	}
	return k
}

type currentRow struct {
	id       int64
	time     time.Time
	value    float64
	revision int
}

// StoreResult counts what storing external readings did, and names the stations whose
// current values changed (for the fused state).
type StoreResult struct {
	upstream.Stored
	Stations []string
}

// StoreUpstream implements upstream.Sink: each reading is stored as a new observation, a
// new revision of one already stored (the old revision is kept, no longer current), or not
// at all when its current value is the same (upstream.Classify). Readings of stations
// that are not registered fail the whole call with an error matching ErrNotFound, so that
// the collector keeps its cursor and nothing is lost once the station is added.
func (s *Store) StoreUpstream(ctx context.Context, rs []upstream.Reading) (upstream.Stored, error) {
	res, err := s.StoreUpstreamReadings(ctx, rs)
	return res.Stored, err
}

// StoreUpstreamReadings is StoreUpstream that also names the stations it changed.
func (s *Store) StoreUpstreamReadings(ctx context.Context, rs []upstream.Reading) (StoreResult, error) {
	xs := make([]external, 0, len(rs))
	for _, r := range rs {
		if r.Origin.Source == "" {
			return StoreResult{}, fmt.Errorf("%w: upstream reading of %s without its source name", ErrInvalid, r.Station)
		}
		if !telemetry.Source(r.Source).Valid() || r.Source == telemetry.SourceSensor {
			return StoreResult{}, fmt.Errorf("%w: upstream reading of %s has source %q", ErrInvalid, r.Station, r.Source)
		}
		x := external{Reading: r.Reading, Provenance: Provenance{
			Origin: r.Origin.Source, RecordID: r.Origin.RecordID, StationCode: r.Origin.StationCode,
			Collection: r.Origin.Collection, Scenes: r.Origin.Scenes, Pixels: r.Origin.Pixels,
		}}
		if !r.Origin.Scene.IsZero() {
			sd := r.Origin.Scene.UTC()
			x.SceneDate = &sd
		}
		xs = append(xs, x)
	}
	res, err := s.storeExternal(ctx, xs)
	if err != nil {
		return StoreResult{}, fmt.Errorf("store upstream readings: %w", err)
	}
	return res, nil
}

// Sample is a lab or field-kit result, normalized: canonical parameter and unit, UTC time.
type Sample struct {
	Station  string
	Param    telemetry.Param
	Value    float64
	Unit     string
	Time     time.Time
	Quality  telemetry.Quality
	Flags    telemetry.Flags
	SampleID string // "" when the lab gave none: the station, parameter and time identify it
	Lab      string
	Method   string
}

// StoreSamples stores lab samples as readings with source manual, all or none: an
// unknown station fails the whole call with an *UnknownStationError. A sample already
// stored with the same value (and time) adds nothing and counts as unchanged; with
// another value it becomes a new revision. by names the token that posted them.
func (s *Store) StoreSamples(ctx context.Context, by string, samples []Sample) (StoreResult, error) {
	xs := make([]external, len(samples))
	for i, sm := range samples {
		sensor := sm.Lab
		if sensor == "" {
			sensor = "lab"
		}
		xs[i] = external{
			Reading: telemetry.Reading{Station: sm.Station, Sensor: sensor, Param: sm.Param, Value: sm.Value,
				Unit: sm.Unit, Time: sm.Time.UTC(), Source: telemetry.SourceManual, Quality: sm.Quality, Flags: sm.Flags},
			Provenance:  Provenance{Origin: OriginManual, SampleID: sm.SampleID, Lab: sm.Lab, Method: sm.Method},
			ident:       sm.SampleID,
			submittedBy: by,
		}
	}
	res, err := s.storeExternal(ctx, xs)
	if err != nil {
		return StoreResult{}, fmt.Errorf("store samples: %w", err)
	}
	return res, nil
}

// UnknownStationError: readings named a station that is not registered.
type UnknownStationError struct{ Stations []string }

func (e *UnknownStationError) Error() string {
	return fmt.Sprintf("no station %v is registered", e.Stations)
}

// Is makes it match ErrNotFound.
func (e *UnknownStationError) Is(target error) bool { return target == ErrNotFound }

// externalLockKey is the namespace of the advisory locks that serialize the writers of
// one station's external readings: classifying a reading against the current revision
// and storing it must not interleave with another writer of the same observation.
const externalLockKey = "ph-ext:"

func (s *Store) storeExternal(ctx context.Context, xs []external) (StoreResult, error) {
	var res StoreResult
	if len(xs) == 0 {
		return res, nil
	}
	for i := range xs {
		if err := checkExternal(&xs[i]); err != nil {
			return res, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	stations := make([]string, 0, 4)
	for _, x := range xs {
		if !slices.Contains(stations, x.Station) {
			stations = append(stations, x.Station)
		}
	}
	slices.Sort(stations)
	now := dbTime(s.opts.Now())
	ctx, cancel := context.WithTimeout(ctx, s.opts.IngestTimeout)
	defer cancel()
	err := s.withRetry(ctx, "store external", func(ctx context.Context) error {
		res = StoreResult{}
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			for _, st := range stations {
				b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, externalLockKey+st)
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return fmt.Errorf("lock stations: %w", err)
			}
			var known []string
			rows, err := tx.Query(ctx, `SELECT id FROM stations WHERE id = ANY($1) ORDER BY id`, stations)
			if err != nil {
				return err
			}
			if known, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return err
			}
			if len(known) != len(stations) {
				var missing []string
				for _, st := range stations {
					if !slices.Contains(known, st) {
						missing = append(missing, st)
					}
				}
				return &UnknownStationError{Stations: missing}
			}
			cur, err := currentRevisions(ctx, tx, xs)
			if err != nil {
				return err
			}
			var supersede []int64
			var supersedeAt []time.Time
			var insert []*external
			changed := map[string]bool{}
			for i := range xs {
				x := &xs[i]
				k := x.key()
				c, ok := cur[k]
				change := upstream.Classify(upstream.Reading{Reading: x.Reading}, c.value, ok)
				if change == upstream.Unchanged && x.ident != "" && !c.time.Equal(x.Time) {
					// A sample known by its id, given again with another time: a correction.
					change = upstream.Revised
				}
				switch change {
				case upstream.Unchanged:
					res.Unchanged++
					continue
				case upstream.New:
					res.New++
					x.Revision = 1
				case upstream.Revised:
					res.Revised++
					x.Revision = c.revision + 1
					supersede, supersedeAt = append(supersede, c.id), append(supersedeAt, c.time)
				}
				// A later reading of the same key in this call sees this one as current.
				cur[k] = currentRow{id: -1, time: x.Time, value: x.Value, revision: x.Revision}
				insert = append(insert, x)
				changed[x.Station] = true
			}
			if len(supersede) > 0 {
				// A revision made current earlier in this call has no row yet (id -1): it is
				// written below, not current, by insertExternal.
				_, err := tx.Exec(ctx, `UPDATE external_readings SET current = false, superseded_at = $3
					WHERE (id, time) IN (SELECT * FROM unnest($1::bigint[], $2::timestamptz[]))`,
					supersede, supersedeAt, now)
				if err != nil {
					return fmt.Errorf("supersede revisions: %w", err)
				}
			}
			if err := insertExternal(ctx, tx, insert, now); err != nil {
				return err
			}
			for st := range changed {
				res.Stations = append(res.Stations, st)
			}
			slices.Sort(res.Stations)
			return nil
		})
	})
	return res, err
}

// checkExternal refuses what the database cannot hold or what no reading may be.
func checkExternal(x *external) error {
	if !telemetry.ValidStationID(x.Station) {
		return fmt.Errorf("station %q: %s", x.Station, telemetry.StationIDRule)
	}
	if !x.Param.Valid() {
		return fmt.Errorf("parameter %q is not known", x.Param)
	}
	if !x.Quality.Valid() {
		return fmt.Errorf("quality %q", x.Quality)
	}
	for _, f := range []struct{ name, v string }{
		{"sensor", x.Sensor}, {"origin", x.Origin},
	} {
		if err := telemetry.CheckName(f.v, telemetry.MaxSensorLen); err != nil {
			return fmt.Errorf("%s %q: %w", f.name, f.v, err)
		}
	}
	for _, f := range []struct{ name, v string }{
		{"record id", x.RecordID}, {"station code", x.StationCode}, {"collection", x.Collection},
		{"sample id", x.SampleID}, {"lab", x.Lab}, {"method", x.Method}, {"submitted by", x.submittedBy},
	} {
		if f.v == "" {
			continue
		}
		if err := telemetry.CheckName(f.v, telemetry.MaxProvenanceLen); err != nil {
			return fmt.Errorf("%s %q: %w", f.name, f.v, err)
		}
	}
	if y := x.Time.Year(); y < 1 || y > 9999 {
		return fmt.Errorf("time %s is outside years 1-9999", x.Time)
	}
	return nil
}

// currentRevisions returns the current revision of every key of xs that has one.
func currentRevisions(ctx context.Context, tx pgx.Tx, xs []external) (map[externalKey]currentRow, error) {
	n := len(xs)
	origins, stations, params, idents := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	times := make([]time.Time, n)
	for i, x := range xs {
		origins[i], stations[i], params[i], idents[i], times[i] = x.Origin, x.Station, string(x.Param), x.ident, x.Time
	}
	rows, err := tx.Query(ctx, `SELECT DISTINCT e.id, e.time, e.origin, e.station_id, e.param, e.ident, e.value, e.revision
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS k(o, s, p, i, t)
		JOIN external_readings e ON e.current AND e.station_id = k.s AND e.param = k.p
			AND e.origin = k.o AND e.ident = k.i AND (k.i <> '' OR e.time = k.t)`,
		origins, stations, params, idents, times)
	if err != nil {
		return nil, fmt.Errorf("read current revisions: %w", err)
	}
	out := map[externalKey]currentRow{}
	var c currentRow
	var k externalKey
	var param string
	_, err = pgx.ForEachRow(rows, []any{&c.id, &c.time, &k.origin, &k.station, &param, &k.ident, &c.value, &c.revision}, func() error {
		k.param = telemetry.Param(param)
		k.time = time.Time{}
		if k.ident == "" {
			k.time = c.time.UTC()
		}
		out[k] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read current revisions: %w", err)
	}
	return out, nil
}

// insertExternal copies the new revisions in. Of several revisions of one key in xs, the
// last is current.
func insertExternal(ctx context.Context, tx pgx.Tx, xs []*external, now time.Time) error {
	if len(xs) == 0 {
		return nil
	}
	last := map[externalKey]int{}
	for i, x := range xs {
		last[x.key()] = i
	}
	num := func(n int) *int32 {
		if n == 0 {
			return nil
		}
		v := int32(min(n, 1<<31-1))
		return &v
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"external_readings"},
		[]string{"time", "station_id", "param", "value", "unit", "quality", "flags", "source", "origin", "sensor",
			"ident", "revision", "current", "superseded_at", "received_at", "record_id", "station_code", "collection",
			"scene_date", "scenes", "pixels", "sample_id", "lab", "method", "submitted_by"},
		pgx.CopyFromSlice(len(xs), func(i int) ([]any, error) {
			x := xs[i]
			current := last[x.key()] == i
			var superseded *time.Time
			if !current {
				superseded = &now
			}
			return []any{x.Time.UTC(), x.Station, string(x.Param), x.Value, x.Unit, string(x.Quality),
				orEmpty(x.Flags.Names()), string(x.Source), x.Origin, x.Sensor, x.ident, int32(x.Revision), current,
				superseded, now, orNull(x.RecordID), orNull(x.StationCode), orNull(x.Collection), x.SceneDate,
				num(x.Scenes), num(x.Pixels), orNull(x.SampleID), orNull(x.Lab), orNull(x.Method), orNull(x.submittedBy)}, nil
		}))
	if err != nil {
		return fmt.Errorf("copy external readings: %w", err)
	}
	return nil
}

// errNoRows reports whether err is pgx's no-rows error.
func errNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

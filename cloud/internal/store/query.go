package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/wire"
)

// Reading is a stored measurement as the API shows it (the agent's readings --json shape),
// with the provenance of a reading from a lab, a government programme or a satellite.
type Reading struct {
	Seq     uint64    `json:"seq"` // 0 for a reading that no station sent
	Time    time.Time `json:"time"`
	Param   string    `json:"param"`
	Value   float64   `json:"value"`
	Unit    string    `json:"unit"`
	Quality string    `json:"quality"`
	Source  string    `json:"source"`
	Sensor  string    `json:"sensor"`
	Flags   []string  `json:"flags,omitempty"`
	Provenance
	// id is the row of an external reading (0 for a station's): its place in listings.
	id uint64
}

// Position is a place in a listing of readings: the row at (Time, Seq, ID), where a
// station's reading has its seq and ID 0, and a reading from elsewhere Seq 0 and its row
// id. Newest-first listings continue with the rows that sort after it, i.e. older ones.
type Position struct {
	Time time.Time
	Seq  uint64
	ID   uint64
}

// Position returns the reading's place in a listing.
func (r Reading) Position() Position { return Position{Time: r.Time, Seq: r.Seq, ID: r.id} }

// ReadingsQuery selects readings of one station: those its agent sent (measurements) and
// those from labs, government programmes and satellites (external readings), newest first
// by (time, seq, id).
type ReadingsQuery struct {
	Station  string
	Param    string    // "" for every parameter
	From, To time.Time // From inclusive, To exclusive; zero for open
	Limit    int
	After    *Position
	// Revisions includes the superseded revisions of republished values; by default only
	// current values are listed.
	Revisions bool
	// Oldest lists oldest first; After then continues with newer rows.
	Oldest bool
	// Sources, if any, lists only readings of these sources (telemetry.Source names).
	Sources []string
}

// where builds a WHERE clause with bound arguments only.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// arg binds v and returns its placeholder.
func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

func (w *where) limit(n int) string {
	w.args = append(w.args, n)
	return " LIMIT $" + strconv.Itoa(len(w.args))
}

func (w *where) timeRange(col string, from, to time.Time) {
	if !from.IsZero() {
		w.add(col+" >= ?", from)
	}
	if !to.IsZero() {
		w.add(col+" < ?", to)
	}
}

// readingColumns are the columns of a listed reading, from measurements (m) and from
// external_readings (x), in the order scanReading reads them.
const (
	measurementColumns = `seq, 0::bigint AS xid, time, param, value, unit, quality, source, sensor, flags,
		NULL::text AS origin, NULL::text AS record_id, NULL::text AS station_code, NULL::text AS collection,
		NULL::timestamptz AS scene_date, NULL::integer AS scenes, NULL::integer AS pixels,
		sample_id, lab, method, NULL::integer AS revision, NULL::boolean AS current, NULL::timestamptz AS superseded_at`
	externalColumns = `0::bigint AS seq, id AS xid, time, param, value, unit, quality, source, sensor, flags,
		origin, record_id, station_code, collection, scene_date, scenes, pixels,
		sample_id, lab, method, revision, current, superseded_at`
)

// readingsSQL is the listing of q: each table's rows in order, limited, then merged.
func readingsSQL(q ReadingsQuery) (string, []any) {
	var w where
	w.add("station_id = ?", q.Station)
	if q.Param != "" {
		w.add("param = ?", q.Param)
	}
	if len(q.Sources) > 0 {
		w.add("source = ANY(?)", q.Sources)
	}
	w.timeRange("time", q.From, q.To)
	dir, cmp := "DESC", "<"
	if q.Oldest {
		dir, cmp = "ASC", ">"
	}
	base := w.conds
	var mConds, xConds []string
	if !q.Revisions {
		xConds = append(xConds, "current")
	}
	if a := q.After; a != nil {
		// At one time a station's readings (seq > 0) sort after external ones (seq 0) in
		// ascending order: see Position.
		t, seq := w.arg(a.Time), w.arg(int64(a.Seq))
		mConds = append(mConds, "(time, seq) "+cmp+" ("+t+", "+seq+")")
		switch {
		case a.Seq > 0 && q.Oldest: // the external rows of time t came before it
			xConds = append(xConds, "time > "+t)
		case a.Seq > 0: // the external rows of time t come after it
			xConds = append(xConds, "time <= "+t)
		default:
			xConds = append(xConds, "(time, id) "+cmp+" ("+t+", "+w.arg(int64(a.ID))+")")
		}
	}
	lim := " LIMIT " + w.arg(q.Limit)
	m := " WHERE " + strings.Join(slices.Concat(base, mConds), " AND ")
	x := " WHERE " + strings.Join(slices.Concat(base, xConds), " AND ")
	sql := `(SELECT ` + measurementColumns + ` FROM measurements` + m + ` ORDER BY time ` + dir + `, seq ` + dir + lim + `)
		UNION ALL
		(SELECT ` + externalColumns + ` FROM external_readings` + x + ` ORDER BY time ` + dir + `, id ` + dir + lim + `)
		ORDER BY time ` + dir + `, seq ` + dir + `, xid ` + dir + lim
	return sql, w.args
}

func scanReading(row pgx.CollectableRow) (Reading, error) {
	var r Reading
	var seq, xid int64
	var origin, recordID, stationCode, collection, sampleID, lab, method *string
	var scenes, pixels, revision *int32
	err := row.Scan(&seq, &xid, &r.Time, &r.Param, &r.Value, &r.Unit, &r.Quality, &r.Source, &r.Sensor, &r.Flags,
		&origin, &recordID, &stationCode, &collection, &r.SceneDate, &scenes, &pixels,
		&sampleID, &lab, &method, &revision, &r.Current, &r.SupersededAt)
	r.Seq, r.id, r.Time = uint64(seq), uint64(xid), r.Time.UTC()
	if len(r.Flags) == 0 {
		r.Flags = nil
	}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	num := func(p *int32) int {
		if p == nil {
			return 0
		}
		return int(*p)
	}
	r.Origin, r.RecordID, r.StationCode, r.Collection = deref(origin), deref(recordID), deref(stationCode), deref(collection)
	r.SampleID, r.Lab, r.Method = deref(sampleID), deref(lab), deref(method)
	r.Scenes, r.Pixels, r.Revision = num(scenes), num(pixels), num(revision)
	utc(r.SceneDate)
	utc(r.SupersededAt)
	return r, err
}

// Readings lists readings (see ReadingsQuery).
func (s *Store) Readings(ctx context.Context, q ReadingsQuery) ([]Reading, error) {
	sql, args := readingsSQL(q)
	var out []Reading
	err := s.query(ctx, "readings", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanReading)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("readings of %s: %w", q.Station, err)
	}
	return out, nil
}

// ExportPage is how many rows ExportReadings reads per query.
const ExportPage = 2000

// ExportReadings calls fn with every reading q selects, in its order, reading them in
// pages of ExportPage rows so that any range costs constant memory and no query holds a
// snapshot for long. q.Limit and q.After are ignored. An error from fn stops the walk
// and is returned as is.
func (s *Store) ExportReadings(ctx context.Context, q ReadingsQuery, fn func(Reading) error) error {
	q.Limit, q.After = ExportPage, nil
	for {
		page, err := s.Readings(ctx, q)
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < ExportPage {
			return nil
		}
		p := page[len(page)-1].Position()
		q.After = &p
	}
}

// BucketSize names a rollup.
type BucketSize string

// The rollups.
const (
	Hourly BucketSize = "1h"
	Daily  BucketSize = "1d"
)

func (b BucketSize) table() (string, error) {
	switch b {
	case Hourly:
		return "measurements_hourly", nil
	case Daily:
		return "measurements_daily", nil
	}
	return "", fmt.Errorf("%w: bucket %q", ErrInvalid, b)
}

// Rollup is one bucket of one parameter: statistics of its usable (not bad) readings.
type Rollup struct {
	Bucket time.Time
	Param  string
	Avg    float64
	Min    float64
	Max    float64
	Count  int64
}

// RollupPosition is a place in a newest-first listing of buckets.
type RollupPosition struct {
	Bucket time.Time
	Param  string
}

// RollupQuery selects buckets of one station, newest first (then by param, descending).
type RollupQuery struct {
	Station  string
	Param    string // "" for every parameter
	Size     BucketSize
	From, To time.Time // bucket start: From inclusive, To exclusive
	Limit    int
	After    *RollupPosition
}

// Rollups lists buckets from measurements_hourly or measurements_daily.
func (s *Store) Rollups(ctx context.Context, q RollupQuery) ([]Rollup, error) {
	out := []Rollup{}
	err := s.ScanRollups(ctx, q, func() { out = out[:0] }, func(r *Rollup) error {
		out = append(out, *r)
		return nil
	})
	return out, err
}

// ScanRollups calls each with the buckets Rollups lists, in its order, as they arrive
// from the database, so that what the caller does with one (a listing written as JSON)
// overlaps the database's producing the next, instead of following all of them. *r is
// reused: each keeps what it needs of it. The query may be tried again after a failure:
// restart is called before each attempt, and the caller forgets what it was given.
func (s *Store) ScanRollups(ctx context.Context, q RollupQuery, restart func(), each func(r *Rollup) error) error {
	table, err := q.Size.table()
	if err != nil {
		return err
	}
	var w where
	w.add("station_id = ?", q.Station)
	if q.Param != "" {
		w.add("param = ?", q.Param)
	}
	w.timeRange("bucket", q.From, q.To)
	if q.After != nil {
		w.add("(bucket, param) < (?, ?)", q.After.Bucket, q.After.Param)
	}
	sql := `SELECT bucket, param, avg, min, max, count FROM ` + table + w.String() +
		` ORDER BY bucket DESC, param DESC` + w.limit(q.Limit)
	err = s.query(ctx, "rollups", func(ctx context.Context) error {
		restart()
		rows, err := s.pool.Query(ctx, sql, w.args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		var r Rollup
		var names paramNames
		direct := rollupsBinary(rows.FieldDescriptions())
		for rows.Next() {
			if !direct || !decodeRollup(rows.RawValues(), &r, &names) {
				if err := rows.Scan(&r.Bucket, &r.Param, &r.Avg, &r.Min, &r.Max, &r.Count); err != nil {
					return err
				}
				r.Bucket = r.Bucket.UTC()
			}
			if err := each(&r); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("rollups of %s: %w", q.Station, err)
	}
	return nil
}

// rollupsBinary reports whether a listing of buckets comes as decodeRollup reads it:
// bucket, param, avg, min, max and count as timestamptz, text, float8 and int8, the
// numbers in PostgreSQL's binary formats (pgx asks for those of the types it knows).
func rollupsBinary(fields []pgconn.FieldDescription) bool {
	want := [...]uint32{pgtype.TimestamptzOID, pgtype.TextOID, pgtype.Float8OID, pgtype.Float8OID, pgtype.Float8OID, pgtype.Int8OID}
	if len(fields) != len(want) {
		return false
	}
	for i, f := range fields {
		// Text's two formats are the same bytes.
		if f.DataTypeOID != want[i] || f.Format != pgtype.BinaryFormatCode && f.DataTypeOID != pgtype.TextOID {
			return false
		}
	}
	return true
}

// postgresEpoch is where PostgreSQL's binary timestamps count their microseconds from.
var postgresEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// decodeRollup reads one bucket of a listing rollupsBinary accepted straight from its
// wire values, and reports whether it could (NULLs and infinite times are left to
// pgx's Scan and its errors). A year of hourly buckets is tens of thousands of rows, and
// pgx's general scanning, a plan per value behind interfaces and a new string for each
// param, cost as much as writing them as JSON.
func decodeRollup(raw [][]byte, r *Rollup, names *paramNames) bool {
	if raw[1] == nil || len(raw[0]) != 8 || len(raw[2]) != 8 || len(raw[3]) != 8 || len(raw[4]) != 8 || len(raw[5]) != 8 {
		return false
	}
	us := int64(binary.BigEndian.Uint64(raw[0]))
	if us == math.MaxInt64 || us == math.MinInt64 { // infinity, -infinity
		return false
	}
	r.Bucket = time.Unix(postgresEpoch+us/1e6, us%1e6*1e3).UTC()
	r.Param = names.intern(raw[1])
	r.Avg = math.Float64frombits(binary.BigEndian.Uint64(raw[2]))
	r.Min = math.Float64frombits(binary.BigEndian.Uint64(raw[3]))
	r.Max = math.Float64frombits(binary.BigEndian.Uint64(raw[4]))
	r.Count = int64(binary.BigEndian.Uint64(raw[5]))
	return true
}

// paramNames keeps the parameter names a listing has seen, so that its rows (a few
// parameters, over and over) share their strings instead of each allocating one.
type paramNames []string

// maxParamNames bounds what a listing keeps; names past it are allocated per row.
const maxParamNames = 64

func (p *paramNames) intern(b []byte) string {
	for _, s := range *p {
		if s == string(b) {
			return s
		}
	}
	s := string(b)
	if len(*p) < maxParamNames {
		*p = append(*p, s)
	}
	return s
}

// WQIQuery selects a station's WQI history, newest first.
type WQIQuery struct {
	Station  string
	From, To time.Time
	Limit    int
	After    *Position
}

const wqiColumns = `seq, time, wqi, class, category, partial, missing, sub_indices, do_saturation_pct`

func scanWQI(row pgx.CollectableRow) (wire.WQIPoint, error) {
	var p wire.WQIPoint
	var seq int64
	err := row.Scan(&seq, &p.Time, &p.WQI, &p.Class, &p.Category, &p.Partial, &p.Missing, &p.SubIndices, &p.DOSaturationPct)
	p.Seq, p.Time = uint64(seq), p.Time.UTC()
	if p.Missing == nil {
		p.Missing = []string{}
	}
	return p, err
}

// WQIHistory lists WQI results, newest first.
func (s *Store) WQIHistory(ctx context.Context, q WQIQuery) ([]wire.WQIPoint, error) {
	var w where
	w.add("station_id = ?", q.Station)
	w.timeRange("time", q.From, q.To)
	if q.After != nil {
		w.add("(time, seq) < (?, ?)", q.After.Time, int64(q.After.Seq))
	}
	sql := `SELECT ` + wqiColumns + ` FROM wqi_readings` + w.String() + ` ORDER BY time DESC, seq DESC` + w.limit(q.Limit)
	var out []wire.WQIPoint
	err := s.query(ctx, "wqi", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, sql, w.args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanWQI)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("wqi of %s: %w", q.Station, err)
	}
	return out, nil
}

// LatestWQI returns the station's newest WQI result, or nil when it has none.
func (s *Store) LatestWQI(ctx context.Context, station string) (*wire.WQIPoint, error) {
	ps, err := s.WQIHistory(ctx, WQIQuery{Station: station, Limit: 1})
	if err != nil || len(ps) == 0 {
		return nil, err
	}
	return &ps[0], nil
}

// Latest is the newest usable value of one parameter from one source at a station.
type Latest struct {
	Param   string
	Source  string
	Time    time.Time
	Value   float64
	Unit    string
	Quality string
	Sensor  string
	Seq     uint64 // 0 for a value from outside the station
	Origin  string // configured source name of an external value ("manual" for a posted sample); "" for the station's own
}

// LatestValues returns, per parameter and source, the station's newest usable value:
// what its agent sent, and the current revision of what labs, government programmes and
// satellites published (by origin, so one parameter and source may appear once per
// origin).
func (s *Store) LatestValues(ctx context.Context, station string) ([]Latest, error) {
	var out []Latest
	err := s.query(ctx, "latest values", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT param, source, time, value, unit, quality, sensor, seq, ''
			FROM station_latest WHERE station_id = $1
			UNION ALL
			(SELECT DISTINCT ON (param, source, origin) param, source, time, value, unit, quality, sensor, 0, origin
			FROM external_readings WHERE station_id = $1 AND current AND quality <> 'bad'
			ORDER BY param, source, origin, time DESC, id DESC)
			ORDER BY 1, 2, 9`, station)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Latest, error) {
			var l Latest
			var seq int64
			err := row.Scan(&l.Param, &l.Source, &l.Time, &l.Value, &l.Unit, &l.Quality, &l.Sensor, &seq, &l.Origin)
			l.Seq, l.Time = uint64(seq), l.Time.UTC()
			return l, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("latest values of %s: %w", station, err)
	}
	return out, nil
}

// Alert is an alert's current state as the API shows it: the record the agent keeps
// (shared/alert), with who raised it and when it last changed.
type Alert struct {
	alert.Record
	// Origin says who raised it: "station" (the station's own rules) or "cloud" (rules the
	// cloud evaluates, such as station_offline). Each origin has its own id space.
	Origin    string    `json:"origin"`
	UpdatedAt time.Time `json:"updated_at"`
	// AckPending: acknowledged in the cloud, and the station has not confirmed it yet.
	AckPending bool `json:"ack_pending,omitempty"`
	// Evidence is what a cloud rule saw when it raised or last changed the alert (see
	// CloudAlert); agents' alerts have none.
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// alertColumns are the columns scanAlert reads.
const alertColumns = `alert_id, origin, station_id, rule, key, param, sensor, severity, state, opened_at,
		acknowledged_at, acknowledged_by, resolved_at, message, value, "limit", updated_at, ack_pending, evidence`

func scanAlert(row pgx.CollectableRow) (Alert, error) {
	var a Alert
	var id int64
	err := row.Scan(&id, &a.Origin, &a.Station, &a.Rule, &a.Key, &a.Param, &a.Sensor, &a.Severity, &a.State,
		&a.OpenedAt, &a.AcknowledgedAt, &a.AcknowledgedBy, &a.ResolvedAt, &a.Message, &a.Value, &a.Limit,
		&a.UpdatedAt, &a.AckPending, &a.Evidence)
	a.ID = uint64(id)
	a.OpenedAt, a.UpdatedAt = a.OpenedAt.UTC(), a.UpdatedAt.UTC()
	utc(a.AcknowledgedAt)
	utc(a.ResolvedAt)
	return a, err
}

// Alert origins.
const (
	OriginStation = "station"
	OriginCloud   = "cloud"
)

// AlertPosition is a place in the alert listing (newest opened first).
type AlertPosition struct {
	OpenedAt time.Time
	Station  string
	ID       uint64
}

// AlertQuery selects alerts, newest opened first.
type AlertQuery struct {
	Station string    // "" for every station
	Active  *bool     // true: not resolved; false: resolved; nil: both
	Since   time.Time // only alerts whose latest transition is at or after Since; zero for all
	Limit   int
	After   *AlertPosition
}

// Alerts lists alerts.
func (s *Store) Alerts(ctx context.Context, q AlertQuery) ([]Alert, error) {
	var w where
	if q.Station != "" {
		w.add("station_id = ?", q.Station)
	}
	if q.Active != nil {
		if *q.Active {
			w.add("state <> 'resolved'")
		} else {
			w.add("state = 'resolved'")
		}
	}
	if !q.Since.IsZero() {
		w.add("updated_at >= ?", q.Since)
	}
	if q.After != nil {
		w.add("(opened_at, station_id, alert_id) < (?, ?, ?)", q.After.OpenedAt, q.After.Station, int64(q.After.ID))
	}
	sql := `SELECT ` + alertColumns + ` FROM alerts` + w.String() +
		` ORDER BY opened_at DESC, station_id DESC, alert_id DESC` + w.limit(q.Limit)
	var out []Alert
	err := s.query(ctx, "alerts", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, sql, w.args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanAlert)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return out, nil
}

func utc(t *time.Time) {
	if t != nil {
		*t = t.UTC()
	}
}

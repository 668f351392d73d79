package govdata

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// IST is India Standard Time, the zone of every time an Indian portal prints without an
// offset. A fixed zone: India has no daylight saving, and the cloud needs no time zone
// database for it.
var IST = time.FixedZone("IST", 5*3600+30*60)

// YearFormat is the time format of yearly values ("2019"): such a value is stamped at
// the start of its year.
const YearFormat = "2006"

// Mapping says how a source's records become readings. Field names are the dataset's
// field ids; a dotted name ("id.stationCode") reaches into a nested object.
type Mapping struct {
	// StationField holds the upstream station code (a string or a number).
	StationField string
	// TimeField holds when the sample was taken, in TimeFormat; ClockField, if set, holds
	// the time of day separately and is appended to it after a space before parsing.
	TimeField  string
	ClockField string
	// TimeFormat is a Go time layout; "" accepts RFC 3339 and the ISO forms
	// "2006-01-02T15:04:05", "2006-01-02 15:04:05" and "2006-01-02"; YearFormat ("2006")
	// reads a year.
	TimeFormat string
	// Location is the zone of times without an offset; default IST.
	Location *time.Location
	// IDField, if set and present, is the record's own id. Otherwise the id is a digest
	// of the station code, the time and KeyFields (fields that tell apart two records of
	// one station and time, such as a sampling depth).
	IDField   string
	KeyFields []string
	// Params maps our parameter names (aliases accepted) to the fields that hold them.
	Params map[string]string
	// Units gives the unit a parameter's field is in (any spelling telemetry accepts),
	// keyed like Params; default the canonical unit. UnitField, if set and present in a
	// record, overrides it for that record's values.
	Units     map[string]string
	UnitField string
	// Stations maps upstream station codes to our station ids. Records of other stations
	// are counted (OtherStation) and ignored.
	Stations map[string]string
	// Zero lists texts that a source prints for a measured zero (IMD's "NIL" rainfall),
	// compared without regard to case. Nothing else ever becomes 0.
	Zero []string
}

// mapper is a checked Mapping.
type mapper struct {
	Mapping
	params []paramField // sorted by parameter, for a stable reading order
}

type paramField struct {
	param telemetry.Param
	field string
	unit  string
}

// compile checks m and returns its mapper; the error lists every problem.
func (m Mapping) compile() (*mapper, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.StationField == "" {
		bad("station_field is required")
	}
	if m.TimeField == "" {
		bad("time_field is required")
	}
	if m.Location == nil {
		m.Location = IST
	}
	if m.TimeFormat != "" && m.TimeFormat != YearFormat {
		// A layout must carry at least a year, or every record lands in year 0.
		if !strings.Contains(m.TimeFormat, "2006") && !strings.Contains(m.TimeFormat, "06") {
			bad("time_format %q has no year (a Go layout: 2006-01-02 15:04)", m.TimeFormat)
		}
	}
	if len(m.Params) == 0 {
		bad("params: at least one parameter is required")
	}
	if len(m.Stations) == 0 {
		bad("stations: at least one upstream station code is required")
	}
	for code, id := range m.Stations {
		if strings.TrimSpace(code) == "" {
			bad("stations: an empty upstream code")
		}
		if !telemetry.ValidStationID(id) {
			bad("stations: %q for code %q is not a station id (%s)", id, code, telemetry.StationIDRule)
		}
	}
	out := &mapper{}
	seen := map[telemetry.Param]string{}
	for _, name := range slices.Sorted(maps.Keys(m.Params)) {
		field := m.Params[name]
		p, err := telemetry.ParseParam(name)
		if err != nil {
			bad("params: %v", err)
			continue
		}
		if field == "" {
			bad("params: %s has no field", name)
			continue
		}
		if prev, dup := seen[p]; dup {
			bad("params: %s and %s are the same parameter (%s)", prev, name, p)
			continue
		}
		seen[p] = name
		unit := m.Units[name]
		if _, _, _, err := telemetry.Normalize(string(p), 1, unit); err != nil {
			bad("units: %s: %v", name, err)
		}
		out.params = append(out.params, paramField{param: p, field: field, unit: unit})
	}
	for name := range m.Units {
		if _, ok := m.Params[name]; !ok {
			bad("units: %s is not in params", name)
		}
	}
	slices.SortFunc(out.params, func(a, b paramField) int { return strings.Compare(string(a.param), string(b.param)) })
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out.Mapping = m
	return out, nil
}

// fields lists every field the mapping reads, for checking against a dataset's schema.
func (m *mapper) fields() []string {
	out := []string{m.StationField, m.TimeField}
	for _, f := range []string{m.ClockField, m.IDField, m.UnitField} {
		if f != "" {
			out = append(out, f)
		}
	}
	out = append(out, m.KeyFields...)
	for _, p := range m.params {
		out = append(out, p.field)
	}
	return out
}

// Record is one upstream record: field id → raw JSON value.
type Record map[string]json.RawMessage

// lookup finds a field, reaching into nested objects through a dotted name when the
// record has no field of that exact name.
func (r Record) lookup(name string) (json.RawMessage, bool) {
	if v, ok := r[name]; ok {
		return v, true
	}
	head, rest, dotted := strings.Cut(name, ".")
	if !dotted {
		return nil, false
	}
	raw, ok := r[head]
	if !ok || len(bytes.TrimSpace(raw)) == 0 || bytes.TrimSpace(raw)[0] != '{' {
		return nil, false
	}
	var inner Record
	if json.Unmarshal(raw, &inner) != nil {
		return nil, false
	}
	return inner.lookup(rest)
}

// station returns the upstream code and our station id of a record; kind says why there
// is none.
func (m *mapper) station(r Record) (code, ours, kind string) {
	raw, _ := r.lookup(m.StationField)
	code, ok := text(raw)
	if !ok {
		return "", "", NoStation
	}
	ours, ok = m.Stations[code]
	if !ok {
		return code, "", OtherStation
	}
	return code, ours, ""
}

// sampled reads when a record's sample was taken.
func (m *mapper) sampled(r Record) (time.Time, string, error) {
	raw, _ := r.lookup(m.TimeField)
	s, ok := text(raw)
	if !ok {
		return time.Time{}, "", fmt.Errorf("no %s", m.TimeField)
	}
	if m.ClockField != "" {
		raw, _ := r.lookup(m.ClockField)
		clock, ok := text(raw)
		if !ok {
			return time.Time{}, "", fmt.Errorf("no %s", m.ClockField)
		}
		s += " " + clock
	}
	t, err := parseTime(s, m.TimeFormat, m.Location)
	return t, s, err
}

// isoLayouts are tried in turn when no time format is configured.
var isoLayouts = []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"}

func parseTime(s, layout string, loc *time.Location) (time.Time, error) {
	if layout != "" {
		t, err := time.ParseInLocation(layout, s, loc)
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q does not match %q", s, layout)
		}
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, l := range isoLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q is not RFC 3339 or an ISO date", s)
}

// recordID returns the record's own id or a digest of what identifies it.
func (m *mapper) recordID(r Record, code, when string) string {
	if m.IDField != "" {
		if raw, ok := r.lookup(m.IDField); ok {
			if id, ok := text(raw); ok {
				return id
			}
		}
	}
	h := sha256.New()
	for _, part := range append([]string{code, when}, m.keyValues(r)...) {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (m *mapper) keyValues(r Record) []string {
	out := make([]string, 0, len(m.KeyFields))
	for _, f := range m.KeyFields {
		raw, _ := r.lookup(f)
		out = append(out, string(bytes.TrimSpace(raw)))
	}
	return out
}

// zero reports whether raw is one of the texts that mean a measured zero.
func (m *mapper) zero(raw json.RawMessage) bool {
	s, ok := text(raw)
	if !ok {
		return false
	}
	return slices.ContainsFunc(m.Zero, func(z string) bool { return strings.EqualFold(z, s) })
}

// readings turns one record into readings for b, counting what it cannot use.
func (m *mapper) readings(r Record, b *upstream.Batch) {
	b.Records++
	code, ours, kind := m.station(r)
	if kind != "" {
		b.Skipped.Add(kind, 1)
		return
	}
	at, when, err := m.sampled(r)
	if err != nil {
		b.Skipped.Add(BadTime, 1)
		return
	}
	id := m.recordID(r, code, when)
	recordUnit := ""
	if m.UnitField != "" {
		if raw, ok := r.lookup(m.UnitField); ok {
			recordUnit, _ = text(raw)
		}
	}
	for _, pf := range m.params {
		raw, _ := r.lookup(pf.field)
		v, kind := ParseValue(raw)
		if kind != "" && m.zero(raw) {
			v, kind = 0, ""
		}
		if kind != "" {
			b.Skipped.Add(kind, 1)
			continue
		}
		unit := pf.unit
		if recordUnit != "" {
			unit = recordUnit
		}
		p, v, canonical, err := telemetry.Normalize(string(pf.param), v, unit)
		if err != nil {
			b.Skipped.Add(BadUnit, 1)
			continue
		}
		b.Readings = append(b.Readings, upstream.Reading{
			Reading: telemetry.Reading{Station: ours, Param: p, Value: v, Unit: canonical,
				Time: at.UTC(), Source: telemetry.SourceAPI},
			Origin: upstream.Origin{RecordID: id, StationCode: code},
		})
	}
}

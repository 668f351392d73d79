package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Limits on what Decode accepts. A payload over a limit is refused whole.
const (
	MaxSize    = 64 << 10               // bytes in one payload
	MaxItems   = 1000                   // items in one readings array
	MaxTextLen = telemetry.MaxSensorLen // bytes in a param, unit or sensor string
)

// Errors that Decode wraps. Match them with errors.Is; the message around them names the field
// and, in a readings array, the item.
var (
	ErrEmpty    = errors.New("empty payload")
	ErrTooLarge = errors.New("payload too large")
	ErrTooMany  = errors.New("too many readings")
	ErrSyntax   = errors.New("malformed JSON")
	ErrMissing  = errors.New("missing")
	ErrType     = errors.New("wrong JSON type") // see TypeError
	ErrTooLong  = errors.New("too long")
	ErrTime     = errors.New("cannot parse time")
	ErrConflict = errors.New("conflicts with the topic")
)

// TypeError says that a JSON value has the wrong type, e.g. "want a number, got string". It
// matches ErrType.
type TypeError struct {
	Want string // "a number", "an object", ...
	Got  string // the JSON type found: "string", "array", "null", ...
}

func (e *TypeError) Error() string { return "want " + e.Want + ", got " + e.Got }

// Is makes errors.Is(err, ErrType) true.
func (e *TypeError) Is(target error) bool { return target == ErrType }

// FieldError locates a problem inside a payload.
type FieldError struct {
	Index int    // position in a readings array, or -1 outside one
	Field string // "value", "unit", ...; "" when the item as a whole is wrong
	Err   error
}

func (e *FieldError) Error() string {
	var path string
	switch {
	case e.Index >= 0 && e.Field != "":
		path = Readings + "[" + strconv.Itoa(e.Index) + "]." + e.Field
	case e.Index >= 0:
		path = Readings + "[" + strconv.Itoa(e.Index) + "]"
	default:
		path = e.Field
	}
	if path == "" {
		return e.Err.Error()
	}
	return path + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// Split returns the separate problems in an error from Decode: one per bad item of a readings
// array, or the error itself. It returns nil for a nil error.
func Split(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Decode turns one message published on the topic leaf into observations. It is pure and safe
// for concurrent use; the transports (MQTT, CoAP, HTTP) share it.
//
// For a parameter leaf (any alias, e.g. "ph", "do", "temperature") the payload is an object
// {"value": 7.2, "unit": "pH", "timestamp": "...", "sensor": "..."} with only value required,
// or a bare JSON number. The leaf is the parameter; the sensor defaults to the leaf. An
// object's "param", if present, must name the same parameter as the leaf.
//
// For the leaf "readings" the payload is a JSON array of such objects, each with a required
// "param". The sensor defaults to the item's param. Items that fail to decode do not spoil the
// others: Decode returns the good ones, in order, together with an error joining one
// *FieldError per bad item (see Split). A payload refused whole returns no observations.
//
// A timestamp is an RFC 3339 string (offset or Z, fractional seconds allowed), a string
// without offset ("2025-11-13T12:00:00" or "2025-11-13 12:00:00") read as local time in loc
// (nil means UTC), or a JSON number of Unix seconds (milliseconds from 1e12 on). Times are
// returned in UTC; a missing timestamp leaves Time zero (the receive time is used then).
//
// Values must be finite JSON numbers: a numeric string is refused. Unknown fields are
// ignored. Parameters and units are returned as sent, not normalized.
func Decode(leaf string, data []byte, loc *time.Location) ([]telemetry.Observation, error) {
	return AppendDecode(nil, leaf, data, loc)
}

// AppendDecode is Decode appending the observations to dst, so that a caller decoding
// message after message can reuse one array. It returns dst unchanged with a payload
// refused whole.
func AppendDecode(dst []telemetry.Observation, leaf string, data []byte, loc *time.Location) ([]telemetry.Observation, error) {
	if leaf == "" {
		return dst, &FieldError{Index: -1, Field: "param", Err: ErrMissing}
	}
	if len(data) > MaxSize {
		return dst, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxSize)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return dst, ErrEmpty
	}
	if loc == nil {
		loc = time.UTC
	}
	if leaf == Readings {
		return decodeArray(dst, data, loc)
	}
	return decodeOne(dst, leaf, data, loc)
}

func decodeOne(dst []telemetry.Observation, leaf string, data []byte, loc *time.Location) ([]telemetry.Observation, error) {
	switch k := kind(data); k {
	case "object":
		it, err := decodeItem(data)
		if err != nil {
			return dst, err
		}
		o, err := it.observation(leaf, -1, loc)
		if err != nil {
			return dst, err
		}
		return append(dst, o), nil
	case "number":
		if !isNumber(data) {
			return dst, fmt.Errorf("%w: %s is not a JSON number", ErrSyntax, quote(string(data)))
		}
		v, err := parseNumber(data)
		if err != nil {
			return dst, &FieldError{Index: -1, Field: "value", Err: err}
		}
		return append(dst, telemetry.Observation{
			Sensor: leaf, Param: leaf, Value: v, Source: telemetry.SourceSensor,
		}), nil
	case "invalid":
		return dst, fmt.Errorf("%w: want an object or a number, got %s", ErrSyntax, quote(string(data)))
	default:
		return dst, &TypeError{Want: "an object or a number", Got: k}
	}
}

func decodeArray(dst []telemetry.Observation, data []byte, loc *time.Location) ([]telemetry.Observation, error) {
	if k := kind(data); k != "array" {
		if k == "invalid" {
			return dst, fmt.Errorf("%w: want an array of readings, got %s", ErrSyntax, quote(string(data)))
		}
		return dst, &TypeError{Want: "an array of readings", Got: k}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return dst, syntaxError(err)
	}
	switch {
	case len(raws) == 0:
		return dst, fmt.Errorf("%w: no readings in the array", ErrEmpty)
	case len(raws) > MaxItems:
		return dst, fmt.Errorf("%w: %d, limit %d", ErrTooMany, len(raws), MaxItems)
	}
	n := len(dst)
	obs := slices.Grow(dst, len(raws))
	var errs []error
	for i, raw := range raws {
		if k := kind(raw); k != "object" {
			errs = append(errs, &FieldError{Index: i, Err: &TypeError{Want: "an object", Got: k}})
			continue
		}
		it, err := decodeItem(raw)
		if err != nil {
			errs = append(errs, &FieldError{Index: i, Err: err})
			continue
		}
		o, err := it.observation("", i, loc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		obs = append(obs, o)
	}
	if len(obs) == n {
		return dst, errors.Join(errs...)
	}
	return obs, errors.Join(errs...)
}

// item is one reading object. Fields stay raw so that a wrong type gets a message naming
// the field instead of encoding/json's Go-flavoured one; unknown fields are ignored.
type item struct {
	Param     json.RawMessage `json:"param"`
	Value     json.RawMessage `json:"value"`
	Unit      json.RawMessage `json:"unit"`
	Timestamp json.RawMessage `json:"timestamp"`
	Sensor    json.RawMessage `json:"sensor"`
}

// decodeItem decodes one reading object, data. The common shape takes the fast path
// (see scan); everything else goes to encoding/json.
func decodeItem(data []byte) (item, error) {
	var it item
	if it.scan(data) {
		return it, nil
	}
	var slow item // apart from it, which would otherwise escape to the heap on every call
	if err := json.Unmarshal(data, &slow); err != nil {
		return item{}, syntaxError(err)
	}
	return slow, nil
}

// observation checks the item. topicParam is the parameter named by the topic, or "" for an
// item of a readings array, which must name its own. It returns a *FieldError.
func (it *item) observation(topicParam string, index int, loc *time.Location) (telemetry.Observation, error) {
	fail := func(field string, err error) (telemetry.Observation, error) {
		return telemetry.Observation{}, &FieldError{Index: index, Field: field, Err: err}
	}
	param, present, err := text(it.Param)
	switch {
	case err != nil:
		return fail("param", err)
	case topicParam == "" && param == "":
		return fail("param", ErrMissing)
	case topicParam != "" && present && param != "" && !sameParam(param, topicParam):
		return fail("param", fmt.Errorf("%s %w %s", quote(param), ErrConflict, quote(topicParam)))
	case topicParam != "":
		param = topicParam
	}

	if isAbsent(it.Value) {
		return fail("value", ErrMissing)
	}
	if k := kind(it.Value); k != "number" {
		return fail("value", &TypeError{Want: "a number", Got: k})
	}
	value, err := parseNumber(it.Value)
	if err != nil {
		return fail("value", err)
	}

	unit, _, err := text(it.Unit)
	if err != nil {
		return fail("unit", err)
	}
	when, err := parseTime(it.Timestamp, loc)
	if err != nil {
		return fail("timestamp", err)
	}
	sensor, _, err := text(it.Sensor)
	if err != nil {
		return fail("sensor", err)
	}
	if sensor == "" {
		sensor = param
	}
	return telemetry.Observation{
		Sensor: sensor,
		Param:  param,
		Value:  value,
		Unit:   unit,
		Time:   when,
		Source: telemetry.SourceSensor,
	}, nil
}

// sameParam reports whether two spellings name the same parameter, so that {"param": "pH"}
// on the topic .../ph is not a conflict.
func sameParam(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	pa, errA := telemetry.ParseParam(a)
	pb, errB := telemetry.ParseParam(b)
	return errA == nil && errB == nil && pa == pb
}

// isAbsent reports whether an optional field is missing or null.
func isAbsent(raw json.RawMessage) bool {
	return len(raw) == 0 || kind(raw) == "null"
}

// text reads an optional string field, trimmed. present is false when it is missing or null.
func text(raw json.RawMessage) (s string, present bool, err error) {
	if isAbsent(raw) {
		return "", false, nil
	}
	if k := kind(raw); k != "string" {
		return "", true, &TypeError{Want: "a string", Got: k}
	}
	s, err = unmarshalString(raw)
	if err != nil {
		return "", true, err
	}
	s = strings.TrimSpace(s)
	if len(s) > MaxTextLen {
		return "", true, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLong, len(s), MaxTextLen)
	}
	// The cloud's rule for names (a NUL or an escape sequence would be refused there, break
	// an exec hook's environment or reach a technician's terminal).
	if s != "" {
		if err := telemetry.CheckName(s, MaxTextLen); err != nil {
			return "", true, err
		}
	}
	return s, true, nil
}

// parseNumber reads a JSON number token (already validated as JSON) as a finite float64.
func parseNumber(raw []byte) (float64, error) {
	v, err := strconv.ParseFloat(string(raw), 64)
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%w: %s", telemetry.ErrNotFinite, quote(string(raw)))
	}
	if err != nil && !errors.Is(err, strconv.ErrRange) { // underflow to 0 is a fine reading
		return 0, fmt.Errorf("%w: %s is not a number", ErrSyntax, quote(string(raw)))
	}
	return v, nil
}

// Unix times beyond year 9999 cannot be written back as RFC 3339; milliseconds start at 1e12
// seconds (year 33658), far beyond any real seconds value.
const (
	maxUnixSeconds  = 253402300799 // 9999-12-31T23:59:59Z
	millisThreshold = 1e12
)

var (
	zonedLayouts = []string{
		time.RFC3339, // fractional seconds are accepted when parsing
		"2006-01-02T15:04:05Z0700",
		"2006-01-02 15:04:05Z07:00",
		"2006-01-02 15:04:05Z0700",
	}
	localLayouts = []string{
		"2006-01-02T15:04:05",
		"2006-01-02 15:04:05",
	}
)

// parseLayouts reads s by the first of zonedLayouts, then localLayouts in loc, that fits,
// in UTC.
func parseLayouts(s string, loc *time.Location) (time.Time, bool) {
	for _, layout := range zonedLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	for _, layout := range localLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// timeString decodes a timestamp's JSON string token; unlike unmarshalString it keeps
// nothing for reuse, no two timestamps being alike.
func timeString(raw []byte) (string, error) {
	if body, ok := plainString(raw); ok {
		return string(body), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", syntaxError(err)
	}
	return s, nil
}

func parseTime(raw json.RawMessage, loc *time.Location) (time.Time, error) {
	if isAbsent(raw) {
		return time.Time{}, nil
	}
	switch k := kind(raw); k {
	case "number":
		v, err := parseNumber(raw)
		if err != nil {
			return time.Time{}, err
		}
		return unixTime(v)
	case "string":
		if body, ok := plainString(raw); ok {
			// The common form, RFC 3339, read from the payload's bytes: nothing to allocate.
			var t time.Time
			if t.UnmarshalText(body) == nil {
				return t.UTC(), nil
			}
		}
		s, err := timeString(raw)
		if err != nil {
			return time.Time{}, err
		}
		s = strings.TrimSpace(s)
		if t, ok := parseLayouts(s, loc); ok {
			return t, nil
		}
		return time.Time{}, fmt.Errorf("%w %s: want RFC 3339 (2025-11-13T12:00:00+05:30), "+
			"station local time (2025-11-13T12:00:00) or Unix seconds", ErrTime, quote(s))
	default:
		return time.Time{}, &TypeError{Want: "a time string or Unix seconds", Got: k}
	}
}

func unixTime(v float64) (time.Time, error) {
	if v < 0 {
		return time.Time{}, fmt.Errorf("%w: %v is before 1970", ErrTime, v)
	}
	var sec, nsec float64
	if v >= millisThreshold {
		ms := math.Floor(v)
		sec = math.Floor(ms / 1000)
		nsec = math.Round((ms - sec*1000 + (v - ms)) * 1e6)
	} else {
		sec = math.Floor(v)
		nsec = math.Round((v - sec) * 1e9)
	}
	if nsec >= 1e9 {
		sec++
		nsec -= 1e9
	}
	if sec > maxUnixSeconds {
		return time.Time{}, fmt.Errorf("%w: %v is after year 9999 in seconds and milliseconds", ErrTime, v)
	}
	return time.Unix(int64(sec), int64(nsec)).UTC(), nil
}

// kind names the JSON type of a value from its first byte; the value is trimmed JSON.
func kind(raw []byte) string {
	// JSON's whitespace skipped by hand: bytes.TrimLeft builds its set of bytes on every
	// call, and a reading's fields are looked at several times each.
	for len(raw) > 0 && (raw[0] == ' ' || raw[0] == '\t' || raw[0] == '\r' || raw[0] == '\n') {
		raw = raw[1:]
	}
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == '"':
		return "string"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case c == '-' || c >= '0' && c <= '9':
		return "number"
	}
	return "invalid"
}

func syntaxError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%w at byte %d: %v", ErrSyntax, se.Offset, se)
	}
	return fmt.Errorf("%w: %v", ErrSyntax, err)
}

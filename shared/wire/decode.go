package wire

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Limits on a batch, each enforced while the body is read, before the work it limits.
const (
	// MaxRecords bounds the records of all streams of one batch together; the agent's
	// uplink.batch_max may not exceed it.
	MaxRecords = 10000
	// MaxRecordBytes bounds one record as JSON (and any other value of the batch): the
	// largest valid record is an alert with a 4 KiB message, escaped.
	MaxRecordBytes = 32 << 10
	// MaxDecompressedBytes is what a batch of MaxRecords records can need: a reading with
	// the longest sensor name and every flag is about 1.2 KiB as JSON, a typical one 0.2.
	MaxDecompressedBytes = 16 << 20
	// MaxCompressedBytes bounds the body on the wire.
	MaxCompressedBytes = 8 << 20
)

// Errors from Decode. A decode error wraps one of them; match with errors.Is.
var (
	ErrVersion   = errors.New("unsupported batch version")
	ErrTooLarge  = errors.New("batch too large")
	ErrMalformed = errors.New("malformed batch")
)

// FieldError names the first invalid field of a batch.
type FieldError struct {
	Field string // e.g. readings[3].param
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Is makes a FieldError match ErrMalformed.
func (e *FieldError) Is(target error) bool { return target == ErrMalformed }

// DecodeOptions adjust Decode. The zero value is the package's limits and no budget.
type DecodeOptions struct {
	// Reserve, if set, is called with the size of every chunk of decompressed bytes
	// before it is decoded; an error stops the decoding and Decode returns it (wrapped).
	// A server uses it to bound the memory of all the batches it decodes at once.
	Reserve func(n int64) error
}

// Decode reads a batch from body. gzipped says whether body is gzip (Content-Encoding);
// plain JSON is accepted too, for hand-made requests.
//
// The body is decoded as a stream, one record at a time: the compressed and decompressed
// sizes, the number of records and the size of each record are checked as the bytes
// arrive, so a body of any size costs at most about MaxDecompressedBytes of memory,
// refused early. Every record is validated as it is decoded; the error names the first
// bad field. The version is checked as soon as "v" is read (the agent writes it first);
// a batch of another version is refused for its version, not for fields whose shape that
// version may have changed.
func Decode(body io.Reader, gzipped bool) (*Batch, error) {
	return DecodeWith(body, gzipped, DecodeOptions{})
}

// DecodeWith is Decode with options.
func DecodeWith(body io.Reader, gzipped bool, opts DecodeOptions) (*Batch, error) {
	var src io.Reader = &capped{r: body, left: MaxCompressedBytes,
		err: fmt.Errorf("%w: body exceeds %d bytes", ErrTooLarge, MaxCompressedBytes)}
	var zr *gzip.Reader
	if gzipped {
		var err error
		if zr, _ = gzipReaders.Get().(*gzip.Reader); zr != nil {
			err = zr.Reset(src)
		} else {
			zr, err = gzip.NewReader(src)
		}
		if err != nil {
			return nil, gzipError(err)
		}
		src = zr
	}
	m := &meter{r: src, left: MaxDecompressedBytes, reserve: opts.Reserve}
	d := decoder{s: stream{r: m}}
	b, err := d.batch()
	if err != nil {
		return nil, err
	}
	// Read to the end, so that a gzip stream is checked whole (its CRC and length).
	if _, err := io.Copy(io.Discard, m); err != nil {
		return nil, gzipError(err)
	}
	if zr != nil {
		gzipReaders.Put(zr)
	}
	return b, nil
}

// gzipReaders keeps the gzip readers of bodies read to their end for the next: a new one
// allocates its decompressor's window and tables, tens of KB a batch.
var gzipReaders sync.Pool

// readingLists keeps the readings arrays of released batches (Release) for the next
// batches decoded: a batch of 1000 readings is 170 KB, and growing one as its records
// arrive allocated about twice that again.
var readingLists sync.Pool

// takeReadingList returns an empty readings array from readingLists, or nil.
func takeReadingList() []Reading {
	if p, ok := readingLists.Get().(*[]Reading); ok {
		return (*p)[:0]
	}
	return nil
}

// Release gives the batch's readings array back to the decoder, for a batch decoded
// later. A server that is done with a decoded batch calls it; the batch's readings must
// not be used after it.
func (b *Batch) Release() {
	list := b.Readings[:cap(b.Readings)]
	b.Readings = nil
	if len(list) == 0 {
		return
	}
	clear(list) // the strings of the readings, for the collector
	readingLists.Put(&list)
}

// gzipError classifies a failure of the body's stream: a limit passes through, anything
// else is a malformed body.
func gzipError(err error) error {
	if errors.Is(err, ErrTooLarge) {
		return err
	}
	return fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
}

// capped reads at most left bytes from r, then fails with err.
type capped struct {
	r    io.Reader
	left int64
	err  error
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		if n, _ := c.r.Read(one[:]); n > 0 {
			return 0, c.err
		}
		return c.r.Read(p[:0])
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// meter bounds the decompressed stream: its total and the shared budget. (The stream
// bounds each value.)
type meter struct {
	r       io.Reader
	left    int64
	reserve func(int64) error
}

func (m *meter) Read(p []byte) (int, error) {
	if m.left <= 0 {
		var one [1]byte
		if n, _ := m.r.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%w: decompressed body exceeds %d bytes", ErrTooLarge, MaxDecompressedBytes)
		}
		return m.r.Read(p[:0])
	}
	if int64(len(p)) > m.left {
		p = p[:m.left]
	}
	n, err := m.r.Read(p)
	if n > 0 && m.reserve != nil {
		if rerr := m.reserve(int64(n)); rerr != nil {
			return 0, rerr
		}
	}
	m.left -= int64(n)
	return n, err
}

// decoder walks a batch object and decodes its records one at a time.
type decoder struct {
	s       stream
	strs    interner // the batch's repeated strings (parseReading)
	records int
	version *int
	// pending is the first error met before the version was known: a batch of another
	// version is refused for its version instead, so the rest is scanned for "v".
	pending error
}

func (d *decoder) batch() (*Batch, error) {
	b := &Batch{}
	if c, err := d.s.peek(); err != nil {
		return nil, d.fail(syntax(err))
	} else if c != '{' {
		return nil, fmt.Errorf("%w: a batch must be a JSON object", ErrMalformed)
	}
	d.s.pos++
	var seen [8]bool // the batch's own fields, by fieldIndex
	more, err := d.s.first('}')
	for ; more && err == nil; more, err = d.s.next('}', "a batch field") {
		var key string
		if key, err = d.key(); err != nil {
			break
		}
		if d.pending != nil {
			// Only the version matters now.
			if key == "v" {
				if err := d.readVersion(b); err != nil {
					return nil, err
				}
				return nil, d.pending
			}
			if err = d.skip(); err != nil {
				break
			}
			continue
		}
		if i := fieldIndex(key); i >= 0 {
			if seen[i] {
				return nil, d.fail(&FieldError{Field: key, Msg: "appears twice"})
			}
			seen[i] = true
		}
		switch key {
		case "v":
			err = d.readVersion(b)
		case "station":
			err = d.value(key, &b.Station)
		case "agent":
			err = d.value(key, &b.Agent)
		case "sent_at":
			err = d.value(key, &b.SentAt)
		case "readings":
			b.Readings = takeReadingList()
			err = records(d, key, &b.Readings, validateReading, parseReading)
			if len(b.Readings) == 0 {
				b.Release() // null or [] decodes to no list
			}
		case "alerts":
			err = records(d, key, &b.Alerts, validateAlert, nil)
		case "wqi":
			err = records(d, key, &b.WQI, validateWQI, nil)
		case "health":
			b.Health, err = d.health()
		default:
			// A field of a newer agent within this major: ignored, and bounded like any
			// other value.
			err = d.skip()
		}
		if err != nil {
			if d.version != nil || errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrMalformed) {
				return nil, err
			}
			d.pending, err = err, nil
		}
	}
	if d.pending != nil {
		return nil, d.pending
	}
	if err != nil {
		return nil, d.fail(syntax(err))
	}
	switch _, err := d.s.peek(); {
	case err == nil:
		return nil, fmt.Errorf("%w: data after the batch object", ErrMalformed)
	case err != io.EOF:
		return nil, d.fail(syntax(err))
	}
	if d.version == nil {
		return nil, &FieldError{Field: "v", Msg: "missing (the batch format version)"}
	}
	if err := validateHeader(b); err != nil {
		return nil, err
	}
	return b, nil
}

// key reads an object's key and the colon after it.
func (d *decoder) key() (string, error) {
	c, err := d.s.peek()
	if err != nil {
		return "", err
	}
	if c != '"' {
		return "", d.s.unexpected(c, "a field name")
	}
	raw, err := d.s.value()
	if err != nil {
		return "", err
	}
	key, ok := plainString(raw)
	if !ok {
		if err := json.Unmarshal(raw, &key); err != nil {
			return "", err
		}
	}
	return key, d.s.expect(':', "':' after a field name")
}

// plainString returns the string raw quotes when it holds printable ASCII only, with no
// escapes: what encoding/json would make of it.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	for _, c := range in {
		if c < 0x20 || c > 0x7e || c == '\\' || c == '"' {
			return "", false
		}
	}
	return string(in), true
}

// fieldIndex numbers the batch's own fields, -1 for another key (a newer agent's).
func fieldIndex(key string) int {
	switch key {
	case "v":
		return 0
	case "station":
		return 1
	case "agent":
		return 2
	case "sent_at":
		return 3
	case "readings":
		return 4
	case "alerts":
		return 5
	case "wqi":
		return 6
	case "health":
		return 7
	}
	return -1
}

func (d *decoder) readVersion(b *Batch) error {
	raw, err := d.s.value()
	if err != nil {
		return d.fail(syntax(err))
	}
	var v int
	if err := json.Unmarshal(raw, &v); err != nil {
		return d.fail(typed("v", err))
	}
	d.version = &v
	b.V = v
	if v != Version {
		return fmt.Errorf("%w: v=%d (this server reads v=%d)", ErrVersion, v, Version)
	}
	return nil
}

// value decodes one header field.
func (d *decoder) value(field string, v any) error {
	raw, err := d.s.value()
	if err != nil {
		return d.fail(syntax(err))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return d.fail(typed(field, err))
	}
	return nil
}

// records decodes the array of one stream, checking the count before each record is
// decoded and validating each as it comes. parse, when not nil, decodes a record's JSON
// the way encoding/json does, or declines it (see parseReading); what it declines is left
// to encoding/json.
func records[T any](d *decoder, stream string, list *[]T, validate func(stream string, i int, r *T) error,
	parse func(raw []byte, r *T, in *interner) bool) error {
	c, err := d.s.peek()
	if err != nil {
		return d.fail(syntax(err))
	}
	if c != '[' {
		raw, err := d.s.value()
		if err != nil {
			return d.fail(syntax(err))
		}
		if string(raw) == "null" { // no records
			return nil
		}
		return d.fail(&FieldError{Field: stream, Msg: "must be an array"})
	}
	d.s.pos++
	more, err := d.s.first(']')
	for ; more && err == nil; more, err = d.s.next(']', "a record") {
		if d.records >= MaxRecords {
			return fmt.Errorf("%w: more than %d records", ErrTooLarge, MaxRecords)
		}
		d.records++
		// Lent by the stream until the next value: parse copies what it keeps.
		raw, err := d.s.value()
		if err != nil {
			return d.fail(syntax(err))
		}
		i := len(*list)
		if i == cap(*list) {
			// Doubling, up to the batch's limit: append grows a long slice by a quarter,
			// which allocated about five times a batch's readings on the way to its length.
			*list = slices.Grow(*list, min(max(i, 8), MaxRecords-i))
		}
		// Decoded in place: a record of its own would be allocated for each.
		*list = append(*list, *new(T))
		r := &(*list)[i]
		if parse == nil || !parse(raw, r, &d.strs) {
			*r = *new(T)
			err = json.Unmarshal(raw, r)
		}
		if err != nil {
			err = d.fail(typed(fmt.Sprintf("%s[%d]", stream, i), err))
		} else {
			err = validate(stream, i, r)
		}
		if err != nil {
			*list = (*list)[:i]
			if d.version == nil {
				d.skipRest()
			}
			return err
		}
	}
	if err != nil {
		return d.fail(syntax(err))
	}
	return nil
}

// health decodes a health record, bounded by MaxHealthBytes before it is unmarshalled.
func (d *decoder) health() (*Health, error) {
	raw, err := d.s.value()
	if err != nil {
		return nil, d.fail(syntax(err))
	}
	if len(raw) > MaxHealthBytes {
		return nil, &FieldError{Field: "health", Msg: fmt.Sprintf("%d bytes (at most %d)", len(raw), MaxHealthBytes)}
	}
	if string(raw) == "null" {
		return nil, nil
	}
	var h Health
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, d.fail(typed("health", err))
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return &h, nil
}

// skip consumes one value, which must be valid JSON. Like every value, it may not exceed
// MaxRecordBytes.
func (d *decoder) skip() error {
	raw, err := d.s.value()
	if err != nil {
		return d.fail(syntax(err))
	}
	if !json.Valid(raw) {
		return fmt.Errorf("%w: a value at byte %d is not valid JSON", ErrMalformed, d.s.off+int64(d.s.pos-len(raw)))
	}
	return nil
}

// skipRest consumes the rest of an array after a bad record, so that the scan for the
// version can go on; a stream that lost its place stays broken, and the caller's error
// stands.
func (d *decoder) skipRest() {
	for {
		more, err := d.s.next(']', "a record")
		if !more || err != nil || d.skip() != nil {
			return
		}
	}
}

// fail passes limits and budget errors through as they are and makes anything else a
// malformed batch.
func (d *decoder) fail(err error) error {
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrMalformed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}

// typed turns a JSON error of a value at field into a FieldError where it can.
func typed(field string, err error) error {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		name := field
		if te.Field != "" {
			name += "." + te.Field
		}
		return &FieldError{Field: name, Msg: fmt.Sprintf("want %s, got %s", te.Type, te.Value)}
	}
	return syntax(err)
}

// syntax wraps a JSON syntax problem; limit and budget errors from the reader pass through.
func syntax(err error) error {
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrMalformed) {
		return err
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the body ends before the batch does", ErrMalformed)
	}
	if _, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// A reader's own error (the budget, a broken connection, gzip): kept as it is.
	return err
}

// Text bounds of the batch's fields.
const (
	maxText     = 4096 // an alert's message
	maxAgentLen = 64   // the agent's version string
	maxRuleLen  = 64
	maxKeyLen   = 256
	maxParamLen = 64
	maxCategory = 64
)

// Validate checks a whole batch (a decoded one is already checked) and names the first
// bad field.
func (b *Batch) Validate() error {
	if err := validateHeader(b); err != nil {
		return err
	}
	if n := len(b.Readings) + len(b.Alerts) + len(b.WQI); n > MaxRecords {
		return fmt.Errorf("%w: %d records (at most %d)", ErrTooLarge, n, MaxRecords)
	}
	for i := range b.Readings {
		if err := validateReading("readings", i, &b.Readings[i]); err != nil {
			return err
		}
	}
	for i := range b.Alerts {
		if err := validateAlert("alerts", i, &b.Alerts[i]); err != nil {
			return err
		}
	}
	for i := range b.WQI {
		if err := validateWQI("wqi", i, &b.WQI[i]); err != nil {
			return err
		}
	}
	if b.Health != nil {
		return b.Health.Validate()
	}
	return nil
}

func bad(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// at names a record's field; it runs only for the one that is refused (formatting every
// record's name cost as much as the checks).
func at(list string, i int, name string) string { return fmt.Sprintf("%s[%d].%s", list, i, name) }

func validateHeader(b *Batch) error {
	if !telemetry.ValidStationID(b.Station) {
		return bad("station", "must be %s", telemetry.StationIDRule)
	}
	if b.Agent != "" {
		if err := telemetry.CheckName(b.Agent, maxAgentLen); err != nil {
			return bad("agent", "%v", err)
		}
	}
	return nil
}

// maxSeq is the largest seq or alert id: the cloud stores them as PostgreSQL bigint.
const maxSeq = math.MaxInt64

func validateReading(list string, i int, r *Reading) error {
	switch {
	case r.Seq == 0 || r.Seq > maxSeq:
		return bad(at(list, i, "seq"), "must be within 1–2^63-1")
	case r.Time.IsZero():
		return bad(at(list, i, "time"), "missing")
	case !telemetry.Param(r.Param).Valid():
		return bad(at(list, i, "param"), "%q is not a canonical parameter", clip(r.Param))
	case math.IsNaN(r.Value) || math.IsInf(r.Value, 0):
		return bad(at(list, i, "value"), "not a finite number")
	case !telemetry.Quality(r.Quality).Valid():
		return bad(at(list, i, "quality"), "%q must be good, suspect or bad", clip(r.Quality))
	case !telemetry.Source(r.Source).Valid():
		return bad(at(list, i, "source"), "%q is not a known source", clip(r.Source))
	}
	if err := telemetry.CheckName(r.Sensor, telemetry.MaxSensorLen); err != nil {
		return bad(at(list, i, "sensor"), "%v", err)
	}
	if info, _ := telemetry.Info(telemetry.Param(r.Param)); r.Unit != info.Unit {
		return bad(at(list, i, "unit"), "%q is not the canonical unit %q of %s", clip(r.Unit), info.Unit, r.Param)
	}
	if _, err := telemetry.ParseFlags(r.Flags); err != nil {
		return bad(at(list, i, "flags"), "%v", err)
	}
	if r.SampleID != "" || r.Lab != "" || r.Method != "" {
		s := telemetry.Sample{ID: r.SampleID, Lab: r.Lab, Method: r.Method}
		if field, err := s.Check(); err != nil {
			return bad(at(list, i, field), "%v", err)
		}
	}
	return nil
}

func validateAlert(list string, i int, a *AlertEvent) error {
	switch {
	case a.Seq == 0 || a.Seq > maxSeq:
		return bad(at(list, i, "seq"), "must be within 1–2^63-1")
	case a.ID == 0 || a.ID > maxSeq:
		return bad(at(list, i, "id"), "must be within 1–2^63-1")
	case a.Time.IsZero() || a.OpenedAt.IsZero():
		return bad(at(list, i, "time"), "time and opened_at are required")
	case !oneOf(a.Transition, "opened", "acknowledged", "escalated", "resolved"):
		return bad(at(list, i, "transition"), "%q is not a transition", clip(a.Transition))
	case !a.State.Valid():
		return bad(at(list, i, "state"), "%q is not a state", clip(string(a.State)))
	case !a.Severity.Valid():
		return bad(at(list, i, "severity"), "%q is not a severity", clip(string(a.Severity)))
	case a.Value != nil && (math.IsNaN(*a.Value) || math.IsInf(*a.Value, 0)):
		return bad(at(list, i, "value"), "not a finite number")
	case a.Limit != nil && (math.IsNaN(*a.Limit) || math.IsInf(*a.Limit, 0)):
		return bad(at(list, i, "limit"), "not a finite number")
	}
	if err := telemetry.CheckName(a.Rule, maxRuleLen); err != nil {
		return bad(at(list, i, "rule"), "%v", err)
	}
	for _, f := range []struct {
		name, value string
		max         int
	}{{"key", a.Key, maxKeyLen}, {"param", a.Param, maxParamLen}, {"sensor", a.Sensor, telemetry.MaxSensorLen}} {
		if f.value == "" {
			continue
		}
		if err := telemetry.CheckName(f.value, f.max); err != nil {
			return bad(at(list, i, f.name), "%v", err)
		}
	}
	if err := telemetry.CheckText(a.Message, maxText); err != nil {
		return bad(at(list, i, "message"), "%v", err)
	}
	return nil
}

func validateWQI(list string, i int, w *WQIPoint) error {
	switch {
	case w.Seq == 0 || w.Seq > maxSeq:
		return bad(at(list, i, "seq"), "must be within 1–2^63-1")
	case w.Time.IsZero():
		return bad(at(list, i, "time"), "missing")
	case math.IsNaN(w.WQI) || w.WQI < 0 || w.WQI > 100:
		return bad(at(list, i, "wqi"), "must be within 0–100")
	case !oneOf(w.Class, "A", "B", "C", "D/E"):
		return bad(at(list, i, "class"), "%q is not a WQI class", clip(w.Class))
	case len(w.Missing) > len(telemetry.Params()):
		return bad(at(list, i, "missing"), "%d entries (at most %d)", len(w.Missing), len(telemetry.Params()))
	case len(w.SubIndices) > len(telemetry.Params()):
		return bad(at(list, i, "sub_indices"), "%d entries (at most %d)", len(w.SubIndices), len(telemetry.Params()))
	case w.DOSaturationPct != nil && (math.IsNaN(*w.DOSaturationPct) || math.IsInf(*w.DOSaturationPct, 0)):
		return bad(at(list, i, "do_saturation_pct"), "not a finite number")
	}
	if w.Category != "" {
		if err := telemetry.CheckName(w.Category, maxCategory); err != nil {
			return bad(at(list, i, "category"), "%v", err)
		}
	}
	for j, p := range w.Missing {
		if !telemetry.Param(p).Valid() {
			return bad(fmt.Sprintf("%s[%d].missing[%d]", list, i, j), "%q is not a canonical parameter", clip(p))
		}
	}
	for p, v := range w.SubIndices {
		if !telemetry.Param(p).Valid() {
			return bad(at(list, i, "sub_indices"), "%q is not a canonical parameter", clip(p))
		}
		if math.IsNaN(v) || v < 0 || v > 100 {
			return bad(at(list, i, "sub_indices"), "%s: must be within 0–100", p)
		}
	}
	return nil
}

// clip shortens an echoed value so that an error message stays small.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

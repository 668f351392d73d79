// Package samples takes lab and field-kit results into the cloud: POST /v1/samples
// (CSV or JSON, from a token of role lab or operator) and `ph-cloud samples import`.
//
// A body is all or nothing: every row is parsed, normalized (parameter aliases and units
// through shared/telemetry) and graded before anything is stored, and the first bad row
// fails the whole body with its number and column. Sending the same samples again adds
// nothing (store.StoreSamples: by sample id when the lab gives one, else by station,
// parameter and time). Size and row limits are checked before the work they bound.
package samples

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Columns (contract): required first, then optional.
var (
	Required = []string{"station_id", "param", "value", "unit", "sampled_at"}
	Optional = []string{"sample_id", "lab", "method"}
)

// Limits bound one body. The zero value of a field means its default.
type Limits struct {
	MaxBytes int64 // default DefaultMaxBytes
	MaxRows  int   // default DefaultMaxRows
}

// The default limits: a year of weekly samples of every parameter at a hundred stations
// fits several times over.
const (
	DefaultMaxBytes = 4 << 20
	DefaultMaxRows  = 20000
)

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxRows <= 0 {
		l.MaxRows = DefaultMaxRows
	}
	return l
}

// Format is a body's encoding.
type Format int

// The formats.
const (
	CSV Format = iota
	JSON
)

// ErrContentType: a Content-Type that is neither CSV nor JSON.
var ErrContentType = errors.New("unsupported content type (want text/csv or application/json)")

// FormatOf reads a Content-Type header.
func FormatOf(contentType string) (Format, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrContentType, contentType)
	}
	switch mt {
	case "text/csv", "application/csv":
		return CSV, nil
	case "application/json":
		return JSON, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrContentType, mt)
}

// ErrTooLarge: the body is over Limits.MaxBytes or has more than Limits.MaxRows rows.
var ErrTooLarge = errors.New("too large")

// RowError is a bad row: Row counts samples from 1 (0 for the CSV header or the JSON
// document itself), Column names the field.
type RowError struct {
	Row    int    `json:"row"`
	Column string `json:"column"`
	Msg    string `json:"error"`
}

func (e *RowError) Error() string {
	if e.Row == 0 {
		return fmt.Sprintf("%s: %s", e.Column, e.Msg)
	}
	return fmt.Sprintf("row %d, %s: %s", e.Row, e.Column, e.Msg)
}

// Result is what parsing kept: the samples to store, and how many rows repeated one
// earlier in the same body.
type Result struct {
	Samples    []store.Sample
	Duplicates int
	// Rows[i] is the row number of Samples[i].
	Rows []int
}

// Parse reads a body of format f, at most lim.MaxBytes bytes and lim.MaxRows rows, and
// returns its samples normalized and graded as of now, or the first problem: a
// *RowError, or an error matching ErrTooLarge.
func Parse(body io.Reader, f Format, lim Limits, now time.Time) (Result, error) {
	lim = lim.withDefaults()
	r := &limitedReader{r: body, left: lim.MaxBytes}
	var rows []row
	var err error
	switch f {
	case CSV:
		rows, err = parseCSV(r, lim.MaxRows)
	case JSON:
		rows, err = parseJSON(r, lim.MaxRows)
	default:
		return Result{}, ErrContentType
	}
	if r.over {
		return Result{}, fmt.Errorf("%w: the body is over %d bytes", ErrTooLarge, lim.MaxBytes)
	}
	if err != nil {
		return Result{}, err
	}
	return normalize(rows, now)
}

// row is one sample as written, before normalization.
type row struct {
	n                                         int
	station, param, unit, sampledAt           string
	value                                     float64
	valueText                                 string // CSV only; "" when value is set
	sampleID, lab, method                     string
	hasValue                                  bool
	stationSet, paramSet, unitSet, sampledSet bool
}

// limitedReader fails once more than left bytes were asked of it.
type limitedReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.over = true
			return 0, ErrTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func parseCSV(r io.Reader, maxRows int) ([]row, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, &RowError{Column: "header", Msg: "empty body: want a header row " + strings.Join(Required, ",")}
	}
	if err != nil {
		return nil, csvError(err, 0)
	}
	cols := map[string]int{}
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if !slices.Contains(Required, h) && !slices.Contains(Optional, h) {
			return nil, &RowError{Column: clip(h), Msg: fmt.Sprintf("unknown column (known: %s)",
				strings.Join(slices.Concat(Required, Optional), ", "))}
		}
		if _, dup := cols[h]; dup {
			return nil, &RowError{Column: h, Msg: "column given twice"}
		}
		cols[h] = i
	}
	for _, c := range Required {
		if _, ok := cols[c]; !ok {
			return nil, &RowError{Column: c, Msg: "missing column (the header needs " + strings.Join(Required, ",") + ")"}
		}
	}
	var out []row
	for n := 1; ; n++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(err, n)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			n-- // a blank line
			continue
		}
		if n > maxRows {
			return nil, fmt.Errorf("%w: more than %d rows", ErrTooLarge, maxRows)
		}
		if len(rec) != len(head) {
			return nil, &RowError{Row: n, Column: "row", Msg: fmt.Sprintf("%d fields, the header has %d", len(rec), len(head))}
		}
		get := func(c string) (string, bool) {
			i, ok := cols[c]
			if !ok {
				return "", false
			}
			return strings.TrimSpace(rec[i]), true
		}
		x := row{n: n}
		x.station, x.stationSet = get("station_id")
		x.param, x.paramSet = get("param")
		x.unit, x.unitSet = get("unit")
		x.sampledAt, x.sampledSet = get("sampled_at")
		x.valueText, _ = get("value")
		x.sampleID, _ = get("sample_id")
		x.lab, _ = get("lab")
		x.method, _ = get("method")
		out = append(out, x)
	}
	return out, nil
}

func csvError(err error, rowN int) error {
	if errors.Is(err, ErrTooLarge) {
		return err
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &RowError{Row: rowN, Column: "row", Msg: pe.Err.Error()}
	}
	return &RowError{Row: rowN, Column: "row", Msg: err.Error()}
}

// jsonSample is one sample of a JSON body.
type jsonSample struct {
	StationID *string          `json:"station_id"`
	Param     *string          `json:"param"`
	Value     *json.RawMessage `json:"value"`
	Unit      *string          `json:"unit"`
	SampledAt *string          `json:"sampled_at"`
	SampleID  string           `json:"sample_id"`
	Lab       string           `json:"lab"`
	Method    string           `json:"method"`
}

// parseJSON reads {"samples": [...]} one sample at a time, counting before decoding.
func parseJSON(r io.Reader, maxRows int) ([]row, error) {
	dec := json.NewDecoder(r)
	doc := func(msg string) error { return &RowError{Column: "samples", Msg: msg} }
	wrap := func(err error, n int) error {
		if errors.Is(err, ErrTooLarge) {
			return err
		}
		if n == 0 {
			return doc("not JSON of the form {\"samples\": [...]}: " + err.Error())
		}
		return &RowError{Row: n, Column: "row", Msg: err.Error()}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, wrap(orErr(err, "want an object"), 0)
	}
	var out []row
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, wrap(err, 0)
		}
		if tok != "samples" {
			return nil, doc(fmt.Sprintf("unknown key %q (want samples)", clip(fmt.Sprint(tok))))
		}
		if seen {
			return nil, doc("samples given twice")
		}
		seen = true
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			return nil, wrap(orErr(err, "samples must be an array"), 0)
		}
		for n := 1; dec.More(); n++ {
			if n > maxRows {
				return nil, fmt.Errorf("%w: more than %d rows", ErrTooLarge, maxRows)
			}
			var js jsonSample
			if err := decodeStrict(dec, &js); err != nil {
				return nil, wrap(err, n)
			}
			x := row{n: n, sampleID: js.SampleID, lab: js.Lab, method: js.Method}
			x.station, x.stationSet = deref(js.StationID)
			x.param, x.paramSet = deref(js.Param)
			x.unit, x.unitSet = deref(js.Unit)
			x.sampledAt, x.sampledSet = deref(js.SampledAt)
			if js.Value != nil {
				var v float64
				if err := json.Unmarshal(*js.Value, &v); err != nil {
					return nil, &RowError{Row: n, Column: "value", Msg: "must be a number"}
				}
				x.value, x.hasValue = v, true
			}
			out = append(out, x)
		}
		if _, err := dec.Token(); err != nil {
			return nil, wrap(err, 0)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, wrap(err, 0)
	}
	if !seen {
		return nil, doc("missing")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, doc("trailing data after the object")
	}
	return out, nil
}

// decodeStrict decodes the next value into v, refusing unknown keys.
func decodeStrict(dec *json.Decoder, v any) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func orErr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}

func deref(p *string) (string, bool) {
	if p == nil {
		return "", false
	}
	return strings.TrimSpace(*p), true
}

// normalize checks every row and turns it into a sample.
func normalize(rows []row, now time.Time) (Result, error) {
	type key struct {
		station string
		param   telemetry.Param
		ident   string
		t       time.Time
	}
	res := Result{Samples: make([]store.Sample, 0, len(rows)), Rows: make([]int, 0, len(rows))}
	seen := map[key]int{} // index into res.Samples
	for _, x := range rows {
		bad := func(col, msg string) error { return &RowError{Row: x.n, Column: col, Msg: msg} }
		switch {
		case !x.stationSet || x.station == "":
			return Result{}, bad("station_id", "missing")
		case !telemetry.ValidStationID(x.station):
			return Result{}, bad("station_id", fmt.Sprintf("%q is not a station id (%s)", clip(x.station), telemetry.StationIDRule))
		case !x.paramSet || x.param == "":
			return Result{}, bad("param", "missing")
		case !x.sampledSet || x.sampledAt == "":
			return Result{}, bad("sampled_at", "missing")
		}
		v := x.value
		if !x.hasValue {
			if x.valueText == "" {
				return Result{}, bad("value", "missing")
			}
			f, err := strconv.ParseFloat(x.valueText, 64)
			if err != nil {
				return Result{}, bad("value", fmt.Sprintf("%q is not a number", clip(x.valueText)))
			}
			v = f
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Result{}, bad("value", "not a finite number")
		}
		p, cv, unit, err := telemetry.Normalize(x.param, v, x.unit)
		switch {
		case errors.Is(err, telemetry.ErrUnknownParam):
			return Result{}, bad("param", err.Error())
		case errors.Is(err, telemetry.ErrUnitMismatch):
			return Result{}, bad("unit", err.Error())
		case err != nil:
			return Result{}, bad("value", err.Error())
		}
		at, err := telemetry.ParseSampleTime(x.sampledAt)
		if err != nil {
			return Result{}, bad("sampled_at", err.Error())
		}
		if y := at.Year(); y < 1900 {
			return Result{}, bad("sampled_at", "before 1900")
		}
		if at.After(now.Add(upstream.FutureSlack)) {
			return Result{}, bad("sampled_at", fmt.Sprintf("%s is in the future", at.Format(time.RFC3339)))
		}
		prov := telemetry.Sample{ID: x.sampleID, Lab: x.lab, Method: x.method}
		if field, err := prov.Check(); err != nil {
			return Result{}, bad(field, err.Error())
		}
		r := telemetry.Reading{Station: x.station, Param: p, Value: cv, Unit: unit, Time: at}
		upstream.Grade(&r, now)
		if r.Quality == telemetry.Bad {
			info, _ := telemetry.Info(p)
			return Result{}, bad("value", fmt.Sprintf("%v %s is outside the physical range %v–%v of %s",
				cv, unit, info.Physical.Min, info.Physical.Max, p))
		}
		s := store.Sample{Station: x.station, Param: p, Value: cv, Unit: unit, Time: at, Quality: r.Quality,
			Flags: r.Flags, SampleID: x.sampleID, Lab: x.lab, Method: x.method}
		k := key{station: s.Station, param: p, ident: s.SampleID}
		if s.SampleID == "" {
			k.t = at
		}
		if i, dup := seen[k]; dup {
			prev := res.Samples[i]
			if prev.Value != s.Value || !prev.Time.Equal(s.Time) {
				return Result{}, bad("value", fmt.Sprintf("row %d has the same sample with another value or time", res.Rows[i]))
			}
			res.Duplicates++
			continue
		}
		seen[k] = len(res.Samples)
		res.Samples = append(res.Samples, s)
		res.Rows = append(res.Rows, x.n)
	}
	return res, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Package wire is the agent ↔ cloud sync format: what a station agent POSTs to
// /v1/ingest and what the cloud answers.
//
// A Batch is gzip-compressed JSON. It carries a major version; the cloud refuses a major it
// does not know (HTTP 400 naming it) and ignores fields it does not know within a major, so
// agents can add fields without breaking older clouds. Every record carries its seq in its
// stream (readings, alerts, wqi): the cloud stores each (station, stream, seq) at most once,
// so an agent may resend anything it has no acknowledgement for.
//
// Decode is the only parser of untrusted bytes here; it bounds both the compressed and the
// decompressed size (zip bombs) and validates every field, naming the first bad one.
package wire

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wqi"
)

// Version is the major version this code writes and reads.
const Version = 1

// Limits on a batch. MaxRecords bounds the records of all streams together.
const (
	MaxCompressedBytes   = 8 << 20
	MaxDecompressedBytes = 64 << 20
	MaxRecords           = 50000
)

// Errors from Decode. A decode error wraps one of them; match with errors.Is.
var (
	ErrVersion   = errors.New("unsupported batch version")
	ErrTooLarge  = errors.New("batch too large")
	ErrMalformed = errors.New("malformed batch")
)

// Batch is one upload from a station.
type Batch struct {
	V        int          `json:"v"`
	Station  string       `json:"station"`
	Agent    string       `json:"agent,omitempty"` // agent version, for the cloud's logs
	SentAt   time.Time    `json:"sent_at"`
	Readings []Reading    `json:"readings,omitempty"`
	Alerts   []AlertEvent `json:"alerts,omitempty"`
	WQI      []WQIPoint   `json:"wqi,omitempty"`
}

// Reading is one measurement (see telemetry.Reading).
type Reading struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Sensor  string    `json:"sensor"`
	Param   string    `json:"param"`
	Value   float64   `json:"value"`
	Unit    string    `json:"unit"`
	Quality string    `json:"quality"`
	Source  string    `json:"source"`
	Flags   []string  `json:"flags,omitempty"`
}

// AlertEvent is one alert transition as the agent recorded it: the alert as the
// transition left it (its ID is the alert's id at the station). Seq is its place in the
// agent's alerts stream.
type AlertEvent struct {
	Seq        uint64    `json:"seq"`
	Transition string    `json:"transition"` // opened, acknowledged, escalated, resolved
	Time       time.Time `json:"time"`
	alert.Record
}

// NewAlertEvent is the transition an agent recorded at t, ready to send: times in UTC,
// values JSON cannot carry left out.
func NewAlertEvent(seq uint64, transition string, t time.Time, r alert.Record) AlertEvent {
	return AlertEvent{Seq: seq, Transition: transition, Time: t.UTC(), Record: r.Portable()}
}

// WQIPoint is one computed index at the station.
type WQIPoint struct {
	Seq             uint64             `json:"seq"`
	Time            time.Time          `json:"time"`
	WQI             float64            `json:"wqi"`
	Class           string             `json:"class"`
	Category        string             `json:"category"`
	Partial         bool               `json:"partial"`
	Missing         []string           `json:"missing"`
	SubIndices      map[string]float64 `json:"sub_indices"`
	DOSaturationPct *float64           `json:"do_saturation_pct,omitempty"`
}

// Ack is the cloud's answer: the highest seq of each stream in the batch that is now
// stored (including ones it already had). AckedSeq repeats Acked["readings"] (contract).
type Ack struct {
	AckedSeq uint64            `json:"acked_seq"`
	Acked    map[string]uint64 `json:"acked"`
}

// Error is the body of every non-2xx answer from the ingest endpoint.
type Error struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// FromReading converts a stored reading.
func FromReading(r telemetry.Reading) Reading {
	return Reading{
		Seq: r.Seq, Time: r.Time.UTC(), Sensor: r.Sensor, Param: string(r.Param), Value: r.Value,
		Unit: r.Unit, Quality: string(r.Quality), Source: string(r.Source), Flags: r.Flags.Names(),
	}
}

// FromWQI converts an index computed at t, with the values r holds (a result read back
// from its stored JSON carries them rounded as published).
func FromWQI(seq uint64, t time.Time, r wqi.Result) WQIPoint {
	p := WQIPoint{
		Seq: seq, Time: t.UTC(), WQI: r.WQI, Class: r.Class, Category: r.Category,
		Partial: r.Partial, Missing: make([]string, 0, len(r.Missing)),
		SubIndices: make(map[string]float64, len(r.SubIndices)),
	}
	for _, m := range r.Missing {
		p.Missing = append(p.Missing, string(m))
	}
	for param, v := range r.SubIndices {
		p.SubIndices[string(param)] = v
	}
	if _, ok := r.SubIndices[telemetry.DO]; ok {
		sat := r.DOSaturationPct
		p.DOSaturationPct = &sat
	}
	return p
}

// Encode writes b as gzip-compressed JSON.
func Encode(b *Batch) ([]byte, error) {
	if b.V == 0 {
		b.V = Version
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(b); err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress batch: %w", err)
	}
	return buf.Bytes(), nil
}

// FieldError names the first invalid field of a batch.
type FieldError struct {
	Field string // e.g. readings[3].param
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Is makes a FieldError match ErrMalformed.
func (e *FieldError) Is(target error) bool { return target == ErrMalformed }

// Decode reads a batch from body. gzipped says whether body is gzip (Content-Encoding);
// plain JSON is accepted too, for hand-made requests.
func Decode(body io.Reader, gzipped bool) (*Batch, error) {
	raw, err := io.ReadAll(io.LimitReader(body, MaxCompressedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read body: %v", ErrMalformed, err)
	}
	if len(raw) > MaxCompressedBytes {
		return nil, fmt.Errorf("%w: body exceeds %d bytes", ErrTooLarge, MaxCompressedBytes)
	}
	data := raw
	if gzipped {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
		}
		data, err = io.ReadAll(io.LimitReader(zr, MaxDecompressedBytes+1))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
		}
		if len(data) > MaxDecompressedBytes {
			return nil, fmt.Errorf("%w: decompressed body exceeds %d bytes", ErrTooLarge, MaxDecompressedBytes)
		}
	}
	// One pass over the body for a batch of this version; the version alone is read
	// only when that fails, so that a batch of another version is refused for its
	// version, not for fields whose shape that version may have changed.
	var b Batch
	if err := json.Unmarshal(data, &b); err != nil || b.V != Version {
		var head struct {
			V *int `json:"v"`
		}
		if herr := json.Unmarshal(data, &head); herr != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, jsonProblem(herr))
		}
		if head.V == nil {
			return nil, &FieldError{Field: "v", Msg: "missing (the batch format version)"}
		}
		if *head.V != Version {
			return nil, fmt.Errorf("%w: v=%d (this server reads v=%d)", ErrVersion, *head.V, Version)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, jsonProblem(err))
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return &b, nil
}

func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s: want %s, got %s", te.Field, te.Type, te.Value)
	}
	return err.Error()
}

// maxText bounds free-text fields.
const maxText = 4096

// Validate checks every field and names the first bad one.
func (b *Batch) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	// at names a record's field; it runs only for the one that is refused (formatting
	// every record's name cost as much as the checks).
	at := func(list string, i int, name string) string { return fmt.Sprintf("%s[%d].%s", list, i, name) }
	if !telemetry.ValidStationID(b.Station) {
		return bad("station", "must be %s", telemetry.StationIDRule)
	}
	if n := len(b.Readings) + len(b.Alerts) + len(b.WQI); n > MaxRecords {
		return fmt.Errorf("%w: %d records (at most %d)", ErrTooLarge, n, MaxRecords)
	}
	for i, r := range b.Readings {
		switch {
		case r.Seq == 0:
			return bad(at("readings", i, "seq"), "must be positive")
		case r.Time.IsZero():
			return bad(at("readings", i, "time"), "missing")
		case r.Sensor == "" || len(r.Sensor) > 128:
			return bad(at("readings", i, "sensor"), "must be 1–128 characters")
		case !telemetry.Param(r.Param).Valid():
			return bad(at("readings", i, "param"), "%q is not a canonical parameter", r.Param)
		case math.IsNaN(r.Value) || math.IsInf(r.Value, 0):
			return bad(at("readings", i, "value"), "not a finite number")
		case !telemetry.Quality(r.Quality).Valid():
			return bad(at("readings", i, "quality"), "%q must be good, suspect or bad", r.Quality)
		case !telemetry.Source(r.Source).Valid():
			return bad(at("readings", i, "source"), "%q is not a known source", r.Source)
		}
		if info, _ := telemetry.Info(telemetry.Param(r.Param)); r.Unit != info.Unit {
			return bad(at("readings", i, "unit"), "%q is not the canonical unit %q of %s", r.Unit, info.Unit, r.Param)
		}
		if _, err := telemetry.ParseFlags(r.Flags); err != nil {
			return bad(at("readings", i, "flags"), "%v", err)
		}
	}
	for i, a := range b.Alerts {
		switch {
		case a.Seq == 0:
			return bad(at("alerts", i, "seq"), "must be positive")
		case a.ID == 0:
			return bad(at("alerts", i, "id"), "must be positive")
		case a.Time.IsZero() || a.OpenedAt.IsZero():
			return bad(at("alerts", i, "time"), "time and opened_at are required")
		case !oneOf(a.Transition, "opened", "acknowledged", "escalated", "resolved"):
			return bad(at("alerts", i, "transition"), "%q is not a transition", a.Transition)
		case !a.State.Valid():
			return bad(at("alerts", i, "state"), "%q is not a state", a.State)
		case !a.Severity.Valid():
			return bad(at("alerts", i, "severity"), "%q is not a severity", a.Severity)
		case a.Rule == "" || len(a.Rule) > 64:
			return bad(at("alerts", i, "rule"), "must be 1–64 characters")
		case len(a.Key) > 256 || len(a.Param) > 64 || len(a.Sensor) > 128:
			return bad(at("alerts", i, "key"), "too long")
		case len(a.Message) > maxText:
			return bad(at("alerts", i, "message"), "longer than %d bytes", maxText)
		}
	}
	for i, w := range b.WQI {
		switch {
		case w.Seq == 0:
			return bad(at("wqi", i, "seq"), "must be positive")
		case w.Time.IsZero():
			return bad(at("wqi", i, "time"), "missing")
		case math.IsNaN(w.WQI) || w.WQI < 0 || w.WQI > 100:
			return bad(at("wqi", i, "wqi"), "must be within 0–100")
		case !oneOf(w.Class, "A", "B", "C", "D/E"):
			return bad(at("wqi", i, "class"), "%q is not a WQI class", w.Class)
		}
	}
	return nil
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}

// IsGzip reports whether a Content-Encoding header value means gzip.
func IsGzip(contentEncoding string) bool {
	return strings.EqualFold(strings.TrimSpace(contentEncoding), "gzip")
}

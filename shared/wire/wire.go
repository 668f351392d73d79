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
	"strings"
	"sync"
	"time"

	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wqi"
)

// Version is the major version this code writes and reads.
const Version = 1

// Batch is one upload from a station.
type Batch struct {
	V        int          `json:"v"`
	Station  string       `json:"station"`
	Agent    string       `json:"agent,omitempty"` // agent version, for the cloud's logs
	SentAt   time.Time    `json:"sent_at"`
	Readings []Reading    `json:"readings,omitempty"`
	Alerts   []AlertEvent `json:"alerts,omitempty"`
	WQI      []WQIPoint   `json:"wqi,omitempty"`
	// Health is the station's health record; an agent sends it in a batch of no records.
	Health *Health `json:"health,omitempty"`
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
	// A lab or field-kit sample's provenance (source manual); absent otherwise. Clouds of
	// this major that predate them ignore them.
	SampleID string `json:"sample_id,omitempty"`
	Lab      string `json:"lab,omitempty"`
	Method   string `json:"method,omitempty"`
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
	// Acks are the station's alerts acknowledged in the cloud that the station has not
	// confirmed yet; it acknowledges them too, and its acknowledged (or resolved)
	// transition confirms them. An older agent ignores the field.
	Acks []AlertAck `json:"acks,omitempty"`
}

// AlertAck is an acknowledgement made in the cloud of one of the station's alerts.
type AlertAck struct {
	ID uint64    `json:"id"` // the alert's id at the station
	At time.Time `json:"at"`
	By string    `json:"by"` // who acknowledged it (a token's name)
}

// MaxAcks bounds the acknowledgements one answer carries (the rest come with the next).
const MaxAcks = 100

// MaxAckBy bounds an AlertAck's By.
const MaxAckBy = 64

// Check validates an acknowledgement an agent received.
func (a AlertAck) Check() error {
	switch {
	case a.ID == 0 || a.ID > maxSeq:
		return fmt.Errorf("alert id %d out of range", a.ID)
	case a.At.IsZero():
		return errors.New("acknowledgement without a time")
	}
	return telemetry.CheckName(a.By, MaxAckBy)
}

// Error is the body of every non-2xx answer from the ingest endpoint.
type Error struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// FromReading converts a stored reading.
func FromReading(r telemetry.Reading) Reading {
	w := Reading{
		Seq: r.Seq, Time: r.Time.UTC(), Sensor: r.Sensor, Param: string(r.Param), Value: r.Value,
		Unit: r.Unit, Quality: string(r.Quality), Source: string(r.Source), Flags: r.Flags.Names(),
	}
	if r.Sample != nil {
		w.SampleID, w.Lab, w.Method = r.Sample.ID, r.Sample.Lab, r.Sample.Method
	}
	return w
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
	zw := gzipWriters.Get().(*gzip.Writer)
	defer func() {
		zw.Reset(io.Discard) // not to hold on to buf
		gzipWriters.Put(zw)
	}()
	zw.Reset(&buf)
	if err := json.NewEncoder(zw).Encode(b); err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress batch: %w", err)
	}
	return buf.Bytes(), nil
}

// gzipWriters keeps the compressors of Encode: a new one allocates about a megabyte of
// tables, as much as a batch of thousands of readings takes to compress.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

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

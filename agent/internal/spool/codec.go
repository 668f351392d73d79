package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// The reading encoding. A stored reading is the value of its seq key (the seq itself is the
// key, so it is not repeated):
//
//	byte     version (codecV1)
//	uvarint  flags
//	code     quality   \
//	code     source     | one byte: an index into the tables below, or 0 followed by the
//	code     param      | string itself (uvarint length, bytes) for a value not in the table
//	code     unit      /
//	varint   time, unix seconds (zigzag)
//	uvarint  time, nanoseconds within the second
//	8 bytes  value, IEEE 754 bits, big-endian
//	string   station (uvarint length, bytes)
//	string   sensor
//
// Version 2 (codecV2), written only for a reading with a lab sample's provenance, goes on
// with three more strings: sample id, lab, method.
//
// A typical reading takes about 40 bytes. The tables are part of the file format: entries
// may be appended, never reordered or removed. A change of layout takes a new version byte;
// decoders keep reading every older version.
const (
	codecV1 = 1
	codecV2 = 2
)

// maxStringLen bounds each string field, so a corrupt length cannot ask for a huge
// allocation and a runaway sensor name cannot bloat the buffer.
const maxStringLen = 1024

// Time bounds: years 0001 through 9999, which every time.Time operation handles exactly.
const (
	minUnixSec = -62135596800 // 0001-01-01T00:00:00Z
	maxUnixSec = 253402300799 // 9999-12-31T23:59:59Z
)

var (
	qualityTable = []string{"", string(telemetry.Good), string(telemetry.Suspect), string(telemetry.Bad)}
	sourceTable  = []string{"", string(telemetry.SourceSensor), string(telemetry.SourceAPI),
		string(telemetry.SourceSatellite), string(telemetry.SourceModel), string(telemetry.SourceManual)}
	paramTable = []string{"", string(telemetry.PH), string(telemetry.DO), string(telemetry.BOD),
		string(telemetry.FC), string(telemetry.TDS), string(telemetry.Temp), string(telemetry.Turbidity),
		string(telemetry.Conductivity), string(telemetry.Chla)}
	unitTable = []string{"", "pH", "mg/L", "MPN/100mL", "degC", "NTU", "uS/cm", "ug/L"}
)

// errCorrupt marks stored bytes that do not decode.
var errCorrupt = errors.New("corrupt reading encoding")

// encodeReading appends the encoding of r (without its Seq) to dst.
func encodeReading(dst []byte, r *telemetry.Reading) ([]byte, error) {
	var sm telemetry.Sample
	if r.Sample != nil {
		sm = *r.Sample
	}
	for _, f := range []struct{ name, v string }{
		{"station", r.Station}, {"sensor", r.Sensor}, {"param", string(r.Param)},
		{"unit", r.Unit}, {"source", string(r.Source)}, {"quality", string(r.Quality)},
		{"sample id", sm.ID}, {"lab", sm.Lab}, {"method", sm.Method},
	} {
		if len(f.v) > maxStringLen {
			return nil, fmt.Errorf("%s is %d bytes, longer than %d", f.name, len(f.v), maxStringLen)
		}
	}
	sec, nsec := r.Time.Unix(), r.Time.Nanosecond()
	if sec < minUnixSec || sec > maxUnixSec {
		return nil, fmt.Errorf("time %v is outside years 1-9999", r.Time)
	}
	version := byte(codecV1)
	if !r.Sample.IsZero() {
		version = codecV2
	}
	dst = append(dst, version)
	dst = binary.AppendUvarint(dst, uint64(r.Flags))
	dst = appendCoded(dst, qualityTable, string(r.Quality))
	dst = appendCoded(dst, sourceTable, string(r.Source))
	dst = appendCoded(dst, paramTable, string(r.Param))
	dst = appendCoded(dst, unitTable, r.Unit)
	dst = binary.AppendVarint(dst, sec)
	dst = binary.AppendUvarint(dst, uint64(nsec))
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(r.Value))
	dst = appendString(dst, r.Station)
	dst = appendString(dst, r.Sensor)
	if version == codecV2 {
		dst = appendString(dst, sm.ID)
		dst = appendString(dst, sm.Lab)
		dst = appendString(dst, sm.Method)
	}
	return dst, nil
}

func appendCoded(dst []byte, table []string, s string) []byte {
	for i := 1; i < len(table); i++ {
		if table[i] == s {
			return append(dst, byte(i))
		}
	}
	return appendString(append(dst, 0), s)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decodeReading decodes b, the value stored under seq. It never panics and never keeps a
// reference to b, so b may be a slice into a bbolt page.
func decodeReading(seq uint64, b []byte) (telemetry.Reading, error) {
	d := decoder{b: b}
	v := d.byte()
	if v != codecV1 && v != codecV2 {
		if d.err != nil {
			return telemetry.Reading{}, d.err
		}
		return telemetry.Reading{}, fmt.Errorf("%w: unknown version %d", errCorrupt, v)
	}
	r := telemetry.Reading{Seq: seq}
	flags := d.uvarint()
	if flags > math.MaxUint16 {
		d.fail("flags out of range")
	}
	r.Flags = telemetry.Flags(flags)
	r.Quality = telemetry.Quality(d.coded(qualityTable))
	r.Source = telemetry.Source(d.coded(sourceTable))
	r.Param = telemetry.Param(d.coded(paramTable))
	r.Unit = d.coded(unitTable)
	sec := d.varint()
	nsec := d.uvarint()
	if sec < minUnixSec || sec > maxUnixSec || nsec >= 1e9 {
		d.fail("time out of range")
	}
	r.Value = math.Float64frombits(d.uint64())
	r.Station = d.string()
	r.Sensor = d.string()
	if v == codecV2 {
		if sm := (telemetry.Sample{ID: d.string(), Lab: d.string(), Method: d.string()}); !sm.IsZero() {
			r.Sample = &sm
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return telemetry.Reading{}, d.err
	}
	r.Time = time.Unix(sec, int64(nsec)).UTC()
	return r, nil
}

// peekReading decodes only what the newest-first query filters on, without allocating:
// whether the reading's param is param, and its time.
func peekReading(b []byte, param telemetry.Param) (match bool, t time.Time, err error) {
	d := decoder{b: b}
	if v := d.byte(); v != codecV1 && v != codecV2 && d.err == nil {
		return false, time.Time{}, fmt.Errorf("%w: unknown version %d", errCorrupt, v)
	}
	d.uvarint()
	d.skipCoded(qualityTable)
	d.skipCoded(sourceTable)
	code, lit := d.rawCoded(paramTable)
	d.skipCoded(unitTable)
	sec := d.varint()
	nsec := d.uvarint()
	if sec < minUnixSec || sec > maxUnixSec || nsec >= 1e9 {
		d.fail("time out of range")
	}
	if d.err != nil {
		return false, time.Time{}, d.err
	}
	if code != 0 {
		match = paramTable[code] == string(param)
	} else {
		match = string(lit) == string(param)
	}
	return match, time.Unix(sec, int64(nsec)).UTC(), nil
}

// decoder reads the encoding; after the first error every read returns zero values and
// the error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(why string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errCorrupt, why)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail("short")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail("short")
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > maxStringLen || n > uint64(len(d.b)) {
		d.fail("string length out of range")
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) string() string { return string(d.bytes()) }

// rawCoded reads a coded field: a table code, or 0 and the literal bytes.
func (d *decoder) rawCoded(table []string) (byte, []byte) {
	c := d.byte()
	if d.err != nil {
		return 0, nil
	}
	if c == 0 {
		return 0, d.bytes()
	}
	if int(c) >= len(table) {
		d.fail("unknown table code")
		return 0, nil
	}
	return c, nil
}

func (d *decoder) coded(table []string) string {
	c, lit := d.rawCoded(table)
	if c != 0 {
		return table[c]
	}
	return string(lit)
}

func (d *decoder) skipCoded(table []string) { d.rawCoded(table) }

package httpsim

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// timestampLayout is RFC 3339 in UTC with milliseconds.
const timestampLayout = "2006-01-02T15:04:05.000Z07:00"

// Format is how a resource represents its reading.
type Format string

// The formats.
const (
	FormatJSON Format = "json" // {"value","unit","timestamp"}, application/json
	FormatText Format = "text" // the number alone, text/plain
)

// contentType is the media type of a format.
func (f Format) contentType() string {
	if f == FormatText {
		return "text/plain; charset=utf-8"
	}
	return "application/json"
}

// encodeReading writes one reading in format f.
func encodeReading(f Format, value float64, unit string, at time.Time) []byte {
	if f == FormatText {
		return strconv.AppendFloat(nil, value, 'f', -1, 64)
	}
	dst := make([]byte, 0, 96)
	dst = append(dst, `{"value":`...)
	dst = strconv.AppendFloat(dst, value, 'f', -1, 64)
	dst = append(dst, `,"unit":`...)
	dst = strconv.AppendQuote(dst, unit) // units are ASCII here, where Go and JSON quoting agree
	dst = append(dst, `,"timestamp":"`...)
	dst = at.UTC().AppendFormat(dst, timestampLayout)
	return append(dst, `"}`...)
}

// garbageKinds is how many ways encodeGarbage can corrupt a body.
const garbageKinds = 5

// encodeGarbage returns an invalid body in place of a reading, chosen by nonce: cut in the
// middle, the number written as a string with its unit, a unit no parameter has, a NaN (not
// JSON), or line noise.
func encodeGarbage(f Format, value float64, unit string, at time.Time, nonce uint64) []byte {
	num := strconv.FormatFloat(value, 'f', -1, 64)
	switch nonce % garbageKinds {
	case 0:
		valid := encodeReading(f, value, unit, at)
		if f == FormatText {
			return append(valid, ".5.5"...)
		}
		return valid[:len(valid)/2]
	case 1:
		if f == FormatText {
			return []byte(num + " " + unit)
		}
		return []byte(`{"value":` + strconv.Quote(num+" "+unit) + `,"unit":` + strconv.Quote(unit) + `}`)
	case 2:
		if f == FormatText {
			return []byte("ERR")
		}
		return encodeReading(f, value, "??", at)
	case 3:
		if f == FormatText {
			return []byte("NaN")
		}
		return []byte(`{"value":NaN,"unit":` + strconv.Quote(unit) + `}`)
	}
	n := 8 + int((nonce>>8)%33)
	out := make([]byte, n)
	x := nonce
	for i := range out {
		x = x*6364136223846793005 + 1442695040888963407
		out[i] = byte(x >> 56)
	}
	if utf8.Valid(out) {
		out[0] = 0xff // never accidentally valid text
	}
	return out
}

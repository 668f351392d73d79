// Package probepayload encodes the readings the simulated CoAP and HTTP probes serve, and
// the garbage they serve in their place when asked to misbehave. The encoding follows the
// probe contract of the science notes, written here independently of the agent's decoders.
package probepayload

import (
	"fmt"
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
	FormatJSON Format = "json" // {"value","unit","timestamp"}
	FormatText Format = "text" // the number alone
)

// ParseFormat resolves a format name; "" is FormatJSON.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case "", FormatJSON:
		return FormatJSON, nil
	case FormatText:
		return FormatText, nil
	}
	return "", fmt.Errorf("unknown format %s (want json or text)", strconv.Quote(s))
}

// Encode writes one reading in format f.
func Encode(f Format, value float64, unit string, at time.Time) []byte {
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

// GarbageKinds is how many ways EncodeGarbage can corrupt a payload.
const GarbageKinds = 5

// EncodeGarbage returns an invalid payload in place of a reading, chosen by nonce: cut in
// the middle, the number written as a string with its unit, a unit no parameter has, a NaN
// (not JSON), or line noise. Every form is something broken probe firmware or a corrupted
// link really sends.
func EncodeGarbage(f Format, value float64, unit string, at time.Time, nonce uint64) []byte {
	num := strconv.FormatFloat(value, 'f', -1, 64)
	switch nonce % GarbageKinds {
	case 0:
		valid := Encode(f, value, unit, at)
		if f == FormatText {
			return append(valid, ".5.5"...) // two decimal points
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
		return Encode(f, value, "??", at)
	case 3:
		if f == FormatText {
			return []byte("NaN")
		}
		return []byte(`{"value":NaN,"unit":` + strconv.Quote(unit) + `}`)
	}
	return Noise(nonce)
}

// Noise returns 8 to 40 bytes of line noise chosen by nonce, never valid UTF-8 (so never
// accidentally a number or JSON).
func Noise(nonce uint64) []byte {
	n := 8 + int((nonce>>8)%33)
	out := make([]byte, n)
	x := nonce
	for i := range out {
		x = x*6364136223846793005 + 1442695040888963407
		out[i] = byte(x >> 56)
	}
	if utf8.Valid(out) {
		out[0] = 0xff
	}
	return out
}

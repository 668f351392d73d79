package mqttsim

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/purehealth/purehealth/firmware-sim/internal/probepayload"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// The payloads are written here from the contract (design §4), byte by byte, and not with
// the agent's types: a simulator that shared the agent's decoder would hide a symmetric bug.

// Topic is the contract topic of one parameter's readings.
func Topic(station string, p telemetry.Param) string {
	return "purehealth/" + station + "/" + string(p)
}

// BatchTopic is the contract topic that takes an array of readings.
func BatchTopic(station string) string { return "purehealth/" + station + "/readings" }

// timestampLayout is RFC 3339 in UTC with milliseconds, so readings of one fast sensor keep
// distinct, ordered timestamps.
const timestampLayout = "2006-01-02T15:04:05.000Z07:00"

// reading is one measurement on its way out.
type reading struct {
	Param  telemetry.Param
	Value  float64 // already rounded to the probe's resolution
	Unit   string
	Time   time.Time
	Sensor string
}

// appendReading writes r as a JSON object: {"value":…,"unit":…,"timestamp":…,"sensor":…},
// with "param" first when withParam (the element of a batch). rawValue, when not empty,
// replaces the value token verbatim (used to make garbage).
func appendReading(dst []byte, r reading, withParam bool, rawValue string) []byte {
	dst = append(dst, '{')
	if withParam {
		dst = append(dst, `"param":`...)
		dst = appendString(dst, string(r.Param))
		dst = append(dst, ',')
	}
	dst = append(dst, `"value":`...)
	if rawValue != "" {
		dst = append(dst, rawValue...)
	} else {
		dst = strconv.AppendFloat(dst, r.Value, 'f', -1, 64)
	}
	dst = append(dst, `,"unit":`...)
	dst = appendString(dst, r.Unit)
	dst = append(dst, `,"timestamp":`...)
	dst = appendString(dst, r.Time.UTC().Format(timestampLayout))
	dst = append(dst, `,"sensor":`...)
	dst = appendString(dst, r.Sensor)
	return append(dst, '}')
}

// encodeReading is the payload on purehealth/<station>/<param>.
func encodeReading(r reading) []byte {
	return appendReading(make([]byte, 0, 128), r, false, "")
}

// encodeBatch is the payload on purehealth/<station>/readings.
func encodeBatch(rs []reading) []byte {
	dst := make([]byte, 0, 16+len(rs)*128)
	dst = append(dst, '[')
	for i, r := range rs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendReading(dst, r, true, "")
	}
	return append(dst, ']')
}

// garbageKinds is how many ways encodeGarbage can corrupt a message.
const garbageKinds = 5

// encodeGarbage returns an invalid payload in place of rs (one reading, or a batch when
// batch), chosen by nonce: truncated JSON, a value that is a string, a unit no parameter
// has, a NaN literal (not JSON), or binary noise. Every form is something a broken probe
// firmware or a corrupted link really sends.
func encodeGarbage(rs []reading, batch bool, nonce uint64) []byte {
	kind := nonce % garbageKinds
	first := rs[0]
	raw := ""
	switch kind {
	case 0: // truncated in the middle
		var valid []byte
		if batch {
			valid = encodeBatch(rs)
		} else {
			valid = encodeReading(first)
		}
		return valid[:len(valid)/2]
	case 1: // a string where a number belongs
		raw = strconv.Quote(strconv.FormatFloat(first.Value, 'f', -1, 64) + " " + first.Unit)
	case 2: // a unit no parameter has
		first.Unit = "??"
	case 3: // JSON has no NaN
		raw = "NaN"
	default: // line noise
		return probepayload.Noise(nonce)
	}
	if !batch {
		return appendReading(make([]byte, 0, 128), first, false, raw)
	}
	dst := append(make([]byte, 0, 16+len(rs)*128), '[')
	dst = appendReading(dst, first, true, raw)
	for _, r := range rs[1:] {
		dst = append(dst, ',')
		dst = appendReading(dst, r, true, "")
	}
	return append(dst, ']')
}

// appendString writes s as a JSON string.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
		i++
	}
	return append(dst, '"')
}

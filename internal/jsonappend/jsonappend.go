// Package jsonappend writes JSON values byte for byte as encoding/json marshals them,
// without reflection: for the few hot paths that write thousands of small objects (a
// batch's live readings, a year of rollup buckets), where json.Marshal's reflection and
// its re-checking of what it wrote cost more than the work around them. The tests hold
// every function to encoding/json.
package jsonappend

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Float appends f as encoding/json writes a float64 (ES6 number formatting: exponents
// below 1e-6 and from 1e21, without a leading zero in the exponent). NaN and the
// infinities, which JSON cannot carry (encoding/json refuses them), come out as null.
func Float(b []byte, f float64) []byte {
	if out, ok := appendDecimal(b, f); ok {
		return out
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// decimalScale is 10^decimalDigits: appendDecimal writes numbers of at most that many
// decimals (readings, their minima and maxima) without the general shortest-form search,
// which costs three times as much.
const (
	decimalDigits = 6
	decimalScale  = 1e6
	// decimalLimit keeps an ulp below 1e-7, a tenth of the grid's step: then no other
	// decimal as short as n/decimalScale lies within an ulp of it (see appendDecimal).
	decimalLimit = 1e8
)

// appendDecimal appends f as strconv's shortest 'f' form when f is the double nearest to
// n/10^6 for an integer n, |f| < 1e8, and reports whether it did. That decimal is then
// the shortest that reads back as f: any other that does lies within an ulp (< 1.5e-8)
// of it, and one with no more significant digits and at least its magnitude is on the
// same 10^-6 grid, so it is the same number; a shorter one of lower magnitude is at
// least 10^-7 away. Zero goes the general way (its sign).
func appendDecimal(b []byte, f float64) ([]byte, bool) {
	if !(f > -decimalLimit && f < decimalLimit) || f == 0 {
		return b, false
	}
	scaled := math.Round(f * decimalScale)
	if scaled/decimalScale != f {
		return b, false
	}
	n := int64(scaled)
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	b = strconv.AppendInt(b, n/decimalScale, 10)
	frac := n % decimalScale
	if frac == 0 {
		return b, true
	}
	var digits [decimalDigits]byte
	end := 0
	for i := decimalDigits - 1; i >= 0; i-- {
		d := byte(frac % 10)
		frac /= 10
		digits[i] = '0' + d
		if end == 0 && d != 0 {
			end = i + 1
		}
	}
	b = append(b, '.')
	return append(b, digits[:end]...), true
}

// String appends s quoted as encoding/json writes it with its default HTML escaping: <, >
// and & as \u003c..., control characters escaped, invalid UTF-8 as \ufffd, U+2028 and
// U+2029 escaped.
func String(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Time appends t quoted in RFC 3339 with the fraction's trailing zeros trimmed, in t's
// location, as time.Time's MarshalJSON does. A year outside 0–9999, which MarshalJSON
// refuses, is written in the same layout.
func Time(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

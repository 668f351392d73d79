package payload

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// The functions here are a fast path for the payload nearly every device sends: one flat
// object such as {"value":7.21,"unit":"pH","timestamp":"2025-11-13T12:00:00Z","sensor":"ph-1"}.
// encoding/json spends most of a reading's decoding time on reflection and on copying each
// field; scanning the common shape directly costs a fraction of that and allocates nothing.
//
// The fast path only ever answers "yes, and here are the fields" or "not mine": every
// payload it is unsure about (escapes, non-ASCII or differently cased keys, nested values,
// duplicate fields, anything malformed) goes to encoding/json as before, which then decides,
// with its own error messages. What the fast path accepts is valid JSON that encoding/json
// decodes into exactly the same fields; FuzzScanItem checks that.

// scan fills it from data, a whole JSON document, when data is an object of the common
// shape, and reports whether it did. The fields are sub-slices of data (json.RawMessage
// would copy them). On false it may have filled some fields: reset it before decoding
// another way.
func (it *item) scan(data []byte) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return false
		}
		start := i + 1
		j := start
		for j < len(data) && data[j] != '"' {
			// Escapes and non-ASCII keys need encoding/json's unquoting and Unicode case
			// folding; control characters are a syntax error it should report.
			if c := data[j]; c < 0x20 || c >= utf8.RuneSelf || c == '\\' {
				return false
			}
			j++
		}
		if j >= len(data) {
			return false
		}
		dst, ok := it.field(data[start:j])
		if !ok {
			return false
		}
		i = skipSpace(data, j+1)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		end := scanScalar(data, i)
		if end < 0 {
			return false
		}
		if dst != nil {
			if *dst != nil {
				return false // a duplicate: encoding/json keeps the last one; let it
			}
			*dst = data[i:end:end]
		}
		i = skipSpace(data, end)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return skipSpace(data, i+1) == len(data)
		default:
			return false
		}
	}
}

// itemFields are the JSON names of item's fields.
var itemFields = [...]string{"param", "value", "unit", "timestamp", "sensor"}

// field returns where the value of key goes: one of it's fields, or nil for a key that
// is ignored. ok is false for a key encoding/json would match to a field without it being
// spelled exactly so ("Value"): the fast path leaves those to it.
func (it *item) field(key []byte) (dst *json.RawMessage, ok bool) {
	switch string(key) {
	case "param":
		return &it.Param, true
	case "value":
		return &it.Value, true
	case "unit":
		return &it.Unit, true
	case "timestamp":
		return &it.Timestamp, true
	case "sensor":
		return &it.Sensor, true
	}
	for _, f := range itemFields {
		if bytes.EqualFold(key, []byte(f)) {
			return nil, false
		}
	}
	return nil, true
}

// skipSpace returns the index of the first byte at or after i that is not JSON whitespace.
func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanScalar returns the end of the JSON string, number, true, false or null that starts
// at data[i], or -1 when there is none the fast path takes (objects and arrays, strings
// with escapes or control characters, malformed values).
func scanScalar(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch c := data[i]; {
	case c == '"':
		for j := i + 1; j < len(data); j++ {
			switch c := data[j]; {
			case c == '"':
				return j + 1
			case c == '\\' || c < 0x20:
				return -1
			}
		}
		return -1
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(data, i)
	case c == 't':
		return scanLiteral(data, i, "true")
	case c == 'f':
		return scanLiteral(data, i, "false")
	case c == 'n':
		return scanLiteral(data, i, "null")
	}
	return -1
}

func scanLiteral(data []byte, i int, lit string) int {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// scanNumber returns the end of the JSON number at data[i] (RFC 8259 §6:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?), or -1 when there is none. It stops at
// the first byte that cannot continue the number; the caller checks what follows.
func scanNumber(data []byte, i int) int {
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		return -1
	case data[i] == '0':
		i++
	case data[i] >= '1' && data[i] <= '9':
		i = skipDigits(data, i+1)
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		j := skipDigits(data, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := skipDigits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	return i
}

// isNumber reports whether data is exactly one JSON number, which for a trimmed payload
// that starts like a number is what json.Valid decides.
func isNumber(data []byte) bool {
	return scanNumber(data, 0) == len(data)
}

// unquote returns the text of a JSON string token without escapes, control characters or
// invalid UTF-8, which is its bytes between the quotes; ok is false for any other token,
// which needs encoding/json's unquoting.
func unquote(raw []byte) (s string, ok bool) {
	body, ok := plainString(raw)
	if !ok {
		return "", false
	}
	return intern(body), true
}

// plainString returns the bytes between the quotes of a JSON string token without
// escapes, control characters or invalid UTF-8; ok is false for any other token.
func plainString(raw []byte) (body []byte, ok bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	body = raw[1 : len(raw)-1]
	for _, c := range body {
		if c == '"' || c == '\\' || c < 0x20 {
			return nil, false
		}
	}
	if !utf8.Valid(body) {
		return nil, false
	}
	return body, true
}

// unmarshalString decodes a JSON string token.
func unmarshalString(raw []byte) (string, error) {
	if s, ok := unquote(raw); ok {
		return s, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", syntaxError(err)
	}
	return s, nil
}

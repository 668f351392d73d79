package serialprobe

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxLine is the longest line a circuit sends (the longest real one, an EC reading with all
// four outputs or a ?Status reply, is under 40 bytes). Longer lines are line noise: they are
// dropped whole, and the receiver never buffers more than this.
const MaxLine = 64

// Kind says what a line from a circuit is.
type Kind uint8

// The kinds of line.
const (
	KindValue Kind = iota + 1 // a reading: one or more comma-separated numbers
	KindReply                 // the answer to a query: ?I,pH,2.16
	KindCode                  // a response code: *OK, *ER, ...
)

func (k Kind) String() string {
	switch k {
	case KindValue:
		return "value"
	case KindReply:
		return "reply"
	case KindCode:
		return "code"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Code is a response code, without its asterisk.
type Code string

// The response codes (science §5, EZO data sheets).
const (
	CodeOK   Code = "OK"   // command understood
	CodeER   Code = "ER"   // unknown command
	CodeOV   Code = "OV"   // over voltage
	CodeUV   Code = "UV"   // under voltage
	CodeRS   Code = "RS"   // reset
	CodeRE   Code = "RE"   // ready after boot
	CodeSL   Code = "SL"   // asleep
	CodeWA   Code = "WA"   // woke up
	CodeDONE Code = "DONE" // a long operation finished
)

var codes = map[string]Code{
	"OK": CodeOK, "ER": CodeER, "OV": CodeOV, "UV": CodeUV, "RS": CodeRS, "RE": CodeRE,
	"SL": CodeSL, "WA": CodeWA, "DONE": CodeDONE,
}

// Line is one parsed line from a circuit.
type Line struct {
	Kind Kind
	// Values are the numbers of a reading, in the order of the circuit's enabled outputs.
	Values []float64
	// Code is the response code of a KindCode line.
	Code Code
	// Query names what a KindReply line answers, upper case: I, STATUS, CAL, T, C, O, S,
	// *OK, ...
	Query string
	// Fields are the comma-separated parts after the query name, as sent.
	Fields []string
}

// Errors of ParseLine.
var (
	// ErrGarbage: the line has bytes a circuit never sends (control bytes, non-ASCII,
	// broken UTF-8) or is longer than MaxLine.
	ErrGarbage = errors.New("garbage")
	// ErrUnknown: printable, but no line a circuit sends.
	ErrUnknown = errors.New("not an EZO line")
)

// ParseLine parses one line from a circuit, without its carriage return. It never reads
// more than MaxLine bytes.
func ParseLine(b []byte) (Line, error) {
	if len(b) > MaxLine {
		return Line{}, fmt.Errorf("%w: %d bytes, longer than %d", ErrGarbage, len(b), MaxLine)
	}
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			return Line{}, fmt.Errorf("%w: byte %#02x at %d in %q", ErrGarbage, c, i, b)
		}
	}
	s := string(b)
	switch {
	case s == "":
		return Line{}, fmt.Errorf("%w: empty line", ErrUnknown)
	case s[0] == '*':
		if c, ok := codes[strings.ToUpper(s[1:])]; ok {
			return Line{Kind: KindCode, Code: c}, nil
		}
		return Line{}, fmt.Errorf("%w: unknown response code %q", ErrUnknown, s)
	case s[0] == '?':
		name, rest, hasFields := strings.Cut(s[1:], ",")
		if name == "" {
			return Line{}, fmt.Errorf("%w: reply without a name %q", ErrUnknown, s)
		}
		l := Line{Kind: KindReply, Query: strings.ToUpper(name)}
		if hasFields {
			l.Fields = strings.Split(rest, ",")
		}
		return l, nil
	}
	var values []float64
	for field := range strings.SplitSeq(s, ",") {
		v, ok := parseNumber(field)
		if !ok {
			return Line{}, fmt.Errorf("%w: %q", ErrUnknown, s)
		}
		values = append(values, v)
	}
	return Line{Kind: KindValue, Values: values}, nil
}

// parseNumber accepts what a circuit prints: an optional minus, digits, an optional point
// and digits. strconv alone would also take "NaN", "Inf", "1e9", "0x1p3" and "1_000".
func parseNumber(s string) (float64, bool) {
	digits, point := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '-' && i == 0:
		case c == '.' && !point:
			point = true
		default:
			return 0, false
		}
	}
	if digits == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// framer cuts the byte stream from a circuit into lines at each carriage return. Its
// buffer is fixed: a line longer than MaxLine is dropped up to the next carriage return and
// reported as overlong, so a stream without one never grows memory. Line feeds are ignored
// (some adapters add them).
type framer struct {
	buf      [MaxLine]byte
	n        int
	overlong bool
}

// feed consumes p, calling emit for each complete line (valid only during the call) or
// dropped overlong line. It stops early, returning false, when emit returns false.
func (f *framer) feed(p []byte, emit func(line []byte, overlong bool) bool) bool {
	for _, c := range p {
		switch {
		case c == '\r':
			line, overlong := f.buf[:f.n], f.overlong
			f.n, f.overlong = 0, false
			if (overlong || len(line) > 0) && !emit(line, overlong) {
				return false
			}
		case c == '\n':
		case f.overlong:
		case f.n == len(f.buf):
			f.overlong, f.n = true, 0
		default:
			f.buf[f.n] = c
			f.n++
		}
	}
	return true
}

package wire

import (
	"strconv"
	"unicode/utf8"
)

// Readings are most of every batch, and decoding them through reflection cost the cloud
// more than storing them. parseReading reads the form an encoder writes (json.Marshal of a
// Reading: the fields by their names, strings without escapes, numbers plain) directly,
// and declines anything else: another spelling of a key (encoding/json matches keys
// without regard to case), a key twice or unknown, null, an escape, invalid UTF-8, a
// number out of range, a value of another type. A declined record goes to encoding/json,
// so a record decodes to exactly what json.Unmarshal makes of it either way
// (FuzzParseReading holds the two together).

// The fields of a Reading, as bits of a set.
const (
	keySeq = 1 << iota
	keyTime
	keySensor
	keyParam
	keyValue
	keyUnit
	keyQuality
	keySource
	keyFlags
	keySampleID
	keyLab
	keyMethod
)

// parseReading decodes raw, one record as JSON, into r and reports whether it could; when
// it could not, r is to be thrown away. in keeps the strings of this batch that repeat, so
// that a name repeated in every record is allocated once.
func parseReading(raw []byte, r *Reading, in *interner) bool {
	p := scanner{b: raw}
	if !p.byte('{') {
		return false
	}
	var seen int
	if p.peek('}') {
		p.i++
		return p.end()
	}
	for {
		key, ok := p.str()
		if !ok || !p.byte(':') {
			return false
		}
		var bit int
		switch string(key) {
		case "seq":
			bit = keySeq
			num, ok := p.number()
			if !ok {
				return false
			}
			v, err := strconv.ParseUint(string(num), 10, 64)
			if err != nil {
				return false
			}
			r.Seq = v
		case "time":
			bit = keyTime
			start := p.i
			if _, ok := p.str(); !ok {
				return false
			}
			// What encoding/json does: the value, quotes and all, to Time.UnmarshalJSON.
			if err := r.Time.UnmarshalJSON(raw[start:p.i]); err != nil {
				return false
			}
		case "value":
			bit = keyValue
			num, ok := p.number()
			if !ok {
				return false
			}
			v, err := strconv.ParseFloat(string(num), 64)
			if err != nil {
				return false
			}
			r.Value = v
		case "flags":
			bit = keyFlags
			flags, ok := p.strings(in)
			if !ok {
				return false
			}
			r.Flags = flags
		default:
			var dst *string
			switch string(key) {
			case "sensor":
				bit, dst = keySensor, &r.Sensor
			case "param":
				bit, dst = keyParam, &r.Param
			case "unit":
				bit, dst = keyUnit, &r.Unit
			case "quality":
				bit, dst = keyQuality, &r.Quality
			case "source":
				bit, dst = keySource, &r.Source
			case "sample_id":
				bit, dst = keySampleID, &r.SampleID
			case "lab":
				bit, dst = keyLab, &r.Lab
			case "method":
				bit, dst = keyMethod, &r.Method
			default:
				return false
			}
			s, ok := p.str()
			if !ok {
				return false
			}
			*dst = in.get(s)
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		if p.peek(',') {
			p.i++
			continue
		}
		if !p.byte('}') {
			return false
		}
		return p.end()
	}
}

// scanner reads JSON text, taking only what is valid JSON: the stream before it finds
// where a record ends, not whether it is well formed.
type scanner struct {
	b []byte
	i int
}

func (p *scanner) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c after any whitespace.
func (p *scanner) byte(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// peek reports whether c comes next, after any whitespace, without consuming it.
func (p *scanner) peek(c byte) bool {
	p.space()
	return p.i < len(p.b) && p.b[p.i] == c
}

// end reports whether nothing but whitespace is left.
func (p *scanner) end() bool {
	p.space()
	return p.i == len(p.b)
}

// str reads a string without escapes and of valid UTF-8, and returns its contents.
func (p *scanner) str() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	ascii := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, ascii || utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return nil, false
}

// number reads a number's literal, as JSON writes numbers (RFC 8259, section 6): strconv
// also takes "+1", "01", ".5" and "1.", which JSON does not.
func (p *scanner) number() ([]byte, bool) {
	p.space()
	start := p.i
	p.accept('-')
	switch {
	case p.accept('0'):
	case p.digits() == 0:
		return nil, false
	}
	if p.accept('.') && p.digits() == 0 {
		return nil, false
	}
	if p.accept('e') || p.accept('E') {
		_ = p.accept('+') || p.accept('-')
		if p.digits() == 0 {
			return nil, false
		}
	}
	return p.b[start:p.i], true
}

// accept consumes c if it comes next.
func (p *scanner) accept(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// digits consumes a run of decimal digits and returns its length.
func (p *scanner) digits() int {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

// strings reads an array of strings (an empty one is empty, not nil, as encoding/json has
// it).
func (p *scanner) strings(in *interner) ([]string, bool) {
	if !p.byte('[') {
		return nil, false
	}
	out := []string{}
	if p.peek(']') {
		p.i++
		return out, true
	}
	for {
		s, ok := p.str()
		if !ok {
			return nil, false
		}
		out = append(out, in.get(s))
		if p.peek(',') {
			p.i++
			continue
		}
		return out, p.byte(']')
	}
}

// interner hands out one string per distinct value it has seen, up to a bound: a batch
// names a few parameters, units, sensors and flags thousands of times.
type interner struct {
	m map[string]string
}

// maxInterned bounds an interner, so that a batch of distinct names costs no more than
// without one.
const maxInterned = 512

func (in *interner) get(b []byte) string {
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in.m) < maxInterned && len(b) <= 128 {
		if in.m == nil {
			in.m = map[string]string{}
		}
		in.m[s] = s
	}
	return s
}

package wire

import (
	"fmt"
	"io"
)

// stream reads a batch's JSON for decoder a value at a time. encoding/json's Decoder
// scans a value twice (once to find its end, once to decode it) and copies it out for a
// RawMessage; that was a fifth of the cloud's CPU in an ingest. stream finds a value's
// end in one pass, tracking strings and nesting only, and lends its bytes without a copy
// (until the next call). Whether those bytes are valid JSON is decided by whoever
// decodes them: parseReading, which declines anything it does not read exactly as
// encoding/json would, or json.Unmarshal. The structure around the values (the batch
// object, the record arrays, commas and colons) is checked here.
type stream struct {
	r   io.Reader
	buf []byte // buf[pos:] has been read and not consumed
	pos int
	off int64 // the input offset of buf[0]
	err error // what the reader returned after the bytes in buf
}

// streamChunk is the room stream's buffer starts with, and what it grows by at least.
const streamChunk = 32 << 10

// fill moves the unconsumed bytes to the start of buf and reads more after them. It
// returns false once the reader has no more (s.err says why). buf holds at most one value
// (MaxRecordBytes, which value checks) and a chunk.
func (s *stream) fill() bool {
	if s.err != nil {
		return false
	}
	if s.pos > 0 {
		n := copy(s.buf, s.buf[s.pos:])
		s.off += int64(s.pos)
		s.buf, s.pos = s.buf[:n], 0
	}
	if cap(s.buf)-len(s.buf) < streamChunk/2 {
		grown := make([]byte, len(s.buf), 2*cap(s.buf)+streamChunk)
		copy(grown, s.buf)
		s.buf = grown
	}
	for range 100 {
		n, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
		s.buf = s.buf[:len(s.buf)+n]
		if err != nil {
			s.err = err
		}
		if n > 0 {
			return true
		}
		if err != nil {
			return false
		}
	}
	s.err = io.ErrNoProgress
	return false
}

// peek skips white space and returns the next byte, unconsumed. At the end of the input
// the error is io.EOF; a reader's own error is returned as it is.
func (s *stream) peek() (byte, error) {
	for {
		for s.pos < len(s.buf) {
			switch c := s.buf[s.pos]; c {
			case ' ', '\t', '\n', '\r':
				s.pos++
			default:
				return c, nil
			}
		}
		if !s.fill() {
			return 0, s.err
		}
	}
}

// expect consumes the next byte, which must be c, after white space.
func (s *stream) expect(c byte, where string) error {
	got, err := s.peek()
	if err != nil {
		return err
	}
	if got != c {
		return s.unexpected(got, where)
	}
	s.pos++
	return nil
}

// unexpected reports the byte c at the current offset, where what follows was wanted.
func (s *stream) unexpected(c byte, want string) error {
	return fmt.Errorf("%w: invalid character %q at byte %d, want %s", ErrMalformed, c, s.off+int64(s.pos), want)
}

// first consumes the closing byte of an empty object or array, just opened, and reports
// whether it has elements.
func (s *stream) first(closing byte) (bool, error) {
	c, err := s.peek()
	if err != nil {
		return false, err
	}
	if c == closing {
		s.pos++
		return false, nil
	}
	return true, nil
}

// next consumes the comma or the closing byte after an element of an object or array; it
// reports whether another element follows.
func (s *stream) next(closing byte, where string) (bool, error) {
	c, err := s.peek()
	if err != nil {
		return false, err
	}
	switch c {
	case ',':
		s.pos++
		return true, nil
	case closing:
		s.pos++
		return false, nil
	}
	return false, s.unexpected(c, "',' or '"+string(closing)+"' after "+where)
}

// value consumes the next value and returns its bytes, valid until the next call. A value
// longer than MaxRecordBytes is refused once that many of its bytes are read.
func (s *stream) value() ([]byte, error) {
	if _, err := s.peek(); err != nil {
		return nil, err
	}
	var (
		n      int // bytes of the value scanned, from s.pos
		depth  int
		inStr  bool
		escape bool
	)
scan:
	for {
		if s.pos+n == len(s.buf) {
			if n > MaxRecordBytes {
				return nil, fmt.Errorf("%w: a value at byte %d is larger than %d bytes", ErrTooLarge, s.off+int64(s.pos), MaxRecordBytes)
			}
			if !s.fill() {
				return nil, s.err
			}
			continue
		}
		c := s.buf[s.pos+n]
		if inStr {
			n++
			switch {
			case escape:
				escape = false
			case c == '\\':
				escape = true
			case c == '"':
				inStr = false
				if depth == 0 {
					break scan
				}
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				break scan // a number or literal ends at its container's end
			}
			if depth--; depth == 0 {
				n++
				break scan
			}
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				break scan
			}
		}
		n++
	}
	if n > MaxRecordBytes {
		return nil, fmt.Errorf("%w: a value at byte %d is larger than %d bytes", ErrTooLarge, s.off+int64(s.pos), MaxRecordBytes)
	}
	if n == 0 {
		return nil, s.unexpected(s.buf[s.pos], "a value")
	}
	v := s.buf[s.pos : s.pos+n]
	s.pos += n
	return v, nil
}

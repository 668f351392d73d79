package cli

import (
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// terminal is a writer for a technician's terminal: it passes text through, with newline
// and tab, but writes every other control or format character (ESC, CSI, bidi overrides
// ...) and every invalid byte as a Go escape such as \x1b, so that names and messages
// chosen by a device cannot move the cursor, retitle the window or reorder what is shown.
// Readings stored before device names were checked can carry such characters.
type terminal struct {
	w       io.Writer
	pending []byte // the start of a rune cut by the end of a Write
}

func newTerminal(w io.Writer) *terminal { return &terminal{w: w} }

func (t *terminal) Write(p []byte) (int, error) {
	n := len(p)
	data := p
	if len(t.pending) > 0 {
		data = append(t.pending, p...)
		t.pending = nil
	}
	out := make([]byte, 0, len(data))
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			if !utf8.FullRune(data[i:]) {
				t.pending = append(t.pending, data[i:]...)
				break
			}
			out = append(out, `\x`...)
			out = strconv.AppendUint(appendPad(out, data[i]), uint64(data[i]), 16)
			i++
			continue
		}
		if r != '\n' && r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
			q := strconv.QuoteRuneToASCII(r)
			out = append(out, q[1:len(q)-1]...)
		} else {
			out = append(out, data[i:i+size]...)
		}
		i += size
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return n, nil
}

// appendPad adds the leading zero of a one-digit hex byte.
func appendPad(out []byte, b byte) []byte {
	if b < 0x10 {
		out = append(out, '0')
	}
	return out
}

package cli

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTerminalEscapesControlCharacters(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ph-1\t7.2\n", "ph-1\t7.2\n"},
		{"नदी 🌊", "नदी 🌊"},
		{"\x1b[2J\x1b]0;pwned\x07", `\x1b[2J\x1b]0;pwned\a`},
		{"a\x00b", `a\x00b`},
		{"rtl\u202eevil", `rtl\u202eevil`},
		{"c1\u009b31m", `c1\u009b31m`},
		{"bad\xffbyte", `bad\xffbyte`},
		{"del\x7f", `del\x7f`},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		n, err := newTerminal(&buf).Write([]byte(tt.in))
		require.NoError(t, err)
		assert.Equal(t, len(tt.in), n)
		assert.Equal(t, tt.want, buf.String(), "%q", tt.in)
	}
}

func TestTerminalRuneAcrossWrites(t *testing.T) {
	var buf bytes.Buffer
	term := newTerminal(&buf)
	s := []byte("नदी")
	for _, b := range s {
		_, err := term.Write([]byte{b})
		require.NoError(t, err)
	}
	assert.Equal(t, "नदी", buf.String())
}

func FuzzTerminal(f *testing.F) {
	f.Add([]byte("\x1b[31mred\u202e"))
	f.Fuzz(func(t *testing.T, p []byte) {
		var buf bytes.Buffer
		if _, err := newTerminal(&buf).Write(p); err != nil {
			t.Fatal(err)
		}
		for _, r := range buf.String() {
			if r != '\n' && r != '\t' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0)) {
				t.Fatalf("control rune %U reached the terminal from %q", r, p)
			}
		}
	})
}

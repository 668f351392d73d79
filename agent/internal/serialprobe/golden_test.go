package serialprobe

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the parsed golden files")

// frame is one line of a captured transcript: what the circuit received ('>') or sent
// ('<').
type frame struct {
	dir  byte
	data []byte
}

// readCapture reads a transcript written by ph-sim's EZO emulator (testdata/ezo/*.txt):
// comment lines start with '#', frames are `> "R\r"` or `< "7.740\r*OK\r"`, Go-quoted.
func readCapture(t testing.TB, path string) []frame {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []frame
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		require.True(t, len(line) > 2 && (line[0] == '>' || line[0] == '<') && line[1] == ' ',
			"%s:%d: not a frame: %q", path, n, line)
		data, err := strconv.Unquote(line[2:])
		require.NoError(t, err, "%s:%d: %q (frames over 256 bytes are cut and cannot be replayed)", path, n, line)
		out = append(out, frame{dir: line[0], data: []byte(data)})
	}
	require.NoError(t, sc.Err())
	return out
}

// describe renders a parsed line for the golden files.
func describe(line []byte, overlong bool) string {
	if overlong {
		return fmt.Sprintf("overlong line (over %d bytes) dropped", MaxLine)
	}
	l, err := ParseLine(line)
	if err != nil {
		return "rejected: " + err.Error()
	}
	switch l.Kind {
	case KindValue:
		return fmt.Sprintf("value %v", l.Values)
	case KindReply:
		return fmt.Sprintf("reply %s %q", l.Query, l.Fields)
	case KindCode:
		return "code " + string(l.Code)
	}
	return "?"
}

// The frames the simulator sends, captured in testdata/ezo by its own tests, through the
// agent's framer and parser. The simulator and the parser were written independently;
// these files are where they meet. Run with -update after reviewing a change.
func TestGoldenFrames(t *testing.T) {
	captures, err := filepath.Glob(filepath.Join("testdata", "ezo", "*.txt"))
	require.NoError(t, err)
	require.NotEmpty(t, captures, "captured frames in testdata/ezo")
	for _, path := range captures {
		name := strings.TrimSuffix(filepath.Base(path), ".txt")
		t.Run(name, func(t *testing.T) {
			var (
				b strings.Builder
				f framer
			)
			for _, fr := range readCapture(t, path) {
				if fr.dir == '>' {
					fmt.Fprintf(&b, "> %s\n", quoteLine(string(bytes.TrimSuffix(fr.data, []byte("\r")))))
					continue
				}
				f.feed(fr.data, func(line []byte, overlong bool) bool {
					fmt.Fprintf(&b, "< %s\n", describe(line, overlong))
					return true
				})
			}
			if f.n > 0 || f.overlong {
				b.WriteString("(an unterminated line is pending)\n")
			}
			golden := filepath.Join("testdata", "ezo", name+".parsed")
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(b.String()), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run with -update to create it")
			assert.Equal(t, string(want), b.String())
		})
	}
}

// Every kind of line the simulator sends is in the captures, and every garbage frame is
// rejected rather than read as a number.
func TestGoldenFramesCoverage(t *testing.T) {
	seen := map[string]bool{}
	captures, err := filepath.Glob(filepath.Join("testdata", "ezo", "*.txt"))
	require.NoError(t, err)
	for _, path := range captures {
		var f framer
		for _, fr := range readCapture(t, path) {
			if fr.dir != '<' {
				continue
			}
			f.feed(fr.data, func(line []byte, _ bool) bool {
				l, err := ParseLine(line)
				switch {
				case err != nil:
					seen["rejected"] = true
				case l.Kind == KindCode:
					seen["*"+string(l.Code)] = true
				default:
					seen[l.Kind.String()] = true
				}
				return true
			})
		}
	}
	for _, k := range []string{"value", "reply", "rejected", "*OK", "*ER", "*OV", "*UV", "*RS", "*RE", "*SL", "*WA"} {
		assert.True(t, seen[k], "the captures contain %s", k)
	}
}

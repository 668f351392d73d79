package deploytest

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// ShellBlocks returns the lines of each ```sh code block of a Markdown file. A block
// indented under a list item loses its fence's indentation.
func ShellBlocks(t testing.TB, file string) [][]string {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var blocks [][]string
	var cur []string
	in, indent := false, ""
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		fence := strings.TrimLeft(line, " ")
		switch {
		case !in && strings.HasPrefix(fence, "```sh"):
			in, cur, indent = true, nil, line[:len(line)-len(fence)]
		case in && strings.HasPrefix(fence, "```"):
			in = false
			blocks = append(blocks, cur)
		case in:
			cur = append(cur, strings.TrimPrefix(line, indent))
		}
	}
	return blocks
}

// ShellBlock returns the ```sh block of a Markdown file that contains marker, failing t
// when there is none: the file changed and the test that follows it must too.
func ShellBlock(t testing.TB, file, marker string) []string {
	t.Helper()
	for _, b := range ShellBlocks(t, file) {
		if strings.Contains(strings.Join(b, "\n"), marker) {
			return b
		}
	}
	require.Failf(t, "README step not found", "no shell block with %q in %s: update the test that follows it", marker, file)
	return nil
}

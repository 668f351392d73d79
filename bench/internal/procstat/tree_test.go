package procstat

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTimes(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Times
		wantErr bool
	}{
		{
			name: "postmaster with reaped children",
			in:   "6824 (postgres) S 6808 6808 1 0 -1 4194560 5253 0 0 0 233 107 40 2 20 0 8 0 93812 1569497088 6810\n",
			want: Times{PPID: 6808, CPU: 3400 * time.Millisecond, Children: 420 * time.Millisecond},
		},
		{
			name: "command name with spaces and parentheses",
			in:   "42 (a) b (c)) R 1 42 42 0 -1 0 0 0 0 0 7 3 1 1 20 0 1 0 1 1 1\n",
			want: Times{PPID: 1, CPU: 100 * time.Millisecond, Children: 20 * time.Millisecond},
		},
		{name: "no command", in: "42 a R 1", wantErr: true},
		{name: "no children times", in: "42 (a) R 1 42 42 0 -1 0 0 0 0 0 7 3", wantErr: true},
		{name: "bad parent", in: "42 (a) R x 42 42 0 -1 0 0 0 0 0 7 3 0 0", wantErr: true},
		{name: "negative time", in: "42 (a) R 1 42 42 0 -1 0 0 0 0 0 7 3 -1 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTimes([]byte(tt.in))
			if tt.wantErr {
				assert.ErrorIs(t, err, ErrFormat)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestTreeCPU(t *testing.T) {
	s := time.Second
	all := map[int]Times{
		10: {PPID: 1, CPU: 1 * s, Children: 2 * s}, // the root, with exited children
		11: {PPID: 10, CPU: 4 * s},
		12: {PPID: 11, CPU: 8 * s},  // a grandchild
		13: {PPID: 1, CPU: 100 * s}, // not in the tree
	}
	assert.Equal(t, 15*s, treeCPU(10, all))
	assert.Equal(t, 12*s, treeCPU(11, all))
	assert.Equal(t, time.Duration(0), treeCPU(99, all), "an unknown root has no time")

	all[10] = Times{PPID: 12, CPU: s} // a cycle: each process counts once
	assert.Equal(t, 13*s, treeCPU(10, all))
}

func TestReadTreeCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux /proc")
	}
	// A child that burns CPU for a moment, then exits: its time lands in our cutime once
	// it is waited for.
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done")
	require.NoError(t, cmd.Run())
	own, err := ReadCPU(os.Getpid())
	require.NoError(t, err)
	tree, err := ReadTreeCPU(os.Getpid())
	require.NoError(t, err)
	assert.Greater(t, tree, own, "the tree counts the exited child too")

	_, err = ReadTreeCPU(-1)
	assert.Error(t, err)
}

func FuzzParseTimes(f *testing.F) {
	f.Add("6824 (postgres) S 6808 6808 1 0 -1 4194560 5253 0 0 0 233 107 40 2 20 0 8 0")
	f.Add("1 ()) R 0 0 0 0 0 0 0 0 0 0 1 1 1 1")
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseTimes([]byte(s))
		if err != nil {
			return
		}
		assert.GreaterOrEqual(t, tm.PPID, 0)
		assert.GreaterOrEqual(t, tm.CPU, time.Duration(0))
		assert.GreaterOrEqual(t, tm.Children, time.Duration(0))
	})
}

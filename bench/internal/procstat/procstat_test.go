package procstat

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const statusSample = `Name:	ph-agent
Umask:	0022
State:	S (sleeping)
VmPeak:	 1532712 kB
VmSize:	 1532712 kB
VmHWM:	   30336 kB
VmRSS:	   27240 kB
RssAnon:	   16604 kB
Threads:	8
`

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Memory
		wantErr bool
	}{
		{name: "agent", in: statusSample, want: Memory{RSS: 27240 << 10, Peak: 30336 << 10}},
		{name: "kernel thread has no memory lines", in: "Name:\tkthreadd\nState:\tS (sleeping)\n", wantErr: true},
		{name: "only RSS", in: "VmRSS:\t 10 kB\n", wantErr: true},
		{name: "not kB", in: "VmHWM:\t 10 kB\nVmRSS:\t 10 MB\n", wantErr: true},
		{name: "not a number", in: "VmHWM:\t 10 kB\nVmRSS:\t ten kB\n", wantErr: true},
		{name: "negative", in: "VmHWM:\t 10 kB\nVmRSS:\t -1 kB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus([]byte(tt.in))
			if tt.wantErr {
				assert.ErrorIs(t, err, ErrFormat)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{
			name: "agent",
			in:   "6824 (ph-agent) S 6808 6808 1 0 -1 4194560 5253 0 0 0 233 107 0 0 20 0 8 0 93812 1569497088 6810 18446744073709551615\n",
			want: 3400 * time.Millisecond,
		},
		{
			name: "command name with spaces and parentheses",
			in:   "42 (a) b (c)) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1\n",
			want: 100 * time.Millisecond,
		},
		{name: "no command", in: "42 a R 1", wantErr: true},
		{name: "too short", in: "42 (a) R 1 2 3", wantErr: true},
		{name: "bad number", in: "42 (a) R 1 42 42 0 -1 0 0 0 0 0 x 3 0 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.in))
			if tt.wantErr {
				assert.ErrorIs(t, err, ErrFormat)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestReadOwnProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux /proc")
	}
	m, err := ReadMemory(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, m.RSS)
	assert.GreaterOrEqual(t, m.Peak, m.RSS, "the peak is at least the current RSS")

	// Burn a little CPU so the counter cannot be zero.
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	cpu, err := ReadCPU(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, cpu)

	_, err = ReadMemory(-1)
	assert.Error(t, err, "no process -1")
}

func TestSampleRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux /proc")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Millisecond)
	defer cancel()
	samples, err := SampleRSS(ctx, os.Getpid(), 10*time.Millisecond)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(samples), 2, "one at the start and at least one more")
	for _, s := range samples {
		assert.Positive(t, s.RSS)
	}

	_, err = SampleRSS(t.Context(), -1, time.Millisecond)
	assert.Error(t, err, "a process that does not exist ends the sampling")
}

func FuzzParseStatus(f *testing.F) {
	f.Add(statusSample)
	f.Add("VmHWM:\t 1 kB\nVmRSS:\t 1 kB\n")
	f.Add("VmRSS:99999999999999999999 kB")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseStatus([]byte(s))
		if err != nil {
			return
		}
		assert.GreaterOrEqual(t, m.RSS, int64(0))
		assert.GreaterOrEqual(t, m.Peak, int64(0))
	})
}

func FuzzParseStat(f *testing.F) {
	f.Add("6824 (ph-agent) S 6808 6808 1 0 -1 4194560 5253 0 0 0 233 107 0 0 20 0 8 0")
	f.Add("1 ()) R 0 0 0 0 0 0 0 0 0 0 1 1")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseStat([]byte(s))
		if err != nil {
			return
		}
		assert.GreaterOrEqual(t, d, time.Duration(0))
	})
}

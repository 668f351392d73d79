package strictyaml

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "30s", want: 30 * time.Second},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "-1m", want: -time.Minute},
		{in: "90d", want: 90 * Day},
		{in: "1.5d", want: 36 * time.Hour},
		{in: "0d", want: 0},
		{in: " 7d ", want: 7 * Day},
		{in: "36500d", want: 36500 * Day},
		{in: "36501d", wantErr: `"36501d" is not a number of days`},
		{in: "-1d", wantErr: `"-1d" is not a number of days`},
		{in: "NaNd", wantErr: "not a number of days"},
		{in: "d", wantErr: "not a number of days"},
		{in: "90", wantErr: `"90" is not a duration like 30s, 2h or 90d`},
		{in: "forever", wantErr: "not a duration"},
		{in: "", wantErr: "not a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDurationString(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{90 * Day, "90d"}, {Day, "1d"}, {36 * time.Hour, "36h0m0s"}, {0, "0s"},
		{-Day, "-24h0m0s"}, {90 * time.Second, "1m30s"},
	} {
		assert.Equal(t, tt.want, Duration(tt.d).String())
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "536870912", want: 512 << 20},
		{in: "0", want: 0},
		{in: "-5", want: -5},
		{in: "512MiB", want: 512 << 20},
		{in: "512 MiB", want: 512 << 20},
		{in: "64KiB", want: 64 << 10},
		{in: "1.5GiB", want: 3 << 29},
		{in: "2TiB", want: 2 << 40},
		{in: "20MB", want: 20_000_000},
		{in: "64kB", want: 64_000},
		{in: "64KB", want: 64_000},
		{in: "1GB", want: 1_000_000_000},
		{in: "100B", want: 100},
		{in: "1.5B", wantErr: "not a whole number of bytes"},
		{in: "0.3KiB", wantErr: "not a whole number of bytes"},
		{in: "9000000TiB", wantErr: "too large"},
		{in: "NaNMiB", wantErr: "not a size"},
		{in: "InfGiB", wantErr: "not a size"},
		{in: "512M", wantErr: `"512M" is not a size like 536870912 or 512MiB`},
		{in: "MiB", wantErr: "not a size"},
		{in: "lots", wantErr: "not a size"},
		{in: "", wantErr: "not a size"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseByteSize(tt.in)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

type scalars struct {
	D Duration `yaml:"d"`
	B ByteSize `yaml:"b"`
}

func TestScalarsInYAML(t *testing.T) {
	var v scalars
	require.NoError(t, Decode([]byte("d: 90d\nb: 512MiB\n"), &v))
	assert.Equal(t, scalars{D: Duration(90 * Day), B: 512 << 20}, v)

	out, err := yaml.Marshal(v)
	require.NoError(t, err)
	assert.Equal(t, "d: 90d\nb: 536870912\n", string(out), "sizes are written as the plain integer")
	var again scalars
	require.NoError(t, Decode(out, &again))
	assert.Equal(t, v, again)

	for doc, want := range map[string]string{
		"d: [1s]\n":    "line 1: want a duration",
		"b: {a: 1}\n":  "line 1: want a size",
		"\nd: 10\n":    `line 2: "10" is not a duration`,
		"\n\nb: 10X\n": `line 3: "10X" is not a size`,
	} {
		assert.ErrorContains(t, Decode([]byte(doc), &v), want, doc)
	}
}

// FuzzParseByteSize checks that a size either fails with a message or is what the text
// says: the plain integer form of a parsed size parses to the same number.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"536870912", "512MiB", "1.5 GiB", "20MB", "-1", "1e3KiB", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseByteSize(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		out, err := yaml.Marshal(ByteSize(v))
		require.NoError(t, err)
		var back ByteSize
		require.NoError(t, yaml.Unmarshal(out, &back))
		require.Equal(t, ByteSize(v), back)
	})
}

// FuzzParseDuration checks that whatever parses prints in a form that parses back to the
// same duration.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30s", "90d", "1.5d", "-1m", "1h2m3.5s", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		back, err := ParseDuration(Duration(d).String())
		require.NoError(t, err, "%q printed as %q", s, Duration(d).String())
		require.Equal(t, d, back)
	})
}

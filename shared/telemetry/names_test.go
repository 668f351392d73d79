package telemetry

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValidStationID(t *testing.T) {
	for id, want := range map[string]bool{
		"MH-PUNE-001": true, "a_b": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, "MH PUNE": false, "MH/PUNE": false,
		"MH+PUNE": false, "#": false, "पुणे": false,
	} {
		assert.Equal(t, want, ValidStationID(id), "station id %q", id)
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"ph-1", nil},
		{"DO probe (bank)", nil},
		{"पुणे-do", nil},
		{"", ErrNameEmpty},
		{strings.Repeat("s", 129), ErrNameLong},
		{"ph\x00", ErrNameControl},
		{"\x1b[31mred", ErrNameControl},
		{"tab\there", ErrNameControl},
		{"line\nbreak", ErrNameControl},
		{"del\x7f", ErrNameControl},
		{"c1\u0085", ErrNameControl},
		{"bidi\u202e", ErrNameControl},
		{"\xff\xfe", ErrNameUTF8},
	}
	for _, tt := range tests {
		err := CheckName(tt.in, MaxSensorLen)
		if tt.want == nil {
			assert.NoError(t, err, "%q", tt.in)
			continue
		}
		assert.ErrorIs(t, err, tt.want, "%q", tt.in)
	}
}

func TestCheckText(t *testing.T) {
	assert.NoError(t, CheckText("DO below 4 mg/L\n\tfor 10 min", 100))
	assert.NoError(t, CheckText("", 100))
	assert.ErrorIs(t, CheckText("\x1b]0;pwned\x07", 100), ErrNameControl)
	assert.ErrorIs(t, CheckText(strings.Repeat("x", 101), 100), ErrNameLong)
}

func FuzzCheckName(f *testing.F) {
	f.Add("ph-1")
	f.Add("\x1b[2J")
	f.Fuzz(func(t *testing.T, s string) {
		if CheckName(s, MaxSensorLen) != nil {
			return
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("accepted %q with control rune %U", s, r)
			}
		}
	})
}

package telemetry

import (
	"math/rand/v2"
	"regexp"
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

// ValidStationID is the rule its documentation states as a pattern, for any string: the
// characters around each range's ends included.
func TestValidStationIDIsItsPattern(t *testing.T) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	alphabet := []byte("azAZ09_-@[`{/:,.+ #\x00\x7f\xff")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, rng.IntN(70))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if rng.IntN(2) == 0 { // mostly valid characters, so that lengths near 64 occur valid
			for i := range b {
				b[i] = alphabet[rng.IntN(8)]
			}
		}
		id := string(b)
		if got, want := ValidStationID(id), pattern.MatchString(id); got != want {
			t.Fatalf("ValidStationID(%q) = %v, the pattern says %v", id, got, want)
		}
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

package serialprobe

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		in   string
		want Line
		err  error
	}{
		{"7.82", Line{Kind: KindValue, Values: []float64{7.82}}, nil},
		{"7.820", Line{Kind: KindValue, Values: []float64{7.82}}, nil},
		{"-1023.000", Line{Kind: KindValue, Values: []float64{-1023}}, nil},
		{"8.12,95.3", Line{Kind: KindValue, Values: []float64{8.12, 95.3}}, nil},
		{"1413,765,0.76,1.000", Line{Kind: KindValue, Values: []float64{1413, 765, 0.76, 1}}, nil},
		{"0", Line{Kind: KindValue, Values: []float64{0}}, nil},
		{".5", Line{Kind: KindValue, Values: []float64{0.5}}, nil},
		{"*OK", Line{Kind: KindCode, Code: CodeOK}, nil},
		{"*ER", Line{Kind: KindCode, Code: CodeER}, nil},
		{"*OV", Line{Kind: KindCode, Code: CodeOV}, nil},
		{"*UV", Line{Kind: KindCode, Code: CodeUV}, nil},
		{"*RS", Line{Kind: KindCode, Code: CodeRS}, nil},
		{"*RE", Line{Kind: KindCode, Code: CodeRE}, nil},
		{"*SL", Line{Kind: KindCode, Code: CodeSL}, nil},
		{"*WA", Line{Kind: KindCode, Code: CodeWA}, nil},
		{"*DONE", Line{Kind: KindCode, Code: CodeDONE}, nil},
		{"*ok", Line{Kind: KindCode, Code: CodeOK}, nil},
		{"?i,pH,2.16", Line{Kind: KindReply, Query: "I", Fields: []string{"pH", "2.16"}}, nil},
		{"?I,D.O.,1.98", Line{Kind: KindReply, Query: "I", Fields: []string{"D.O.", "1.98"}}, nil},
		{"?Cal,2", Line{Kind: KindReply, Query: "CAL", Fields: []string{"2"}}, nil},
		{"?*OK,0", Line{Kind: KindReply, Query: "*OK", Fields: []string{"0"}}, nil},
		{"?O,mg,%", Line{Kind: KindReply, Query: "O", Fields: []string{"mg", "%"}}, nil},
		{"?Status,P,5.038", Line{Kind: KindReply, Query: "STATUS", Fields: []string{"P", "5.038"}}, nil},
		{"?Name,", Line{Kind: KindReply, Query: "NAME", Fields: []string{""}}, nil},
		{"?L", Line{Kind: KindReply, Query: "L"}, nil},

		{"", Line{}, ErrUnknown},
		{"*XX", Line{}, ErrUnknown},
		{"*", Line{}, ErrUnknown},
		{"?", Line{}, ErrUnknown},
		{"?,1", Line{}, ErrUnknown},
		{"7.8.2", Line{}, ErrUnknown},
		{"7.82,", Line{}, ErrUnknown},
		{"-", Line{}, ErrUnknown},
		{"NaN", Line{}, ErrUnknown},
		{"Inf", Line{}, ErrUnknown},
		{"1e9", Line{}, ErrUnknown},
		{"0x10", Line{}, ErrUnknown},
		{"1_000", Line{}, ErrUnknown},
		{"+7", Line{}, ErrUnknown},
		{" 7.82", Line{}, ErrUnknown},
		{"No output", Line{}, ErrUnknown},
		{"7\xb874", Line{}, ErrGarbage},
		{"\x00\xff\xfe7.77", Line{}, ErrGarbage},
		{"\xc3(\xa0\xa17.74", Line{}, ErrGarbage},
		{"7.8\t", Line{}, ErrGarbage},
		{"é", Line{}, ErrGarbage},
		{strings.Repeat("1", MaxLine), Line{Kind: KindValue, Values: []float64{1.111111111111111e63}}, nil},
		{strings.Repeat("1", MaxLine+1), Line{}, ErrGarbage},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLine([]byte(tt.in))
			if tt.err != nil {
				assert.True(t, errors.Is(err, tt.err), "want %v, got %v", tt.err, err)
				return
			}
			require.NoError(t, err)
			if tt.want.Kind == KindValue && len(tt.want.Values) == 1 && tt.want.Values[0] > 1e60 {
				assert.InDelta(t, tt.want.Values[0], got.Values[0], 1e50)
				return
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// frames collects what a framer emits, overlong lines as "<overlong>".
func frames(f *framer, in ...[]byte) []string {
	var out []string
	for _, b := range in {
		f.feed(b, func(line []byte, overlong bool) bool {
			if overlong {
				out = append(out, "<overlong>")
			} else {
				out = append(out, string(line))
			}
			return true
		})
	}
	return out
}

func TestFramer(t *testing.T) {
	long := strings.Repeat("9", MaxLine)
	tests := []struct {
		name string
		in   []string // pieces as they arrive
		want []string
	}{
		{"one reply", []string{"7.82\r*OK\r"}, []string{"7.82", "*OK"}},
		{"split anywhere", []string{"7.", "82", "\r*", "OK\r"}, []string{"7.82", "*OK"}},
		{"CR LF and empty lines", []string{"7.82\r\n\r\r*OK\n\r"}, []string{"7.82", "*OK"}},
		{"no CR yet", []string{"7.82"}, nil},
		{"exactly the maximum", []string{long + "\r"}, []string{long}},
		{"one over", []string{long + "9\r*OK\r"}, []string{"<overlong>", "*OK"}},
		{"overlong across pieces", []string{long, "99999", "\r7.1\r"}, []string{"<overlong>", "7.1"}},
		{"garbage is framed, not judged", []string{"\x00\xff\r"}, []string{"\x00\xff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f framer
			pieces := make([][]byte, len(tt.in))
			for i, s := range tt.in {
				pieces[i] = []byte(s)
			}
			assert.Equal(t, tt.want, frames(&f, pieces...))
		})
	}
	t.Run("stops when told", func(t *testing.T) {
		var f framer
		n := 0
		ok := f.feed([]byte("1\r2\r3\r"), func([]byte, bool) bool { n++; return n < 2 })
		assert.False(t, ok)
		assert.Equal(t, 2, n)
	})
}

// A megabyte without a carriage return costs no memory: the line buffer is fixed, and the
// line is reported once, as overlong, when the carriage return finally comes.
func TestFramerMegabyteWithoutCR(t *testing.T) {
	flood := bytes.Repeat([]byte("0123456789"), 1<<20/10)
	var f framer
	emitted := 0
	emit := func([]byte, bool) bool { emitted++; return true }
	allocs := testing.AllocsPerRun(5, func() {
		for off := 0; off < len(flood); off += 256 { // as the port delivers it
			f.feed(flood[off:min(off+256, len(flood))], emit)
		}
	})
	assert.Zero(t, allocs, "feeding a megabyte allocates nothing")
	assert.Zero(t, emitted, "nothing is emitted before the carriage return")
	assert.LessOrEqual(t, f.n, MaxLine, "the buffer never holds more than MaxLine")
	assert.Equal(t, []string{"<overlong>", "7.82"}, frames(&f, []byte("\r7.82\r")))
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"7.82", "8.12,95.3", "*OK", "*ER", "?i,pH,2.16", "?Cal,1", "?*OK,0",
		"", "7\xb874", "\x00\xff", "-1023.000", "1e9", strings.Repeat("9", 80)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLine(b)
		if err != nil {
			if !errors.Is(err, ErrGarbage) && !errors.Is(err, ErrUnknown) {
				t.Fatalf("ParseLine(%q): unexpected error kind %v", b, err)
			}
			return
		}
		if len(b) > MaxLine {
			t.Fatalf("ParseLine(%q) accepted %d bytes, more than MaxLine", b, len(b))
		}
		switch l.Kind {
		case KindValue:
			if len(l.Values) == 0 || len(l.Values) > MaxLine/2+1 {
				t.Fatalf("ParseLine(%q): %d values", b, len(l.Values))
			}
			for _, v := range l.Values {
				if v != v { // NaN
					t.Fatalf("ParseLine(%q): NaN", b)
				}
			}
		case KindReply:
			if l.Query == "" {
				t.Fatalf("ParseLine(%q): reply without a name", b)
			}
		case KindCode:
			if _, ok := codes[string(l.Code)]; !ok {
				t.Fatalf("ParseLine(%q): unknown code %q", b, l.Code)
			}
		default:
			t.Fatalf("ParseLine(%q): kind %v", b, l.Kind)
		}
		// Whatever the bytes, framing them never holds more than MaxLine.
		var fr framer
		fr.feed(b, func(line []byte, _ bool) bool {
			if len(line) > MaxLine {
				t.Fatalf("framer emitted %d bytes", len(line))
			}
			return true
		})
	})
}

func TestCalCommand(t *testing.T) {
	tests := []struct {
		param string
		point string
		value float64
		want  string
		err   bool
	}{
		{"ph", "mid", 7, "Cal,mid,7.00", false},
		{"ph", "LOW", 4.01, "Cal,low,4.01", false},
		{"ph", "high", 10, "Cal,high,10.00", false},
		{"ph", "clear", 0, "Cal,clear", false},
		{"ph", "mid", 15, "", true},
		{"ph", "air", 0, "", true},
		{"do", "air", 0, "Cal", false},
		{"do", "zero", 0, "Cal,0", false},
		{"do", "mid", 7, "", true},
		{"conductivity", "dry", 0, "Cal,dry", false},
		{"conductivity", "single", 12880, "Cal,12880", false},
		{"tds", "low", 1413, "Cal,low,1413", false},
		{"conductivity", "high", -1, "", true},
		{"temp", "single", 100, "Cal,100.00", false},
		{"temp", "mid", 7, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.param+"/"+tt.point, func(t *testing.T) {
			got, err := calCommand(circuitFor[telemetry.Param(tt.param)], tt.point, tt.value)
			if tt.err {
				assert.ErrorIs(t, err, ErrBadPoint)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDescribeCircuit(t *testing.T) {
	assert.Equal(t, "circuit type DO (measures do)", describeCircuit("DO"))
	assert.Equal(t, "circuit type D.O. (measures do)", describeCircuit("D.O."))
	assert.Equal(t, "circuit type ec (measures conductivity)", describeCircuit("ec"), "as reported")
	assert.Contains(t, describeCircuit("ORP"), "ORP is not a parameter the station records")
	assert.Contains(t, describeCircuit("CO2"), `"CO2", which this driver does not support`)
	assert.True(t, sameCircuit("ph", circuitFor[telemetry.PH]))
}

package seriescsv

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/hourly"
)

func TestRead(t *testing.T) {
	t1 := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		in      string
		points  []hourly.Point
		missing int
	}{
		{name: "RFC 3339 with offsets and fractions",
			in:     "time,value\n2026-01-10T05:30:00+05:30,7.2\n2026-01-10T00:05:00.5Z,7.25\n",
			points: []hourly.Point{{Time: t1, Value: 7.2}, {Time: t1.Add(5*time.Minute + 500*time.Millisecond), Value: 7.25}}},
		{name: "spreadsheet times are UTC",
			in:     "time,value\n2026-01-10 00:00:00,4\n",
			points: []hourly.Point{{Time: t1, Value: 4}}},
		{name: "other columns, other order, header case, BOM, spaces, CRLF",
			in:     "\ufeffStation, Value ,TIME\r\nMH-1, 3.5 , 2026-01-10T00:00:00Z\r\n",
			points: []hourly.Point{{Time: t1, Value: 3.5}}},
		{name: "missing values are counted and skipped; blank lines ignored",
			in:      "timestamp,value\n2026-01-10T00:00:00Z,NA\n\n2026-01-10T00:00:00Z,\n2026-01-10T00:00:00Z,nan\n2026-01-10T00:00:00Z,-\n2026-01-10T00:00:00Z,1e3\n",
			points:  []hourly.Point{{Time: t1, Value: 1000}},
			missing: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Read(strings.NewReader(tt.in), Limits{})
			require.NoError(t, err)
			assert.Equal(t, tt.points, s.Points)
			assert.Equal(t, tt.missing, s.Missing)
			assert.Equal(t, len(tt.points)+tt.missing, s.Rows)
		})
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		lim  Limits
		is   error
		msg  string
	}{
		{"empty", "", Limits{}, ErrNoHeader, "no header row: the file is empty"},
		{"no value column", "time,reading\n", Limits{}, ErrColumns,
			`header lacks a column: want a header with the columns time,value (got "time,reading")`},
		{"no data", "time,value\n2026-01-10T00:00:00Z,NA\n", Limits{}, ErrEmpty, "no readings: 1 rows, 1 with a missing value"},
		{"bad number", "time,value\n2026-01-10T00:00:00Z,7\n2026-01-10T01:00:00Z,seven\n", Limits{}, nil,
			`row 3, column "value": "seven" is not a number`},
		{"infinity", "time,value\n2026-01-10T00:00:00Z,Inf\n", Limits{}, nil, `row 2, column "value": "Inf" is not a number`},
		{"bad time", "time,value\n10/01/2026,7\n", Limits{}, nil,
			`row 2, column "time": "10/01/2026" is not a time (want RFC 3339, e.g. 2026-01-10T05:30:00+05:30, or 2026-01-10 00:00:00 in UTC)`},
		{"short row", "value,other,time\n7\n", Limits{}, nil, "row 2: has 1 columns, the header 3"},
		{"broken quotes", "time,value\n\"2026,7\n", Limits{}, ErrSyntax, `not CSV: line 2: extraneous or missing " in quoted-field`},
		{"too many rows", "time,value\n2026-01-10T00:00:00Z,1\n2026-01-10T00:00:00Z,2\n", Limits{MaxRows: 1}, ErrTooLarge,
			"too large: more than 1 rows"},
		{"too many bytes", "time,value\n2026-01-10T00:00:00Z,1\n", Limits{MaxBytes: 20}, ErrTooLarge,
			"too large: more than 20 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tt.in), tt.lim)
			require.Error(t, err)
			assert.EqualError(t, err, tt.msg)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			} else {
				var re *RowError
				assert.True(t, errors.As(err, &re), "a RowError")
			}
		})
	}
}

func TestReadSizeLimitIsExact(t *testing.T) {
	in := "time,value\n2026-01-10T00:00:00Z,1\n"
	_, err := Read(strings.NewReader(in), Limits{MaxBytes: int64(len(in))})
	assert.NoError(t, err, "exactly the limit is fine")
	_, err = Read(strings.NewReader(in), Limits{MaxBytes: int64(len(in) - 1)})
	assert.ErrorIs(t, err, ErrTooLarge)
}

// FuzzRead: whatever the input, Read returns points or an error it names, never both, and
// never more points than rows.
func FuzzRead(f *testing.F) {
	f.Add("time,value\n2026-01-10T00:00:00Z,7.2\n2026-01-10 01:00:00,NA\n")
	f.Add("\ufeffvalue,time\n\"1\",\"2026-01-10T00:00:00+05:30\"\n")
	f.Add("time,value\n\"unterminated\n")
	f.Add("time\n")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Read(strings.NewReader(in), Limits{MaxBytes: 1 << 16, MaxRows: 1000})
		if err != nil {
			if len(s.Points) > 0 && !errors.Is(err, ErrEmpty) {
				t.Fatalf("points with an error: %v", err)
			}
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if len(s.Points) == 0 || len(s.Points)+s.Missing != s.Rows || s.Rows > 1000 {
			t.Fatalf("inconsistent: %d points, %d missing, %d rows", len(s.Points), s.Missing, s.Rows)
		}
		for _, p := range s.Points {
			if p.Time.Location() != time.UTC {
				t.Fatalf("time %v not in UTC", p.Time)
			}
		}
	})
}

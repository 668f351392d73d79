// Package seriescsv reads one time series from CSV: a header row naming a time column and
// a value column (other columns are ignored), then one reading per row. It is how
// `ph-cloud analyze` takes data that someone holds, from any logger or spreadsheet.
//
// Times are RFC 3339 (2026-01-10T05:30:00+05:30, fractions allowed) or
// "2006-01-02 15:04:05"; a time without an offset is UTC. Values are decimal numbers; an
// empty cell, NA, NaN, null or "-" is a missing value, counted and skipped, since
// exported data is full of them; anything else that is not a finite number is an error
// naming its row and column. Rows may come in any order and repeat a time.
//
// Read enforces its limits before the work they limit: bytes as they are read, rows before
// they are kept. It is pure apart from reading r, and safe for concurrent use.
package seriescsv

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/hourly"
)

// Defaults of Limits.
const (
	DefaultMaxBytes = 64 << 20  // 64 MiB: years of one sensor at a minute's step
	DefaultMaxRows  = 2_000_000 // about four years at one a minute
)

// Limits bound what Read accepts. Zero fields take the defaults.
type Limits struct {
	MaxBytes int64
	MaxRows  int
}

// Errors, matched with errors.Is; the messages say more.
var (
	ErrNoHeader = errors.New("no header row")
	ErrColumns  = errors.New("header lacks a column")
	ErrTooLarge = errors.New("too large")
	ErrEmpty    = errors.New("no readings")
	ErrSyntax   = errors.New("not CSV")
)

// RowError is a row Read cannot use.
type RowError struct {
	Row    int    // 1 is the header; the first reading is row 2
	Column string // the column's name in the header, or "" for the row as a whole
	Value  string
	Reason string
}

func (e *RowError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("row %d: %s", e.Row, e.Reason)
	}
	return fmt.Sprintf("row %d, column %q: %q %s", e.Row, e.Column, e.Value, e.Reason)
}

// Series is what Read found.
type Series struct {
	Points  []hourly.Point // in file order
	Rows    int            // data rows read
	Missing int            // rows whose value was missing (NA, empty, ...)
}

// timeLayouts are the accepted time forms: RFC 3339 (time.Parse also takes a fraction of
// a second there) and the spreadsheet form.
var timeLayouts = []string{time.RFC3339, "2006-01-02 15:04:05"}

// missing are the spellings of a missing value, compared case-insensitively.
var missing = []string{"", "na", "nan", "n/a", "null", "-"}

// headerNames are the accepted names of the two columns.
var (
	timeNames  = []string{"time", "timestamp", "datetime"}
	valueNames = []string{"value"}
)

// countingReader fails once more than max bytes have been read.
type countingReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n > c.max {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, c.max)
	}
	if rest := c.max + 1 - c.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, c.max)
	}
	return n, err
}

// Read parses the CSV in r.
func Read(r io.Reader, lim Limits) (Series, error) {
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultMaxBytes
	}
	if lim.MaxRows <= 0 {
		lim.MaxRows = DefaultMaxRows
	}
	cr := csv.NewReader(&countingReader{r: r, max: lim.MaxBytes})
	cr.FieldsPerRecord = -1 // rows are checked here, with clearer messages
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	switch {
	case errors.Is(err, io.EOF):
		return Series{}, fmt.Errorf("%w: the file is empty", ErrNoHeader)
	case err != nil:
		return Series{}, wrapCSV(err)
	}
	ti, vi := -1, -1
	names := make([]string, len(header))
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		names[i] = h
		switch {
		case ti < 0 && slices.Contains(timeNames, h):
			ti = i
		case vi < 0 && slices.Contains(valueNames, h):
			vi = i
		}
	}
	if ti < 0 || vi < 0 {
		return Series{}, fmt.Errorf("%w: want a header with the columns time,value (got %q)", ErrColumns, strings.Join(header, ","))
	}
	var s Series
	for row := 2; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Series{}, wrapCSV(err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if s.Rows == lim.MaxRows {
			return Series{}, fmt.Errorf("%w: more than %d rows", ErrTooLarge, lim.MaxRows)
		}
		s.Rows++
		if len(rec) <= max(ti, vi) {
			return Series{}, &RowError{Row: row, Reason: fmt.Sprintf("has %d columns, the header %d", len(rec), len(header))}
		}
		rawV := strings.TrimSpace(rec[vi])
		if slices.Contains(missing, strings.ToLower(rawV)) {
			s.Missing++
			continue
		}
		v, err := strconv.ParseFloat(rawV, 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return Series{}, &RowError{Row: row, Column: names[vi], Value: rawV, Reason: "is not a number"}
		}
		rawT := strings.TrimSpace(rec[ti])
		t, ok := parseTime(rawT)
		if !ok {
			return Series{}, &RowError{Row: row, Column: names[ti], Value: rawT,
				Reason: "is not a time (want RFC 3339, e.g. 2026-01-10T05:30:00+05:30, or 2026-01-10 00:00:00 in UTC)"}
		}
		s.Points = append(s.Points, hourly.Point{Time: t, Value: v})
	}
	if len(s.Points) == 0 {
		return s, fmt.Errorf("%w: %d rows, %d with a missing value", ErrEmpty, s.Rows, s.Missing)
	}
	return s, nil
}

func parseTime(s string) (time.Time, bool) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// wrapCSV keeps a size error as it is and names the line of a CSV syntax error.
func wrapCSV(err error) error {
	if errors.Is(err, ErrTooLarge) {
		return err
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%w: line %d: %w", ErrSyntax, pe.Line, pe.Err)
	}
	return err
}

// Package readingcsv writes readings as CSV: the export format of the readings API
// (GET /v1/stations/{id}/readings?format=csv) and of `ph-cloud export`.
//
// The first eight columns are the contract (time,station_id,param,value,unit,quality,
// source,sensor); the provenance columns after them may grow. Times are RFC 3339 in UTC,
// numbers in the shortest form that reads back exactly, absent values empty.
package readingcsv

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/store"
)

// Header is the header row.
var Header = []string{"time", "station_id", "param", "value", "unit", "quality", "source", "sensor",
	"flags", "origin", "record_id", "station_code", "collection", "scene_date", "scenes", "pixels",
	"sample_id", "lab", "method", "revision", "current"}

// Writer writes readings of one station. It is not safe for concurrent use.
type Writer struct {
	w       *csv.Writer
	station string
	row     []string
}

// NewWriter writes the header row to w and returns a Writer for the readings of station.
func NewWriter(w io.Writer, station string) (*Writer, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(Header); err != nil {
		return nil, fmt.Errorf("write csv header: %w", err)
	}
	return &Writer{w: cw, station: station, row: make([]string, len(Header))}, nil
}

// Write writes one reading.
func (w *Writer) Write(r store.Reading) error {
	row := w.row
	row[0] = r.Time.UTC().Format(time.RFC3339Nano)
	row[1] = w.station
	row[2] = r.Param
	row[3] = strconv.FormatFloat(r.Value, 'g', -1, 64)
	row[4], row[5], row[6], row[7] = r.Unit, r.Quality, r.Source, r.Sensor
	row[8] = strings.Join(r.Flags, ";")
	row[9], row[10], row[11], row[12] = r.Origin, r.RecordID, r.StationCode, r.Collection
	row[13] = timeOrEmpty(r.SceneDate)
	row[14], row[15] = intOrEmpty(r.Scenes), intOrEmpty(r.Pixels)
	row[16], row[17], row[18] = r.SampleID, r.Lab, r.Method
	row[19] = intOrEmpty(r.Revision)
	row[20] = ""
	if r.Current != nil {
		row[20] = strconv.FormatBool(*r.Current)
	}
	if err := w.w.Write(row); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// Flush writes what is buffered to the underlying writer.
func (w *Writer) Flush() error {
	w.w.Flush()
	if err := w.w.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

func timeOrEmpty(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func intOrEmpty(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

package queryapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// cursor is the position after the last row of a truncated page. Clients see it as an
// opaque token (base64url of this JSON); Kind ties it to the listing that issued it.
type cursor struct {
	Kind    string    `json:"k"`
	Time    time.Time `json:"t,omitzero"`
	Seq     uint64    `json:"s,omitempty"`
	Param   string    `json:"p,omitempty"`
	Station string    `json:"st,omitempty"`
	ID      uint64    `json:"id,omitempty"`
}

// The listings.
const (
	kindReadings = "raw"
	kindHourly   = "1h"
	kindDaily    = "1d"
	kindWQI      = "wqi"
	kindAlerts   = "alerts"
	kindStations = "stations"
)

// maxCursor bounds what decodeCursor reads.
const maxCursor = 512

func (c cursor) encode() string {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // a struct of strings, numbers and times always marshals
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

var errCursor = errors.New("not a cursor from this listing: pass the next value of the previous page unchanged")

// decodeCursor parses a token of the given kind.
func decodeCursor(token, kind string) (*cursor, error) {
	if len(token) > maxCursor {
		return nil, errCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return nil, errCursor
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || c.Kind != kind {
		return nil, errCursor
	}
	// Every field goes to the database as an argument: a value it cannot hold (a NUL in a
	// text, a number beyond bigint, a year beyond its calendar) would be a 500, not a 400.
	if c.Param != "" && !telemetry.Param(c.Param).Valid() ||
		c.Station != "" && !telemetry.ValidStationID(c.Station) ||
		c.Seq > math.MaxInt64 || c.ID > math.MaxInt64 ||
		!c.Time.IsZero() && (c.Time.Year() < 1 || c.Time.Year() > 9999) {
		return nil, errCursor
	}
	switch kind {
	case kindReadings:
		// A station's reading has its seq; one from elsewhere its row id.
		if c.Time.IsZero() || (c.Seq == 0) == (c.ID == 0) {
			return nil, errCursor
		}
	case kindWQI:
		if c.Time.IsZero() || c.Seq == 0 {
			return nil, errCursor
		}
	case kindHourly, kindDaily:
		if c.Time.IsZero() || c.Param == "" {
			return nil, errCursor
		}
	case kindAlerts:
		if c.Time.IsZero() || c.Station == "" || c.ID == 0 {
			return nil, errCursor
		}
	case kindStations:
		if c.Station == "" {
			return nil, errCursor
		}
	default:
		return nil, fmt.Errorf("unknown cursor kind %q", kind)
	}
	return &c, nil
}

package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/purehealth/purehealth/internal/jsonappend"
	"github.com/purehealth/purehealth/shared/wire"
)

// appendReadingJSON appends the data of r's live event: the bytes encoding/json makes of
// the query API's Reading of the stored row (at is r's time as stored: UTC, to the
// microsecond). It is the hot path of a batch's events, so it writes the fields itself
// rather than through reflection; the tests hold it to json.Marshal byte for byte. A time
// outside years 0–9999, which json.Marshal refuses, is written in the same layout.
func appendReadingJSON(b []byte, r *wire.Reading, at time.Time) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"time":`...)
	b = jsonappend.Time(b, at)
	b = append(b, `,"param":`...)
	b = jsonappend.String(b, r.Param)
	b = append(b, `,"value":`...)
	b = jsonappend.Float(b, r.Value)
	b = append(b, `,"unit":`...)
	b = jsonappend.String(b, r.Unit)
	b = append(b, `,"quality":`...)
	b = jsonappend.String(b, r.Quality)
	b = append(b, `,"source":`...)
	b = jsonappend.String(b, r.Source)
	b = append(b, `,"sensor":`...)
	b = jsonappend.String(b, r.Sensor)
	if len(r.Flags) > 0 {
		b = append(b, `,"flags":[`...)
		for i, f := range r.Flags {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonappend.String(b, f)
		}
		b = append(b, ']')
	}
	for _, f := range [...]struct{ key, v string }{{`,"sample_id":`, r.SampleID}, {`,"lab":`, r.Lab}, {`,"method":`, r.Method}} {
		if f.v != "" {
			b = append(b, f.key...)
			b = jsonappend.String(b, f.v)
		}
	}
	return append(b, '}')
}

// splitReadings splits the data of a readings event (a JSON array of reading objects, as
// the ingest writes it) into its elements, each with its reading's time. It reads the
// layout appendReadingJSON writes without decoding it, and falls back to encoding/json
// for anything else.
func splitReadings(data []byte) ([]json.RawMessage, []time.Time, error) {
	elems, ok := splitArray(data)
	if !ok {
		if err := json.Unmarshal(data, &elems); err != nil {
			return nil, nil, fmt.Errorf("readings event: %w", err)
		}
	}
	times := make([]time.Time, len(elems))
	for i, e := range elems {
		t, ok := readingTime(e)
		if !ok {
			var r struct {
				Time time.Time `json:"time"`
			}
			if err := json.Unmarshal(e, &r); err != nil {
				return nil, nil, fmt.Errorf("readings event, element %d: %w", i, err)
			}
			t = r.Time.UTC()
		}
		times[i] = t
	}
	return elems, times, nil
}

// splitArray splits a JSON array of objects at its top-level commas, or reports false
// when data is not laid out as appendReadingJSON's output is (no whitespace).
func splitArray(data []byte) ([]json.RawMessage, bool) {
	if len(data) < 2 || data[0] != '[' || data[len(data)-1] != ']' {
		return nil, false
	}
	var out []json.RawMessage
	depth, start, inString := 0, 1, false
	for i := 1; i < len(data)-1; i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth < 0 {
				return nil, false
			}
		case ',':
			if depth == 0 {
				out = append(out, data[start:i])
				start = i + 1
			}
		case ' ', '\t', '\n', '\r':
			return nil, false
		}
	}
	if depth != 0 || inString || start >= len(data)-1 {
		return nil, start == 1 && len(data) == 2 // [] is an empty array
	}
	return append(out, data[start:len(data)-1]), true
}

// readingTime reads the time of a reading's data as appendReadingJSON writes it:
// {"seq":N,"time":"...", ...}.
func readingTime(e []byte) (time.Time, bool) {
	rest, ok := bytes.CutPrefix(e, []byte(`{"seq":`))
	if !ok {
		return time.Time{}, false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	rest, ok = bytes.CutPrefix(rest[i:], []byte(`,"time":"`))
	if !ok {
		return time.Time{}, false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:end]))
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

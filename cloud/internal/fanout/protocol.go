package fanout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Client message types.
const (
	typeSubscribe   = "subscribe"
	typeUnsubscribe = "unsubscribe"
)

// allStations is the wildcard subscription.
const allStations = "*"

// Since is a resume point: an event id, or a time.
type Since struct {
	ID   int64
	Time time.Time // set when the client gave a time
}

// request is a parsed and checked client message.
type request struct {
	subscribe bool     // false: unsubscribe
	stations  []string // named stations, without duplicates
	all       bool     // "*" was among them
	since     *Since   // subscribe only
	err       error    // the message was refused: tell the client
}

// errRequest marks a client message that is refused (the connection stays).
var errRequest = errors.New("bad request")

// parseRequest reads one client message. maxStations bounds how many it may name.
func parseRequest(data []byte, maxStations int) (request, error) {
	var m struct {
		Type     string          `json:"type"`
		Stations []string        `json:"stations"`
		Since    json.RawMessage `json:"since"`
	}
	// Unknown fields are ignored, so that clients may add their own.
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return request{}, fmt.Errorf("%w: not a message: %s", errRequest, jsonProblem(err))
	}
	if dec.More() {
		return request{}, fmt.Errorf("%w: one JSON object per message", errRequest)
	}
	var r request
	switch m.Type {
	case typeSubscribe:
		r.subscribe = true
	case typeUnsubscribe:
	default:
		return request{}, fmt.Errorf("%w: type %q: want subscribe or unsubscribe", errRequest, m.Type)
	}
	if len(m.Stations) == 0 {
		return request{}, fmt.Errorf("%w: stations: name at least one station, or \"*\"", errRequest)
	}
	if len(m.Stations) > maxStations {
		return request{}, fmt.Errorf("%w: stations: %d named, at most %d", errRequest, len(m.Stations), maxStations)
	}
	seen := make(map[string]bool, len(m.Stations))
	for _, s := range m.Stations {
		switch {
		case s == allStations:
			r.all = true
		case !telemetry.ValidStationID(s):
			return request{}, fmt.Errorf("%w: stations: %q is not a station id", errRequest, truncate(s, 80))
		case !seen[s]:
			seen[s] = true
			r.stations = append(r.stations, s)
		}
	}
	if len(m.Since) > 0 && !bytes.Equal(m.Since, []byte("null")) {
		if !r.subscribe {
			return request{}, fmt.Errorf("%w: since: only a subscribe resumes", errRequest)
		}
		since, err := parseSinceJSON(m.Since)
		if err != nil {
			return request{}, err
		}
		r.since = &since
	}
	return r, nil
}

func parseSinceJSON(raw json.RawMessage) (Since, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return Since{}, fmt.Errorf("%w: since: want an event id or an RFC 3339 time", errRequest)
		}
		s = n.String()
	}
	return ParseSince(s)
}

// ParseSince reads a resume point: a decimal event id (0 or more) or an RFC 3339 time.
func ParseSince(s string) (Since, error) {
	if id, err := strconv.ParseInt(s, 10, 64); err == nil {
		if id < 0 {
			return Since{}, fmt.Errorf("%w: since: %d is not an event id", errRequest, id)
		}
		return Since{ID: id}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Since{}, fmt.Errorf("%w: since: %q is neither an event id nor an RFC 3339 time", errRequest, truncate(s, 80))
	}
	return Since{Time: t.UTC()}, nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %s: want %s", te.Field, te.Type)
	}
	return truncate(err.Error(), 120)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// message is what the server sends.
type message struct {
	Type    string          `json:"type"`
	ID      int64           `json:"id"`
	Station string          `json:"station,omitempty"`
	Time    time.Time       `json:"time"`
	Data    json.RawMessage `json:"data"`
}

// frame is an event ready to send, or a batch's readings (the events first..id): encoded
// once, shared by every client. A batch's messages are made the first time a client
// needs them (messages), so a station nobody watches costs one frame per batch.
type frame struct {
	first, id int64
	station   string
	created   time.Time
	msg       []byte // one event's message; nil for a batch

	batch    store.Event // a batch's row (store.EventReadings)
	once     sync.Once
	msgs     [][]byte // the batch's messages, ids first..id, once made
	batchErr error
	logged   atomic.Bool // batchErr was logged
}

// count is how many events the frame holds.
func (f *frame) count() int64 { return f.id - f.first + 1 }

func newFrame(e store.Event) (*frame, error) {
	if e.Type == store.EventReadings {
		return &frame{first: e.First(), id: e.ID, station: e.Station, created: e.CreatedAt, batch: e}, nil
	}
	msg, err := encodeMessage(e)
	if err != nil {
		return nil, err
	}
	return &frame{first: e.ID, id: e.ID, station: e.Station, created: e.CreatedAt, msg: msg}, nil
}

func encodeMessage(e store.Event) ([]byte, error) {
	msg, ok := appendMessage(nil, e)
	if !ok {
		var err error
		msg, err = json.Marshal(message{Type: e.Type, ID: e.ID, Station: e.Station, Time: e.Time.UTC(), Data: e.Data})
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", e.ID, err)
		}
	}
	return msg, nil
}

// messages returns the frame's messages, ids first..id; safe for concurrent use. A batch
// that cannot be expanded or encoded (its data is not what the ingest writes) gives an
// error, and no client gets any of its events.
func (f *frame) messages() ([][]byte, error) {
	if f.msg != nil {
		return [][]byte{f.msg}, nil
	}
	f.once.Do(func() {
		evs, err := f.batch.Expand()
		if err != nil {
			f.batchErr = err
			return
		}
		msgs := make([][]byte, len(evs))
		for i, e := range evs {
			if msgs[i], err = encodeMessage(e); err != nil {
				f.batchErr = err
				return
			}
		}
		f.msgs = msgs
		f.batch.Data = nil // expanded: the messages hold what is needed
	})
	return f.msgs, f.batchErr
}

// after counts the frame's events with ids above after.
func (f *frame) after(after int64) int64 { return f.id - max(f.first-1, after) }

// appendMessage appends to b the bytes json.Marshal makes of e's message, for the events
// that are nearly all of them, and reports whether it could. Every event passes through
// here once per replica, and json.Marshal spent most of its time re-checking and
// compacting data that PostgreSQL has already checked (json column) and that our
// encoders wrote compact. Anything json.Marshal would change or refuse is left to it:
// whitespace (even inside strings: an alert message with spaces takes the slow path),
// characters it escapes (<, >, &, U+2028, U+2029), strings needing escapes,
// years it cannot write.
func appendMessage(b []byte, e store.Event) ([]byte, bool) {
	t := e.Time.UTC()
	if y := t.Year(); y < 0 || y > 9999 || !plain(e.Type) || !plain(e.Station) || len(e.Data) == 0 {
		return nil, false
	}
	for _, c := range e.Data {
		if rewritten[c] {
			return nil, false
		}
	}
	b = append(b, `{"type":"`...)
	b = append(b, e.Type...)
	b = append(b, `","id":`...)
	b = strconv.AppendInt(b, e.ID, 10)
	if e.Station != "" {
		b = append(b, `,"station":"`...)
		b = append(b, e.Station...)
		b = append(b, '"')
	}
	b = append(b, `,"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","data":`...)
	b = append(b, e.Data...)
	return append(b, '}'), true
}

// rewritten are the bytes of JSON text that json.Marshal's compaction of a
// json.RawMessage may change: whitespace, the HTML-sensitive characters it escapes, and
// the lead byte of U+2028 and U+2029.
var rewritten = func() (t [256]bool) {
	for _, c := range []byte(" \t\n\r<>&\xe2") {
		t[c] = true
	}
	return t
}()

// plain reports whether json.Marshal writes s between quotes unchanged.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// connStatus is the data of a message about the connection.
type connStatus struct {
	Subscribed []string `json:"subscribed,omitzero"` // empty after unsubscribing everything
	Replayed   *int     `json:"replayed,omitempty"`
	Resync     bool     `json:"resync,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Error      string   `json:"error,omitempty"`
}

func statusMessage(id int64, now time.Time, st connStatus) []byte {
	data, err := json.Marshal(st)
	if err != nil {
		panic(err) // strings, ints and bools always marshal
	}
	msg, err := json.Marshal(message{Type: store.EventStatus, ID: id, Time: now.UTC(), Data: data})
	if err != nil {
		panic(err)
	}
	return msg
}

package fanout

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/shared/telemetry"
)

func TestParseRequest(t *testing.T) {
	t0 := time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		in      string
		want    request
		wantErr string
	}{
		{"subscribe", `{"type":"subscribe","stations":["A","B","A"]}`,
			request{subscribe: true, stations: []string{"A", "B"}}, ""},
		{"every station", `{"type":"subscribe","stations":["*"]}`, request{subscribe: true, all: true}, ""},
		{"resume by id", `{"type":"subscribe","stations":["A"],"since":"42"}`,
			request{subscribe: true, stations: []string{"A"}, since: &Since{ID: 42}}, ""},
		{"resume by id as a number", `{"type":"subscribe","stations":["A"],"since":42}`,
			request{subscribe: true, stations: []string{"A"}, since: &Since{ID: 42}}, ""},
		{"resume by time", `{"type":"subscribe","stations":["A"],"since":"2025-11-13T17:30:00+05:30"}`,
			request{subscribe: true, stations: []string{"A"}, since: &Since{Time: t0}}, ""},
		{"null since", `{"type":"subscribe","stations":["A"],"since":null}`,
			request{subscribe: true, stations: []string{"A"}}, ""},
		{"unknown fields are ignored", `{"type":"unsubscribe","stations":["A"],"ref":7}`,
			request{stations: []string{"A"}}, ""},
		{"unknown type", `{"type":"publish","stations":["A"]}`, request{}, `type "publish"`},
		{"no stations", `{"type":"subscribe","stations":[]}`, request{}, "name at least one station"},
		{"bad station id", `{"type":"subscribe","stations":["a b"]}`, request{}, `"a b" is not a station id`},
		{"too many stations", `{"type":"subscribe","stations":["A","B","C","D"]}`, request{}, "at most 3"},
		{"since on unsubscribe", `{"type":"unsubscribe","stations":["A"],"since":"1"}`, request{}, "only a subscribe resumes"},
		{"negative since", `{"type":"subscribe","stations":["A"],"since":"-1"}`, request{}, "not an event id"},
		{"since of another kind", `{"type":"subscribe","stations":["A"],"since":{"id":1}}`, request{}, "want an event id or an RFC 3339 time"},
		{"garbage since", `{"type":"subscribe","stations":["A"],"since":"yesterday"}`, request{}, "neither an event id nor an RFC 3339 time"},
		{"not JSON", `subscribe A`, request{}, "not a message"},
		{"stations of the wrong type", `{"type":"subscribe","stations":"A"}`, request{}, "field stations"},
		{"two objects", `{"type":"subscribe","stations":["A"]} {}`, request{}, "one JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRequest([]byte(tt.in), 3)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, errRequest)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestFrameAndStatusMessages(t *testing.T) {
	at := time.Date(2025, 11, 13, 12, 0, 0, 500, time.UTC)
	f, err := newFrame(store.Event{ID: 9, Station: "A", Type: store.EventReading, Time: at,
		Data: json.RawMessage(`{"seq": 1, "value": 7.2}`)})
	require.NoError(t, err)
	assert.JSONEq(t, `{"type":"reading","id":9,"station":"A","time":"2025-11-13T12:00:00.0000005Z","data":{"seq":1,"value":7.2}}`, string(f.msg))
	assert.NotContains(t, string(f.msg), " ", "frames are compact")

	zero := 0
	msg := statusMessage(12, at, connStatus{Subscribed: []string{"*", "A"}, Replayed: &zero})
	assert.JSONEq(t, `{"type":"status","id":12,"time":"2025-11-13T12:00:00.0000005Z","data":{"subscribed":["*","A"],"replayed":0}}`, string(msg))
	msg = statusMessage(0, at, connStatus{Resync: true, Reason: "why"})
	assert.JSONEq(t, `{"type":"status","id":0,"time":"2025-11-13T12:00:00.0000005Z","data":{"resync":true,"reason":"why"}}`, string(msg))
}

// TestFrameBytesAreJSONMarshals checks newFrame's fast path against json.Marshal, byte
// for byte, on events it takes and events it leaves to json.Marshal.
func TestFrameBytesAreJSONMarshals(t *testing.T) {
	at := time.Date(2025, 11, 13, 12, 0, 0, 120000000, time.FixedZone("IST", 19800))
	tests := []struct {
		name string
		e    store.Event
		fast bool
	}{
		{"reading", store.Event{ID: 1234567, Station: "MH-PUNE-001", Type: store.EventReading, Time: at,
			Data: json.RawMessage(`{"seq":7,"time":"2025-11-13T06:30:00.12Z","param":"ph","value":7.21,"unit":"pH"}`)}, true},
		{"whole second", store.Event{ID: 1, Station: "A", Type: store.EventWQI, Time: at.Truncate(time.Second),
			Data: json.RawMessage(`{"wqi":71.5}`)}, true},
		{"no station", store.Event{ID: 2, Type: store.EventStatus, Time: at, Data: json.RawMessage(`{"resync":true}`)}, true},
		{"non-ASCII text", store.Event{ID: 3, Station: "A", Type: store.EventAlert, Time: at,
			Data: json.RawMessage(`{"message":"ऑक्सिजन-कमी"}`)}, true},
		{"whitespace", store.Event{ID: 4, Station: "A", Type: store.EventReading, Time: at,
			Data: json.RawMessage("{\"seq\": 1,\n\"value\":7}")}, false},
		{"HTML characters", store.Event{ID: 5, Station: "A", Type: store.EventAlert, Time: at,
			Data: json.RawMessage(`{"message":"DO <5 & falling"}`)}, false},
		{"line separator", store.Event{ID: 6, Station: "A", Type: store.EventAlert, Time: at,
			Data: json.RawMessage("{\"message\":\"a\u2028b\"}")}, false},
		{"station needing escapes", store.Event{ID: 7, Station: `A"B`, Type: store.EventReading, Time: at,
			Data: json.RawMessage(`{}`)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(message{Type: tt.e.Type, ID: tt.e.ID, Station: tt.e.Station, Time: tt.e.Time.UTC(), Data: tt.e.Data})
			require.NoError(t, err)
			_, fast := appendMessage(nil, tt.e)
			assert.Equal(t, tt.fast, fast, "the fast path takes it")
			f, err := newFrame(tt.e)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(f.msg))
		})
	}
	_, err := newFrame(store.Event{ID: 8, Type: store.EventReading, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		Data: json.RawMessage(`{}`)})
	assert.Error(t, err, "a year json.Marshal cannot write is still refused")
}

// FuzzFrame checks that whatever the fast path takes, it writes as json.Marshal does.
func FuzzFrame(f *testing.F) {
	f.Add(int64(9), "MH-PUNE-001", "reading", int64(1763035200120000000), []byte(`{"seq":1,"value":7.2}`))
	f.Add(int64(-1), "", "status", int64(0), []byte(`{"a":"<"}`))
	f.Fuzz(func(t *testing.T, id int64, station, typ string, nanos int64, data []byte) {
		if !json.Valid(data) {
			return // the events table's json column holds valid JSON only
		}
		e := store.Event{ID: id, Station: station, Type: typ, Time: time.Unix(0, nanos), Data: data}
		got, ok := appendMessage(nil, e)
		if !ok {
			return
		}
		want, err := json.Marshal(message{Type: typ, ID: id, Station: station, Time: e.Time.UTC(), Data: data})
		if err != nil {
			t.Fatalf("the fast path took %+v, which json.Marshal refuses: %v", e, err)
		}
		if string(got) != string(want) {
			t.Fatalf("fast path %s\njson.Marshal %s", got, want)
		}
	})
}

func TestOriginPatterns(t *testing.T) {
	for _, p := range []string{"*", "**", "https://*", "?", "a["} {
		assert.Error(t, CheckOriginPattern(p), p)
	}
	for _, p := range []string{"dash.example.org", "*.example.org", "https://dash.example.org", "localhost:*"} {
		assert.NoError(t, CheckOriginPattern(p), p)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","stations":["A","*"],"since":"42"}`,
		`{"type":"unsubscribe","stations":["A"]}`,
		`{"type":"subscribe","stations":["A"],"since":"2025-11-13T12:00:00Z"}`,
		`{"type":"subscribe","stations":["A"],"since":1e99}`,
		`{"type":"subscribe","stations":[` + strings.Repeat(`"A",`, 10) + `"B"]}`,
		`[]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseRequest(data, 5)
		if err != nil {
			require.ErrorIs(t, err, errRequest)
			return
		}
		// What is accepted is usable as it stands.
		require.True(t, r.all || len(r.stations) > 0)
		require.LessOrEqual(t, len(r.stations), 5)
		for _, s := range r.stations {
			require.True(t, telemetry.ValidStationID(s), s)
		}
		if r.since != nil {
			require.True(t, r.subscribe)
			require.GreaterOrEqual(t, r.since.ID, int64(0))
		}
	})
}

package fanout

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
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

func TestOriginPatterns(t *testing.T) {
	for _, p := range []string{"*", "**", "https://*", "?", "a["} {
		assert.Error(t, checkOriginPattern(p), p)
	}
	for _, p := range []string{"dash.example.org", "*.example.org", "https://dash.example.org", "localhost:*"} {
		assert.NoError(t, checkOriginPattern(p), p)
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
			require.True(t, store.ValidStationID(s), s)
		}
		if r.since != nil {
			require.True(t, r.subscribe)
			require.GreaterOrEqual(t, r.since.ID, int64(0))
		}
	})
}

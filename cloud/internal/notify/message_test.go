package notify

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -update to write %s", path)
	assert.Equal(t, string(want), string(got), "%s differs (run with -update after checking the change)", path)
}

var goldenTime = time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)

// notification is an outbox row as the store gives it, with the alert JSON as the live
// event carries it.
func notification(id int64, station, transition, severity, message string, at time.Time) store.Notification {
	v, lim := 3.2, 4.0
	alert := map[string]any{
		"id": id, "origin": "station", "station": station, "rule": "threshold", "key": "threshold/do",
		"param": "do", "sensor": "do-1", "severity": severity, "state": "active",
		"opened_at": goldenTime, "resolved_at": nil, "message": message, "value": v, "limit": lim,
		"updated_at": at, "transition": transition,
	}
	if transition == "resolved" {
		alert["state"], alert["resolved_at"] = "resolved", at
	}
	data, err := json.Marshal(alert)
	if err != nil {
		panic(err)
	}
	return store.Notification{
		ID: id, Station: station, Origin: "station", AlertID: uint64(id), Transition: transition, Rule: "threshold",
		Key: "threshold/do", Severity: severity, Time: at, QueuedAt: at, Data: data,
	}
}

func testMessage(ns ...store.Notification) *message {
	return newMessage(store.NotifyMessage{Channel: "ops-mail", Station: ns[0].Station, Number: 4, Notifications: ns})
}

func TestMessageGolden(t *testing.T) {
	one := testMessage(notification(11, "MH-PUNE-001", "opened", "critical", "DO 3.2 mg/L below the class B minimum of 4 mg/L", goldenTime))
	group := testMessage(
		notification(11, "MH-PUNE-001", "opened", "warning", "DO 3.2 mg/L below the class B minimum of 4 mg/L", goldenTime),
		notification(12, "MH-PUNE-001", "escalated", "critical", "DO 2.1 mg/L, far below 4 mg/L\r\nBcc: injected@example.org", goldenTime.Add(40*time.Second)),
		notification(13, "MH-PUNE-001", "resolved", "warning", "DO back above 4 mg/L — ok", goldenTime.Add(50*time.Second)),
	)
	from, to := `"Pure Health" <ph@example.org>`, []string{`"River Ops" <ops@example.org>`, "<duty@example.org>"}
	golden(t, "email_one.eml", emailMessage(one, "ops-mail", from, to, "ph-cloud.test", goldenTime.Add(time.Second)))
	golden(t, "email_group.eml", emailMessage(group, "ops-mail", from, to, "ph cloud/ü", goldenTime.Add(time.Minute)))

	body, err := webhookBody(one)
	require.NoError(t, err)
	assert.Equal(t, string(one.Notifications[0].Data), string(body), "one transition: its alert JSON")
	body, err = webhookBody(group)
	require.NoError(t, err)
	var top map[string]any
	require.NoError(t, json.Unmarshal(body, &top))
	assert.Equal(t, "resolved", top["transition"], "the newest transition at the top")
	assert.Len(t, top["group"], 3)
	golden(t, "webhook_group.json", body)

	again := testMessage(group.Notifications...)
	assert.Equal(t, group.id, again.id, "the same transitions make the same delivery id")
	other := testMessage(group.Notifications[:2]...)
	assert.NotEqual(t, group.id, other.id)
}

// TestMessageSurvivesBadData: a transition whose data does not decode is still listed,
// from its outbox row; the webhook cannot carry it and says so.
func TestMessageSurvivesBadData(t *testing.T) {
	n := notification(5, "A", "opened", "critical", "x", goldenTime)
	n.Data = json.RawMessage(`{"id":`)
	m := testMessage(n)
	text := emailText(m, "ops")
	assert.Contains(t, text, "OPENED  critical  threshold")
	assert.Contains(t, text, "station alert 5")
	_, err := webhookBody(m)
	assert.ErrorContains(t, err, "alert 5 of A")
}

func TestSign(t *testing.T) {
	// RFC 4231, test case 2.
	assert.Equal(t, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
		Sign([]byte("Jefe"), []byte("what do ya want for nothing?")))
}

// checkEmail parses an e-mail the way a mail client would and checks its shape.
func checkEmail(t *testing.T, raw []byte) (subject, body string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err, "%q", raw)
	var keys []string
	for k := range msg.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	require.Equal(t, []string{"Content-Transfer-Encoding", "Content-Type", "Date", "From", "Message-Id", "Mime-Version",
		"Subject", "To", "X-Ph-Delivery"}, keys, "no header more, none less")
	for _, k := range keys {
		require.Len(t, msg.Header[k], 1, "header %s once", k)
	}
	subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	require.NoError(t, err)
	require.NotContains(t, subject, "\n")
	text, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	require.NoError(t, err)
	require.NotContains(t, strings.ReplaceAll(string(text), "\r\n", ""), "\r", "lines end in CRLF, no bare CR")
	for _, line := range strings.SplitAfter(string(raw), "\r\n") {
		require.LessOrEqual(t, len(line), 998, "RFC 5322 line length")
	}
	return subject, strings.ReplaceAll(string(text), "\r\n", "\n")
}

func TestEmailParses(t *testing.T) {
	m := testMessage(notification(1, "A", "opened", "critical", "Température élevée\nSubject: x", goldenTime))
	subject, body := checkEmail(t, emailMessage(m, "ops", "ph@example.org", []string{"a@example.org"}, "h", goldenTime))
	assert.Equal(t, "[Pure Health] A critical alert opened: Température élevée Subject: x", subject)
	assert.Contains(t, body, "    Température élevée Subject: x\n")

	// Devanagari triples in Q-encoding: the subject is folded, and reads back whole.
	marathi := strings.Repeat("नदीतील ऑक्सिजन कमी ", 8)
	m = testMessage(notification(1, "MH-PUNE-001", "opened", "critical", marathi, goldenTime))
	subject, _ = checkEmail(t, emailMessage(m, "ops", "ph@example.org", []string{"a@example.org"}, "h", goldenTime))
	assert.Equal(t, "[Pure Health] MH-PUNE-001 critical alert opened: "+clip(strings.TrimSpace(marathi), maxSubjectText), subject)
}

func FuzzEmailMessage(f *testing.F) {
	f.Add("MH-PUNE-001", "DO below 4 mg/L", "do-1", "critical")
	f.Add("A", "line\r\nBcc: x@example.org", "", "warning")
	f.Add("ü", strings.Repeat("é", 300), "\x00", "info")
	f.Fuzz(func(t *testing.T, station, text, sensor, severity string) {
		n := notification(1, station, "opened", severity, text, goldenTime)
		var a map[string]any
		require.NoError(t, json.Unmarshal(n.Data, &a))
		a["sensor"] = sensor
		n.Data, _ = json.Marshal(a)
		m := testMessage(n)
		subject, body := checkEmail(t, emailMessage(m, "ops", "ph@example.org", []string{"a@example.org"}, "h", goldenTime))
		assert.True(t, strings.HasPrefix(subject, "[Pure Health] "), subject)
		assert.Contains(t, body, "(delivery "+m.id+")")
	})
}

func TestFilterMatch(t *testing.T) {
	n := func(station, severity, transition string) store.Notification {
		return store.Notification{Station: station, Severity: severity, Transition: transition, Rule: "threshold"}
	}
	failing := func(channel string) store.Notification {
		return store.Notification{Station: "A", Severity: "warning", Transition: "opened",
			Rule: store.RuleNotifyFailing, Key: store.NotifyFailingKey(channel)}
	}
	defaults := Channel{Name: "ops"}
	defaults.fill()
	tests := []struct {
		name string
		c    Channel
		n    store.Notification
		want bool
	}{
		{"defaults: critical opening", defaults, n("A", "critical", "opened"), true},
		{"defaults: warning resolution", defaults, n("B", "warning", "resolved"), true},
		{"defaults: no info", defaults, n("A", "info", "opened"), false},
		{"defaults: no acknowledgment", defaults, n("A", "critical", "acknowledged"), false},
		{"defaults: no escalation", defaults, n("A", "critical", "escalated"), false},
		{"named station", Channel{Name: "x", Stations: []string{"B"}}, n("B", "warning", "opened"), true},
		{"other station", Channel{Name: "x", Stations: []string{"B"}}, n("A", "warning", "opened"), false},
		{"star among names", Channel{Name: "x", Stations: []string{"B", "*"}}, n("A", "warning", "opened"), true},
		{"info asked for", Channel{Name: "x", Severities: []string{"info"}}, n("A", "info", "opened"), true},
		{"escalation asked for", Channel{Name: "x", On: []string{"escalated"}}, n("A", "critical", "escalated"), true},
		{"another channel's failure", defaults, failing("hook"), true},
		{"its own failure", defaults, failing("ops"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.fill()
			assert.Equal(t, tt.want, newFilter(tt.c).match(tt.n))
		})
	}
}

package notify

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"strconv"
	"strings"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/store"
)

// message is what one attempt sends: a stream's transitions and their alerts.
type message struct {
	store.NotifyMessage
	// id names the message to receivers (X-PH-Delivery, Message-ID): the same on every
	// attempt, since an attempt repeats the same transitions.
	id     string
	alerts []alertView // one per transition, in order
}

// alertView is what an e-mail shows of a transition: the members of its alert JSON
// (the live alert event's data, whose keys are a contract) that it reads.
type alertView struct {
	ID         uint64    `json:"id"`
	Origin     string    `json:"origin"`
	Station    string    `json:"station"`
	Rule       string    `json:"rule"`
	Param      string    `json:"param"`
	Sensor     string    `json:"sensor"`
	Severity   string    `json:"severity"`
	State      string    `json:"state"`
	OpenedAt   time.Time `json:"opened_at"`
	Message    string    `json:"message"`
	Value      *float64  `json:"value"`
	Limit      *float64  `json:"limit"`
	UpdatedAt  time.Time `json:"updated_at"`
	Transition string    `json:"transition"`
}

func newMessage(m store.NotifyMessage) *message {
	h := sha256.New()
	h.Write([]byte(m.Channel))
	h.Write([]byte{0})
	h.Write([]byte(m.Station))
	for _, n := range m.Notifications {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(n.ID)))
	}
	msg := &message{NotifyMessage: m, id: hex.EncodeToString(h.Sum(nil)[:16])}
	msg.alerts = make([]alertView, len(m.Notifications))
	for i, n := range m.Notifications {
		a := &msg.alerts[i]
		// The outbox row's own columns stand in for data that does not decode.
		if err := json.Unmarshal(n.Data, a); err != nil {
			*a = alertView{}
		}
		a.ID, a.Origin, a.Station, a.Rule = n.AlertID, n.Origin, n.Station, n.Rule
		a.Severity, a.Transition = n.Severity, n.Transition
		if a.UpdatedAt.IsZero() {
			a.UpdatedAt = n.Time
		}
	}
	return msg
}

// webhookBody is the body of a webhook: the alert JSON of the transition (the live
// alert event's data, design §5a). A message of several transitions is the newest one's
// alert JSON with one more member, "group": every transition of the message, oldest first,
// each as its own alert JSON.
func webhookBody(m *message) ([]byte, error) {
	ns := m.Notifications
	var newest bytes.Buffer
	if err := json.Compact(&newest, ns[len(ns)-1].Data); err != nil {
		return nil, fmt.Errorf("alert %d of %s: %w", ns[len(ns)-1].AlertID, m.Station, err)
	}
	if len(ns) == 1 {
		return newest.Bytes(), nil
	}
	body := bytes.TrimSuffix(newest.Bytes(), []byte("}"))
	body = append(body, `,"group":[`...)
	for i, n := range ns {
		if i > 0 {
			body = append(body, ',')
		}
		var b bytes.Buffer
		if err := json.Compact(&b, n.Data); err != nil {
			return nil, fmt.Errorf("alert %d of %s: %w", n.AlertID, m.Station, err)
		}
		body = append(body, b.Bytes()...)
	}
	return append(body, "]}"...), nil
}

// maxSubjectText bounds the alert message quoted in a subject.
const maxSubjectText = 120

// emailSubject says what the message is about on one line.
func emailSubject(m *message) string { return oneLine(subject(m)) }

func subject(m *message) string {
	if len(m.alerts) == 1 {
		a := m.alerts[0]
		return fmt.Sprintf("[Pure Health] %s %s alert %s: %s", m.Station, a.Severity, a.Transition,
			clip(oneLine(a.Message), maxSubjectText))
	}
	worst := ""
	for _, a := range m.alerts {
		if rank(a.Severity) > rank(worst) {
			worst = a.Severity
		}
	}
	return fmt.Sprintf("[Pure Health] %s: %d alert transitions, highest severity %s", m.Station, len(m.alerts), worst)
}

func rank(severity string) int {
	switch severity {
	case "critical":
		return 3
	case "warning":
		return 2
	case "info":
		return 1
	}
	return 0
}

// emailText is the plain-text body: one block per transition, oldest first.
func emailText(m *message, channel string) string {
	var b strings.Builder
	n := len(m.alerts)
	fmt.Fprintf(&b, "Station %s: %d alert transition%s.\n", oneLine(m.Station), n, plural(n))
	for _, a := range m.alerts {
		b.WriteString("\n")
		what := a.Rule
		if a.Param != "" {
			what += " (" + a.Param + ")"
		}
		fmt.Fprintf(&b, "%s  %s\n", a.UpdatedAt.UTC().Format("2006-01-02 15:04:05 MST"),
			oneLine(strings.ToUpper(a.Transition)+"  "+a.Severity+"  "+what))
		if a.Message != "" {
			fmt.Fprintf(&b, "    %s\n", oneLine(a.Message))
		}
		var facts []string
		if a.Value != nil {
			facts = append(facts, "value "+strconv.FormatFloat(*a.Value, 'g', -1, 64))
		}
		if a.Limit != nil {
			facts = append(facts, "limit "+strconv.FormatFloat(*a.Limit, 'g', -1, 64))
		}
		if a.Sensor != "" {
			facts = append(facts, "sensor "+oneLine(a.Sensor))
		}
		origin := a.Origin
		if origin == "" {
			origin = "?"
		}
		facts = append(facts, fmt.Sprintf("%s alert %d", origin, a.ID))
		if a.State != "" {
			facts = append(facts, "now "+a.State)
		}
		if !a.OpenedAt.IsZero() {
			facts = append(facts, "opened "+a.OpenedAt.UTC().Format("2006-01-02 15:04:05 MST"))
		}
		fmt.Fprintf(&b, "    %s\n", strings.Join(facts, ", "))
	}
	fmt.Fprintf(&b, "\n-- \nph-cloud, notification channel %s, message %d about %s (delivery %s).\n",
		channel, m.Number, oneLine(m.Station), m.id)
	return b.String()
}

// emailMessage is the whole RFC 5322 message, lines ending in CRLF. from and to are
// addresses checked by Validate; hostname names this host in the Message-ID.
func emailMessage(m *message, channel, from string, to []string, hostname string, date time.Time) []byte {
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", from)
	header("To", fold(strings.Join(to, ", ")))
	header("Subject", fold(mime.QEncoding.Encode("utf-8", clip(emailSubject(m), maxSubject))))
	header("Date", date.Format(time.RFC1123Z))
	header("Message-ID", "<ph-"+m.id+"@"+messageIDHost(hostname)+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("X-PH-Delivery", m.id)
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(emailText(m, channel))) // a bytes.Buffer takes everything
	qp.Close()
	return b.Bytes()
}

// maxSubject bounds a subject, in runes, whatever the station sent.
const maxSubject = 200

// fold breaks a header value at its spaces so that lines stay near 78 characters, and
// far below RFC 5322's limit of 998: a subject in Devanagari is three times as long
// Q-encoded. Unfolding (removing the CRLFs) gives the value back, and spaces between
// encoded words do not count.
func fold(v string) string {
	var b strings.Builder
	line := len("Subject: ")
	for i, word := range strings.Split(v, " ") {
		if i > 0 {
			if line+1+len(word) > 78 {
				b.WriteString("\r\n")
				line = 0
			}
			b.WriteString(" ")
			line++
		}
		b.WriteString(word)
		line += len(word)
	}
	return b.String()
}

// messageIDHost keeps what a Message-ID's right side may hold.
func messageIDHost(h string) string {
	h = strings.Map(func(r rune) rune {
		if r < 128 && (r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return -1
	}, h)
	if h == "" {
		return "localhost"
	}
	return h
}

// oneLine puts text from a station (an alert message, a sensor name) on one line.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return r == '\n' || r == '\r' || r == '\v' || r == '\f' || r == 0x85 || r == 0x2028 || r == 0x2029
	}), " ")
}

// clip cuts s to at most n runes, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

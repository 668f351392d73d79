package notify_test

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/notify"
)

func (ms *mailServer) channel(t *testing.T, name string) notify.Channel {
	host, port := ms.hostPort(t)
	return notify.Channel{
		Name: name, Kind: notify.KindEmail,
		SMTP: notify.SMTP{Host: host, Port: port, Username: ms.user, Password: ms.pass,
			From: "Pure Health <ph@example.org>", CAFile: ms.caFile},
		To:         []string{"River Ops <ops@example.org>", "duty@example.org"},
		Severities: []string{"info", "warning", "critical"},
		On:         []string{"opened", "acknowledged", "escalated", "resolved"},
	}
}

// readMail parses a mail as a client would: subject decoded, body out of quoted-printable.
func readMail(t *testing.T, m receivedMail) (*mail.Message, string, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.data))
	require.NoError(t, err)
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	require.NoError(t, err)
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	require.NoError(t, err)
	return msg, subject, strings.ReplaceAll(string(body), "\r\n", "\n")
}

// TestEmailListsTransitions: an e-mail channel sends through a real SMTP server, over
// STARTTLS with AUTH PLAIN, one mail to every recipient per message, the transitions
// listed in plain text.
func TestEmailListsTransitions(t *testing.T) {
	e := newEnv(t)
	ms := newMailServer(t, true)
	d, _ := start(t, e.s, e.options(t, ms.channel(t, "ops-mail")))
	at := e.clock.Now()
	e.ingest(t, "A", transition(1, "opened", "critical", at))
	require.Eventually(t, func() bool { return len(ms.taken()) == 1 }, waitFor, testInterval)

	m := ms.taken()[0]
	assert.True(t, m.tls, "STARTTLS was used")
	assert.True(t, m.auth, "AUTH PLAIN was used")
	assert.Equal(t, "ph@example.org", m.from)
	assert.Equal(t, []string{"ops@example.org", "duty@example.org"}, m.to)
	msg, subject, body := readMail(t, m)
	assert.Equal(t, "[Pure Health] A critical alert opened: DO below 5 mg/L", subject)
	assert.Equal(t, `"Pure Health" <ph@example.org>`, msg.Header.Get("From"))
	assert.Equal(t, `"River Ops" <ops@example.org>, <duty@example.org>`, msg.Header.Get("To"))
	delivery := msg.Header.Get("X-PH-Delivery")
	assert.Equal(t, "<ph-"+delivery+"@ph-cloud.test>", msg.Header.Get("Message-ID"))
	assert.Contains(t, body, "Station A: 1 alert transition.\n")
	assert.Contains(t, body, at.Format("2006-01-02 15:04:05 MST")+"  OPENED  critical  threshold (do)\n")
	assert.Contains(t, body, "    DO below 5 mg/L\n")
	assert.Contains(t, body, "    value 4.1, limit 5, sensor do-1, station alert 1, now active")

	e.ingest(t, "A", transition(1, "acknowledged", "critical", at.Add(time.Second)), transition(2, "opened", "warning", at.Add(2*time.Second)))
	e.clock.Advance(time.Minute)
	require.Eventually(t, func() bool { return len(ms.taken()) == 2 }, waitFor, testInterval)
	_, subject, body = readMail(t, ms.taken()[1])
	assert.Equal(t, "[Pure Health] A: 2 alert transitions, highest severity critical", subject)
	assert.Contains(t, body, "Station A: 2 alert transitions.\n")
	ack := strings.Index(body, "ACKNOWLEDGED  critical")
	opened := strings.Index(body, "OPENED  warning")
	assert.True(t, ack > 0 && opened > ack, "both listed, oldest first:\n%s", body)
	require.Eventually(t, func() bool { return d.Stats().Channels[0].Delivered == 2 }, waitFor, testInterval)
}

// TestEmailFailures: what keeps a mail from going is a failed attempt with a clear error
// in the statistics, and no text reaches the server.
func TestEmailFailures(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedPort := closed.Addr().(*net.TCPAddr).Port
	require.NoError(t, closed.Close())
	// A server that takes the connection and never greets.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		mute.Close()
		<-accepting
	})
	mutePort := mute.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name    string
		withTLS bool
		change  func(*notify.Channel)
		want    string
	}{
		{"no STARTTLS offered", false, func(c *notify.Channel) { c.SMTP.TLS = notify.TLSStartTLS }, "does not offer STARTTLS"},
		{"recipient refused", true, func(c *notify.Channel) { c.To = append(c.To, "nobody@example.org") }, "rcpt to nobody@example.org: 550"},
		{"wrong password", true, func(c *notify.Channel) { c.SMTP.Password = "wrong" }, "auth:"},
		{"untrusted certificate", true, func(c *notify.Channel) { c.SMTP.CAFile = "" }, "starttls: tls: failed to verify certificate"},
		{"closed port", true, func(c *notify.Channel) { c.SMTP.Port = closedPort }, "connection refused"},
		{"no greeting", true, func(c *notify.Channel) { c.SMTP.Port, c.Timeout = mutePort, 100*time.Millisecond }, "context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ms := newMailServer(t, tt.withTLS)
			c := ms.channel(t, "ops-mail")
			tt.change(&c)
			d, _ := start(t, e.s, e.options(t, c))
			e.ingest(t, "A", transition(1, "opened", "critical", e.clock.Now()))
			require.Eventually(t, func() bool { return d.Stats().Channels[0].Failed == 1 }, waitFor, testInterval)
			st := d.Stats().Channels[0]
			assert.Contains(t, st.LastError, tt.want)
			assert.NotContains(t, st.LastError, ms.pass)
			assert.Empty(t, ms.taken(), "no mail taken")
		})
	}
}

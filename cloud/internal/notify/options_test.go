package notify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	hook := Channel{Name: "hook", Kind: KindWebhook, URL: "https://hooks.example.org/ph", Secret: "k"}
	mailer := Channel{Name: "mail", Kind: KindEmail, To: []string{"ops@example.org"},
		SMTP: SMTP{Host: "mail.example.org", From: "ph@example.org"}}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	with := func(c Channel, change func(*Channel)) Channel {
		change(&c)
		return c
	}
	tests := []struct {
		name string
		opts Options
		want []string // parts of the error; none: valid
	}{
		{"nothing configured", Options{}, nil},
		{"a webhook and an e-mail", Options{Channels: []Channel{hook, mailer}}, nil},
		{"webhook without url and secret", Options{Channels: []Channel{with(hook, func(c *Channel) { c.URL, c.Secret = "", "" })}},
			[]string{`notify[0] "hook": url is required`, "secret is required"}},
		{"webhook url not http", Options{Channels: []Channel{with(hook, func(c *Channel) { c.URL = "ftp://x/y" })}},
			[]string{`url "ftp://x/y" must be http:// or https://`}},
		{"webhook with smtp", Options{Channels: []Channel{with(hook, func(c *Channel) { c.To = []string{"a@example.org"} })}},
			[]string{"smtp and to belong to email channels"}},
		{"email incomplete", Options{Channels: []Channel{{Name: "m", Kind: KindEmail}}},
			[]string{"smtp.host is required", "smtp.from", "to needs at least one address"}},
		{"email bad addresses and tls", Options{Channels: []Channel{with(mailer, func(c *Channel) {
			c.To, c.SMTP.TLS, c.SMTP.Port, c.SMTP.Username = []string{"not an address"}, "ssl", 70000, "u"
		})}}, []string{`to "not an address"`, `smtp.tls "ssl"`, "smtp.port 70000", "smtp.username and smtp.password go together"}},
		{"email ca file", Options{Channels: []Channel{with(mailer, func(c *Channel) { c.SMTP.CAFile = notPEM })}},
			[]string{"smtp.ca_file: " + notPEM + " holds no PEM certificate"}},
		{"filters", Options{Channels: []Channel{with(hook, func(c *Channel) {
			c.Stations, c.Severities, c.On = []string{"A", "bad id!"}, []string{"fatal"}, []string{"closed"}
		})}}, []string{`stations: "bad id!"`, `severities: "fatal"`, `on: "closed"`}},
		{"kind and name", Options{Channels: []Channel{{Name: "a b", Kind: "sms"}}},
			[]string{"name must be", `kind "sms" must be webhook or email`}},
		{"twice the same name", Options{Channels: []Channel{hook, hook}}, []string{`notify[1]: name "hook" is used twice`}},
		{"negative numbers", Options{Workers: -1, Interval: -time.Second, Channels: []Channel{with(hook, func(c *Channel) { c.Group = -time.Minute })}},
			[]string{"notify workers: -1 is negative", "notify interval: -1s is negative", "group -1m0s is negative"}},
		{"retention shorter than max age", Options{Retention: time.Hour}, []string{"retention 1h0m0s is shorter than max_age 72h0m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestDefaultsFilled(t *testing.T) {
	o := Options{Channels: []Channel{{Name: "m", Kind: KindEmail}, {Name: "h", Kind: KindWebhook}}}
	o.fill()
	m, h := o.Channels[0], o.Channels[1]
	assert.Equal(t, DefaultStations(), m.Stations)
	assert.Equal(t, DefaultSeverities(), m.Severities)
	assert.Equal(t, DefaultOn(), m.On)
	assert.Equal(t, DefaultGroup, m.Group)
	assert.Equal(t, DefaultEmailTimeout, m.Timeout)
	assert.Equal(t, DefaultSMTPPort, m.SMTP.Port)
	assert.Equal(t, TLSAuto, m.SMTP.TLS)
	assert.Equal(t, DefaultWebhookTimeout, h.Timeout)
	assert.Zero(t, h.SMTP, "a webhook gets no SMTP defaults")
	assert.Equal(t, DefaultWorkers, o.Workers)
	assert.Equal(t, DefaultMaxAge, o.MaxAge)
}

// TestWebhookAnswers: only 2xx delivers; a redirect is not followed; Retry-After is kept
// for the retry; errors name the receiver without its path or query.
func TestWebhookAnswers(t *testing.T) {
	var status int
	var header http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		w.Write([]byte("answer\nbody"))
	}))
	defer srv.Close()
	c := Channel{Name: "h", Kind: KindWebhook, URL: srv.URL + "/services/T0/B0/SECRETPATH?token=SECRETQUERY", Secret: "k", Timeout: 5 * time.Second}
	w := newWebhook(c)
	defer w.close()
	m := testMessage(notification(1, "A", "opened", "critical", "x", goldenTime))
	tests := []struct {
		status int
		header http.Header
		want   string
		retry  time.Duration
	}{
		{200, nil, "", 0},
		{202, nil, "", 0},
		{301, http.Header{"Location": {"https://elsewhere.example.org/"}}, "webhook answered 301 Moved Permanently (redirects are not followed): answer body", 0},
		{429, http.Header{"Retry-After": {"120"}}, "webhook answered 429 Too Many Requests: answer body", 2 * time.Minute},
		{500, nil, "webhook answered 500 Internal Server Error: answer body", 0},
	}
	for _, tt := range tests {
		status, header = tt.status, tt.header
		err := w.send(t.Context(), m)
		if tt.want == "" {
			assert.NoError(t, err, "status %d", tt.status)
			continue
		}
		require.Error(t, err, "status %d", tt.status)
		assert.Equal(t, tt.want, err.Error())
		assert.Equal(t, tt.retry, retryAfter(err))
	}

	srv.Close()
	err := w.send(t.Context(), m)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "webhook "+srv.URL+": ")
	assert.NotContains(t, err.Error(), "SECRET", "the URL's path and query stay out of errors")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.ErrorIs(t, w.send(ctx, m), context.Canceled)
}

// TestWebhookTimeout: a receiver that does not answer within the channel's timeout is a
// failed attempt, not a stuck sender.
func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	w := newWebhook(Channel{Name: "h", Kind: KindWebhook, URL: srv.URL, Secret: "k", Timeout: 50 * time.Millisecond})
	defer w.close()
	err := w.send(t.Context(), testMessage(notification(1, "A", "opened", "critical", "x", goldenTime)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Client.Timeout exceeded")
}

package notify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/notify"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/internal/testclock"
	"github.com/purehealth/purehealth/internal/testlog"
	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/wire"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Waits for what a running dispatcher does (it ticks every testInterval).
const (
	testInterval = 10 * time.Millisecond
	waitFor      = 20 * time.Second
)

// clock is the dispatchers' clock, moved by the test.
// env is a migrated database with stations A, B and C.
type env struct {
	s     *store.Store
	url   string
	clock *testclock.Clock
	seq   map[string]uint64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s, url := storetest.Open(t, store.Options{})
	for _, id := range []string{"A", "B", "C"} {
		storetest.AddStation(t, s, id)
	}
	return &env{s: s, url: url, clock: testclock.New(time.Now().UTC().Truncate(time.Second)), seq: map[string]uint64{}}
}

// transition is an alert transition to ingest.
func transition(id uint64, tr, severity string, at time.Time) wire.AlertEvent {
	state := map[string]string{"opened": "active", "escalated": "active", "acknowledged": "acknowledged", "resolved": "resolved"}[tr]
	a := storetest.Alert(0, id, tr, state, at)
	a.Severity = alert.Severity(severity)
	if tr == "acknowledged" {
		ack := a.Time
		a.AcknowledgedAt = &ack
	}
	return a
}

// ingest stores one batch of station's transitions, numbering them in its alerts stream.
func (e *env) ingest(t *testing.T, station string, alerts ...wire.AlertEvent) {
	t.Helper()
	b := storetest.Batch(station, nil)
	for _, a := range alerts {
		e.seq[station]++
		a.Seq = e.seq[station]
		b.Alerts = append(b.Alerts, a)
	}
	_, err := e.s.Ingest(t.Context(), station, b)
	require.NoError(t, err)
}

// options are a dispatcher's options for tests: fast ticks, the env's clock, short
// retries, the log kept for failures.
func (e *env) options(t *testing.T, channels ...notify.Channel) notify.Options {
	return notify.Options{
		Channels: channels, Interval: testInterval, StatsInterval: testInterval,
		RetryBase: 10 * time.Second, RetryMax: time.Minute, Hostname: "ph-cloud.test",
		Log: testLogger(t), Now: e.clock.Now,
	}
}

func testLogger(t *testing.T) *slog.Logger {
	logs := &testlog.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dispatcher log:\n%s", logs.String())
		}
	})
	return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// start runs a dispatcher on out until the returned stop is called (or the test ends);
// stop returns once Run has.
func start(t *testing.T, out notify.Outbox, opts notify.Options) (*notify.Dispatcher, func()) {
	t.Helper()
	d, err := notify.New(out, opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				assert.NoError(t, err, "Run")
			case <-time.After(waitFor):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

// webhookMessage is one request a receiver took.
type webhookMessage struct {
	delivery string
	body     []byte
	alerts   []map[string]any // the transitions it carries: the body, or its group
}

// receiver is a webhook endpoint that checks signatures the way a receiver would, with
// its own HMAC, and can be made to fail.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string
	fail   atomic.Int32 // answer 503 to this many more requests; -1: to every request

	mu       sync.Mutex
	attempts []string // X-PH-Delivery of every request
	got      []webhookMessage
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, secret: "s3cret-" + t.Name()}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	mac := hmac.New(sha256.New, []byte(r.secret))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(req.Header.Get("X-PH-Signature"))) {
		r.t.Errorf("webhook signature %q, want %q", req.Header.Get("X-PH-Signature"), want)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		r.t.Errorf("webhook Content-Type %q", ct)
	}
	delivery := req.Header.Get("X-PH-Delivery")
	r.mu.Lock()
	r.attempts = append(r.attempts, delivery)
	r.mu.Unlock()
	for {
		n := r.fail.Load()
		if n == 0 {
			break
		}
		if n < 0 || r.fail.CompareAndSwap(n, n-1) {
			http.Error(w, "receiver down for maintenance", http.StatusServiceUnavailable)
			return
		}
	}
	var top map[string]any
	if err := json.Unmarshal(body, &top); err != nil {
		r.t.Errorf("webhook body is not a JSON object: %v: %s", err, body)
	}
	m := webhookMessage{delivery: delivery, body: body, alerts: []map[string]any{top}}
	if group, ok := top["group"].([]any); ok {
		m.alerts = nil
		for _, g := range group {
			m.alerts = append(m.alerts, g.(map[string]any))
		}
	}
	r.mu.Lock()
	r.got = append(r.got, m)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) channel(name string) notify.Channel {
	return notify.Channel{Name: name, Kind: notify.KindWebhook, URL: r.srv.URL + "/hook?token=x", Secret: r.secret,
		Severities: []string{"info", "warning", "critical"}, On: []string{"opened", "acknowledged", "escalated", "resolved"}}
}

func (r *receiver) messages() []webhookMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhookMessage(nil), r.got...)
}

func (r *receiver) attemptIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.attempts...)
}

// transitions lists every transition delivered, as "station origin id transition".
func (r *receiver) transitions() []string {
	var out []string
	for _, m := range r.messages() {
		for _, a := range m.alerts {
			out = append(out, key(a))
		}
	}
	return out
}

func key(a map[string]any) string {
	return fmt.Sprintf("%v %v %v %v", a["station"], a["origin"], a["id"], a["transition"])
}

// waitMessages waits until r has taken n messages.
func (r *receiver) waitMessages(t *testing.T, n int) []webhookMessage {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.messages()) >= n }, waitFor, testInterval,
		"waiting for %d webhook messages", n)
	return r.messages()
}

// mailServer is an SMTP server (go-smtp) with STARTTLS and AUTH PLAIN that keeps what
// it is given.
type mailServer struct {
	addr   string
	caFile string
	user   string
	pass   string

	mu    sync.Mutex
	mails []receivedMail
}

// receivedMail is one mail a mailServer took.
type receivedMail struct {
	from string
	to   []string
	data []byte
	tls  bool
	auth bool
}

func newMailServer(t *testing.T, withTLS bool) *mailServer {
	t.Helper()
	ms := &mailServer{user: "ph", pass: "mail-pass"}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &mailSession{srv: ms, conn: c}, nil
	}))
	srv.Domain = "mail.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	if withTLS {
		cert, caFile := selfSigned(t)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ms.caFile = caFile
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ms.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Errorf("smtp server: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ms
}

func (ms *mailServer) taken() []receivedMail {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]receivedMail(nil), ms.mails...)
}

func (ms *mailServer) hostPort(t *testing.T) (string, int) {
	host, port, err := net.SplitHostPort(ms.addr)
	require.NoError(t, err)
	var p int
	_, err = fmt.Sscan(port, &p)
	require.NoError(t, err)
	return host, p
}

type mailSession struct {
	srv  *mailServer
	conn *smtp.Conn
	auth bool
	m    receivedMail
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.srv.user || password != s.srv.pass {
			return errors.New("invalid credentials")
		}
		s.auth = true
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	s.m = receivedMail{from: from, auth: s.auth}
	_, s.m.tls = s.conn.TLSConnectionState()
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == "nobody@example.org" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.m.to = append(s.m.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.data = data
	s.srv.mu.Lock()
	s.srv.mails = append(s.srv.mails, s.m)
	s.srv.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        { s.m = receivedMail{} }
func (s *mailSession) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and writes it, as the CA to trust, to a
// PEM file.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mail.test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, file
}

package uplink

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/pipeline"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/internal/testrun"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/wire"
	"github.com/purehealth/purehealth/shared/wqi"
)

// TestMain fails the run if a test leaves a goroutine behind: Run must take everything it
// started with it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const station = "MH-TEST-001"

// guard bounds every wait; it turns a hang into a failure and asserts nothing about speed.
const guard = 30 * time.Second

var t0 = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

// --- the store ---

// openStore opens a real spool in a fresh directory (or at path). fsync is off: these
// tests are about the uplink, not the disk, and the machine is small.
func openStore(t testing.TB, path string) *spool.Spool {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "agent.db")
	}
	s, err := spool.Open(spool.Options{Path: path, NoSync: true, MaxBytes: 64 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

var params = []struct {
	p    telemetry.Param
	unit string
	v    float64
}{{telemetry.PH, "pH", 7.2}, {telemetry.DO, "mg/L", 6.5}, {telemetry.Temp, "degC", 24}}

// addReadings appends n valid readings and returns them with their seqs.
func addReadings(t testing.TB, s *spool.Spool, n int) []telemetry.Reading {
	t.Helper()
	var out []telemetry.Reading
	for len(out) < n {
		chunk := make([]telemetry.Reading, min(n-len(out), 4000))
		for i := range chunk {
			k := len(out) + i
			p := params[k%len(params)]
			chunk[i] = telemetry.Reading{
				Station: station, Sensor: "probe-" + string(p.p), Param: p.p, Unit: p.unit,
				Value: p.v + float64(k%100)/100, Time: t0.Add(time.Duration(k) * time.Second),
				Source: telemetry.SourceSensor, Quality: telemetry.Good,
			}
		}
		got, err := s.AppendReadings(context.Background(), chunk)
		require.NoError(t, err)
		out = append(out, got...)
	}
	return out
}

// addPoison appends one reading the cloud's validation refuses (a parameter it does not
// know) and returns its seq.
func addPoison(t *testing.T, s *spool.Spool) uint64 {
	t.Helper()
	got, err := s.AppendReadings(context.Background(), []telemetry.Reading{{
		Station: station, Sensor: "probe-x", Param: "salinity", Unit: "psu", Value: 3,
		Time: t0, Source: telemetry.SourceSensor, Quality: telemetry.Good,
	}})
	require.NoError(t, err)
	return got[0].Seq
}

// addWQI appends a WQI record exactly as the pipeline stores it and returns its seq.
func addWQI(t *testing.T, s *spool.Spool, do float64) uint64 {
	t.Helper()
	res, err := wqi.Compute(wqi.Input{Values: map[telemetry.Param]float64{
		telemetry.DO: do, telemetry.PH: 7.4, telemetry.BOD: 2, telemetry.FC: 300,
	}})
	require.NoError(t, err)
	data, err := json.Marshal(pipeline.WQIMessage{Station: station, Time: t0, Result: &res})
	require.NoError(t, err)
	seq, err := s.AppendRecord(context.Background(), spool.WQI, data)
	require.NoError(t, err)
	return seq
}

// newAlerts returns a real alert manager writing its events into s.
func newAlerts(t *testing.T, s *spool.Spool) *alerting.Manager {
	t.Helper()
	m, err := alerting.New(alerting.Options{Station: station, Class: "B"}, s, nil, nil)
	require.NoError(t, err)
	return m
}

// raise opens a test alert (one alert event in the store).
func raise(t *testing.T, m *alerting.Manager, key string) {
	t.Helper()
	m.Set(t.Context(), alerting.Condition{Key: key, Rule: alerting.RuleThreshold, Param: "do",
		Severity: alerting.Warning, Message: "test alert " + key}, true)
}

func activeRules(m *alerting.Manager) []string {
	var out []string
	for _, a := range m.Active() {
		out = append(out, a.Rule)
	}
	slices.Sort(out)
	return out
}

// --- the fake cloud ---

type recKey struct {
	stream string
	seq    uint64
}

// fakeCloud implements the ingest contract with the real wire.Decode and a dedup map,
// standing in for ph-cloud. Its zero value is not usable: see newCloud.
type fakeCloud struct {
	station string
	tls     *tls.Config // nil: plain HTTP

	mu         sync.Mutex
	addr       string
	srv        *httptest.Server
	token      string
	received   map[recKey]int // how many times each record arrived in an accepted batch
	readings   map[uint64]wire.Reading
	alerts     []wire.AlertEvent
	batches    [][]recKey // accepted batches, in order of arrival
	healths    []healthAt // health records taken, in order of arrival
	requests   int
	maxRecords int  // > 0: 413 above it
	omitField  bool // 400 answers name no field
	closeConns bool // Connection: close on every answer
	// script answers requests before the contract does, first entry first; an entry
	// returning false lets the contract answer.
	script []func(w http.ResponseWriter, r *http.Request) bool
}

func newCloud(t testing.TB, tlsCfg *tls.Config) *fakeCloud {
	t.Helper()
	c := &fakeCloud{station: station, token: "secret", tls: tlsCfg,
		received: map[recKey]int{}, readings: map[uint64]wire.Reading{}}
	c.up(t)
	t.Cleanup(c.down)
	return c
}

// up starts serving, on the same address as before if it was up once.
func (c *fakeCloud) up(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	addr := c.addr
	c.mu.Unlock()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment after down
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(c)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point of some tests
	srv.Listener.Close()
	srv.Listener = ln
	if c.tls != nil {
		srv.TLS = c.tls
		srv.StartTLS()
	} else {
		srv.Start()
	}
	c.mu.Lock()
	c.addr, c.srv = ln.Addr().String(), srv
	c.mu.Unlock()
}

// down stops serving: connections are refused until up.
func (c *fakeCloud) down() {
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (c *fakeCloud) url() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	scheme := "http"
	if c.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + c.addr
}

func (c *fakeCloud) setToken(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token = tok
}

func (c *fakeCloud) push(f func(w http.ResponseWriter, r *http.Request) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.script = append(c.script, f)
}

func refuse(w http.ResponseWriter, status int, e wire.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e) // the client may be gone
}

func (c *fakeCloud) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.requests++
	var step func(http.ResponseWriter, *http.Request) bool
	if len(c.script) > 0 {
		step, c.script = c.script[0], c.script[1:]
	}
	if c.closeConns {
		w.Header().Set("Connection", "close")
	}
	c.mu.Unlock()
	if step != nil && step(w, r) {
		return
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/ingest" {
		refuse(w, http.StatusNotFound, wire.Error{Error: "no such endpoint"})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+c.token {
		refuse(w, http.StatusUnauthorized, wire.Error{Error: "unknown token"})
		return
	}
	b, err := wire.Decode(r.Body, wire.IsGzip(r.Header.Get("Content-Encoding")))
	if err != nil {
		if errors.Is(err, wire.ErrTooLarge) {
			refuse(w, http.StatusRequestEntityTooLarge, wire.Error{Error: err.Error()})
			return
		}
		e := wire.Error{Error: err.Error()}
		if fe, ok := errors.AsType[*wire.FieldError](err); ok && !c.omitField {
			e.Field = fe.Field
		}
		refuse(w, http.StatusBadRequest, e)
		return
	}
	if b.Station != c.station {
		refuse(w, http.StatusForbidden, wire.Error{Error: "token of another station"})
		return
	}
	if n := len(b.Readings) + len(b.Alerts) + len(b.WQI); c.maxRecords > 0 && n > c.maxRecords {
		refuse(w, http.StatusRequestEntityTooLarge, wire.Error{Error: fmt.Sprintf("%d records", n)})
		return
	}
	var keys []recKey
	var ack [3]uint64
	for _, a := range b.Alerts {
		keys = append(keys, recKey{"alerts", a.Seq})
		ack[1] = max(ack[1], a.Seq)
		if c.received[recKey{"alerts", a.Seq}] == 0 {
			c.alerts = append(c.alerts, a)
		}
	}
	for _, x := range b.WQI {
		keys = append(keys, recKey{"wqi", x.Seq})
		ack[2] = max(ack[2], x.Seq)
	}
	for _, x := range b.Readings {
		keys = append(keys, recKey{"readings", x.Seq})
		ack[0] = max(ack[0], x.Seq)
		c.readings[x.Seq] = x
	}
	for _, k := range keys {
		c.received[k]++
	}
	if b.Health != nil {
		c.healths = append(c.healths, healthAt{h: *b.Health, records: len(keys)})
	}
	c.batches = append(c.batches, keys)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(wire.Ack{AckedSeq: ack[0], // the client may be gone
		Acked: map[string]uint64{"readings": ack[0], "alerts": ack[1], "wqi": ack[2]}})
}

// healthAt is a health record the fake cloud took, and how many records its batch held.
type healthAt struct {
	h       wire.Health
	records int
}

func (c *fakeCloud) healthRecords() []healthAt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.healths)
}

// seqs returns the stored seqs of stream, sorted.
func (c *fakeCloud) seqs(stream string) []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []uint64
	for k := range c.received {
		if k.stream == stream {
			out = append(out, k.seq)
		}
	}
	slices.Sort(out)
	return out
}

// duplicates counts arrivals of records the cloud already had.
func (c *fakeCloud) duplicates() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.received {
		n += v - 1
	}
	return n
}

func (c *fakeCloud) alertRules() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, a := range c.alerts {
		out = append(out, a.Rule+":"+a.Transition)
	}
	return out
}

func (c *fakeCloud) batchLog() [][]recKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.batches)
}

func (c *fakeCloud) requestCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests
}

func span(lo, hi uint64) []uint64 {
	var out []uint64
	for s := lo; s <= hi; s++ {
		out = append(out, s)
	}
	return out
}

// --- the uplink ---

// tokenFile writes tok to a fresh file and returns its path.
func tokenFile(t *testing.T, tok string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(p, []byte(tok+"\n"), 0o600))
	return p
}

func fileToken(path string) func() (string, error) {
	return func() (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", errors.New("token file is empty")
		}
		return tok, nil
	}
}

func staticToken(tok string) func() (string, error) {
	return func() (string, error) { return tok, nil }
}

// testLogger writes the uplink's log to the test log, for failures.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newUplink builds an uplink with test-friendly defaults: a long interval (a pass only at
// start and on Flush) and a short backoff. opts.URL and opts.Token default to the cloud's.
func newUplink(t *testing.T, s Store, c *fakeCloud, alerts Alerts, opts Options) *Uplink {
	t.Helper()
	if opts.URL == "" {
		opts.URL = c.url()
	}
	if opts.Token == nil {
		opts.Token = staticToken("secret")
	}
	opts.Station = station
	if opts.Interval == 0 {
		opts.Interval = time.Hour
	}
	if opts.BackoffMin == 0 {
		opts.BackoffMin, opts.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	var a Alerts
	if alerts != nil {
		a = alerts
	}
	u, err := New(opts, s, a)
	require.NoError(t, err)
	u.bo.WithRand(mrand.New(mrand.NewPCG(1, 2)).Int64N) // reproducible jitter
	return u
}

// start runs u until the test ends (or stop is called) and checks that Run returns nil.
func start(t *testing.T, u *Uplink) (stop func()) {
	t.Helper()
	stop = testrun.Go(t, u.Run, guard)
	// Wait until Run is running, so that Flush reaches it.
	require.Eventually(t, func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		return u.running
	}, guard, time.Millisecond)
	return stop
}

// flush is Flush bounded by guard.
func flush(t *testing.T, u *Uplink) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	return u.Flush(ctx)
}

// --- a controllable timer ---

type timerCall struct {
	d    time.Duration
	fire chan time.Time
}

// fakeTimer replaces time.After: every wait the uplink asks for is handed to the test,
// which decides when it ends.
type fakeTimer struct{ calls chan timerCall }

func useFakeTimer(u *Uplink) *fakeTimer {
	f := &fakeTimer{calls: make(chan timerCall, 1000)}
	u.after = func(d time.Duration) <-chan time.Time {
		c := make(chan time.Time, 1)
		f.calls <- timerCall{d, c}
		return c
	}
	return f
}

// next returns the next wait the uplink asked for.
func (f *fakeTimer) next(t *testing.T) timerCall {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(guard):
		t.Fatal("the uplink asked for no wait")
		return timerCall{}
	}
}

// --- a faulty TCP proxy ---

// fault is what the proxy does to one connection.
type fault struct {
	delay   time.Duration // before forwarding each chunk towards the cloud
	cutUp   int           // > 0: reset both sides after this many bytes towards the cloud
	cutDown int           // >= 0 with dropAnswer: reset after this many bytes of the answer
	drop    bool          // apply cutDown
	reset   bool          // reset at once
}

// proxy sits between the uplink and the cloud and misbehaves as plan says, per accepted
// connection (by its index from 0).
type proxy struct {
	ln     net.Listener
	target string
	plan   func(i int) fault

	mu    sync.Mutex
	n     int
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string, plan func(i int) fault) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target, plan: plan, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		i := p.n
		p.n++
		p.conns[c] = true
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c, p.plan(i))
	}
}

func hardClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST, not FIN: the rudest way to go
	}
	c.Close()
}

func (p *proxy) serve(c net.Conn, f fault) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	if f.reset {
		hardClose(c)
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		hardClose(c)
		return
	}
	var once sync.Once
	kill := func() { once.Do(func() { hardClose(c); hardClose(up) }) }
	var wg sync.WaitGroup
	cutUp := -1
	if f.cutUp > 0 {
		cutUp = f.cutUp
	}
	wg.Go(func() { pipe(up, c, f.delay, cutUp, kill) })
	cutDown := -1
	if f.drop {
		cutDown = f.cutDown
	}
	wg.Go(func() { pipe(c, up, 0, cutDown, kill) })
	wg.Wait()
	c.Close()
	up.Close()
}

// pipe copies src to dst, waiting delay before each chunk. At src's end it passes the
// end on (a half-close); after limit bytes (limit < 0: no limit) or at an error it kills
// both connections.
func pipe(dst, src net.Conn, delay time.Duration, limit int, kill func()) {
	buf := make([]byte, 4096)
	sent := 0
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if delay > 0 {
				time.Sleep(delay)
			}
			chunk := buf[:n]
			if limit >= 0 && sent+n > limit {
				chunk = buf[:limit-sent]
			}
			if _, werr := dst.Write(chunk); werr != nil {
				kill()
				return
			}
			sent += len(chunk)
			if limit >= 0 && sent >= limit {
				kill()
				return
			}
		}
		if errors.Is(err, io.EOF) {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite() // the other side may be gone already
			}
			return
		}
		if err != nil {
			kill()
			return
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// --- certificates ---

type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	pool                                                 *x509.CertPool
}

// newPKI makes a test CA, a server certificate for 127.0.0.1 and a client certificate,
// as PEM files.
func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Pure Health test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		kder, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p := pki{caFile: write("ca.pem", "CERTIFICATE", caDER), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("station", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func (p pki) serverTLS(t *testing.T, requireClient bool) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	require.NoError(t, err)
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if requireClient {
		c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, p.pool
	}
	return c
}

// discard drains a body (for script steps that only look at headers).
func discard(r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }

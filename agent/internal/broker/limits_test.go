package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"runtime"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/payload"
)

// waitClosed reads from conn until the broker closes it.
func waitClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(guard)))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the broker did not close the connection")
	}
}

// A fixed header announcing a 200 MB CONNECT must be refused before anything is allocated
// for it, and before any authentication.
func TestOversizedConnect(t *testing.T) {
	b, _ := startBroker(t, nil)
	const announced = 200 << 20
	header := []byte{0x10} // CONNECT
	for n := announced; ; {
		digit := byte(n % 128)
		n /= 128
		if n > 0 {
			digit |= 0x80
		}
		header = append(header, digit)
		if n == 0 {
			break
		}
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conn, err := net.Dial("tcp", b.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write(header)
	require.NoError(t, err)
	_, err = conn.Write(make([]byte, 4096)) // a start on the body
	require.NoError(t, err)
	waitClosed(t, conn)
	runtime.ReadMemStats(&after)

	delta := after.TotalAlloc - before.TotalAlloc
	assert.Less(t, delta, uint64(16<<20), "allocated %d bytes for an announced %d", delta, announced)
}

// A client that connects and sends nothing is cut off after the connect timeout instead of
// holding a goroutine and a socket forever.
func TestConnectTimeout(t *testing.T) {
	b, _ := startBroker(t, func(o *Options) { o.ConnectTimeout = 200 * time.Millisecond })
	for _, send := range [][]byte{nil, {0x10, 0x20, 0x00}} { // nothing; half a CONNECT
		conn, err := net.Dial("tcp", b.Addr().String())
		require.NoError(t, err)
		if send != nil {
			_, err = conn.Write(send)
			require.NoError(t, err)
		}
		waitClosed(t, conn)
		require.NoError(t, conn.Close())
	}
	// An admitted client is then governed by its keepalive, not the connect timeout.
	c := mustConnectV5(t, b, "device1", "devpass")
	_, err := c.publish(t, phTopic, 1, phBody)
	require.NoError(t, err)
}

func TestMaxClients(t *testing.T) {
	b, _ := startBroker(t, func(o *Options) { o.MaxClients = 1 })
	mustConnectV3(t, b, "viewer1", "viewpass")
	_, code, err := connectV3(t, b, "viewer1", "viewpass")
	require.Error(t, err)
	assert.Equal(t, byte(3), code, "server unavailable")
	_, ca, err := connectV5(t, b, "viewer1", "viewpass")
	require.Error(t, err)
	require.NotNil(t, ca)
	assert.Equal(t, byte(0x89), ca.ReasonCode, "server busy")
}

func TestNewValidates(t *testing.T) {
	good := func() Options {
		return Options{Station: station, Listen: "127.0.0.1:0", Users: testUsers()}
	}
	tests := []struct {
		name    string
		change  func(*Options)
		nilSink bool
		want    []string
	}{
		{name: "empty station", change: func(o *Options) { o.Station = "" }, want: []string{"station: invalid topic: empty station id"}},
		{name: "station with a slash", change: func(o *Options) { o.Station = "a/b" }, want: []string{`station id "a/b"`}},
		{name: "no listen address", change: func(o *Options) { o.Listen = "" }, want: []string{"listen: empty address"}},
		{name: "TLS listener without config", change: func(o *Options) { o.TLSListen = ":8883" },
			want: []string{"tls_listen and a TLS config go together"}},
		{name: "nil sink", nilSink: true, want: []string{"nil sink"}},
		{name: "plain-text password", change: func(o *Options) { o.Users[0].PasswordHash = "devpass" },
			want: []string{`users[0] "device1": password hash is not bcrypt`}},
		{name: "duplicate user", change: func(o *Options) { o.Users = append(o.Users, o.Users[0]) },
			want: []string{`users[4] "device1": duplicate name`}},
		{name: "unnamed user", change: func(o *Options) { o.Users[1].Name = "" }, want: []string{"users[1]: empty name"}},
		{name: "unknown role", change: func(o *Options) { o.Users[1].Role = "root" },
			want: []string{`users[1] "viewer1": role "root": want device, viewer or admin`}},
		{name: "bad filter", change: func(o *Options) { o.Users[3].Subscribe = []string{"a/#/b"} },
			want: []string{`users[3] "gateway": invalid topic filter "a/#/b"`}},
		{name: "negative max clients", change: func(o *Options) { o.MaxClients = -1 },
			want: []string{"max clients -1: must not be negative"}},
		{name: "tiny packets", change: func(o *Options) { o.MaxPacketSize = 10 },
			want: []string{"max packet size 10: want at least 256 bytes"}},
		{name: "sub-second expiry", change: func(o *Options) { o.MessageExpiry = time.Millisecond },
			want: []string{"message expiry 1ms: want between 1s and"}},
		{name: "every problem at once", change: func(o *Options) { o.Station = ""; o.Listen = "" },
			want: []string{"empty station id", "listen: empty address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good()
			if tt.change != nil {
				tt.change(&o)
			}
			var sink Sink = newFakeSink()
			if tt.nilSink {
				sink = nil
			}
			_, err := New(o, sink)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	b, err := New(good(), newFakeSink())
	require.NoError(t, err)
	assert.Nil(t, b.Addr(), "nothing is bound before Run")
}

func TestRunLifecycle(t *testing.T) {
	b, _ := startBroker(t, nil)
	assert.ErrorIs(t, b.Run(t.Context()), ErrRunning, "a broker runs once")

	other, err := New(Options{Station: station, Listen: b.Addr().String()}, newFakeSink())
	require.NoError(t, err)
	err = other.Run(t.Context())
	require.Error(t, err, "the address is taken")
	assert.Contains(t, err.Error(), "address already in use")
}

// TestListenBeforeRun: Listen finds a port in use before anything runs; after it, Run
// serves the bound port, and a Run whose context is already done releases it.
func TestListenBeforeRun(t *testing.T) {
	b, _ := startBroker(t, nil)
	other, err := New(Options{Station: station, Listen: b.Addr().String(), AllowAnonymous: true}, newFakeSink())
	require.NoError(t, err)
	err = other.Listen()
	require.Error(t, err, "the address is taken")
	assert.Contains(t, err.Error(), "address already in use")

	bound, err := New(Options{Station: station, Listen: "127.0.0.1:0", AllowAnonymous: true}, newFakeSink())
	require.NoError(t, err)
	require.NoError(t, bound.Listen())
	require.NoError(t, bound.Listen(), "a second Listen keeps what the first bound")
	addr := bound.lns[0].Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, bound.Run(ctx))
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err, "Run released the port Listen bound")
	require.NoError(t, ln.Close())
}

// Stopping the broker while a publish is being stored cancels the store and leaves the
// publish unacknowledged; Run still returns.
func TestShutdownDuringIngest(t *testing.T) {
	sink := newFakeSink()
	sink.block = true
	b, err := New(Options{Station: station, Listen: "127.0.0.1:0", Users: testUsers(),
		Logger: slog.New(slog.DiscardHandler)}, sink)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	<-b.Ready()

	c := mustConnectV3(t, b, "device1", "devpass")
	tok := c.Publish(phTopic, 1, false, phBody)
	select {
	case <-sink.entered:
	case <-time.After(guard):
		t.Fatal("the publish never reached the sink")
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(guard):
		t.Fatal("Run did not return")
	}
	if tok.WaitTimeout(0) {
		assert.Error(t, tok.Error(), "the publish must not have been acknowledged")
	}
	assert.Equal(t, int64(0), b.Stats().Rejects[ReasonStoreFailure], "shutdown is not a store failure")
}

func TestPublishOutputs(t *testing.T) {
	b, _ := startBroker(t, nil)
	wqi := payload.Topic(station, LeafWQI)
	alerts := payload.Topic(station, LeafAlerts)
	body := []byte(`{"wqi": 72.4, "class": "good"}`)
	require.NoError(t, b.Publish(wqi, body, true, 0))
	body[0] = 'X' // the broker keeps its own copy

	viewer := mustConnectV5(t, b, "viewer1", "viewpass")
	_, err := viewer.subscribe(t, payload.Topic(station, "#"), 1)
	require.NoError(t, err)
	p := viewer.next(t)
	assert.Equal(t, wqi, p.Topic)
	assert.True(t, p.Retain, "the WQI is retained")
	assert.Equal(t, `{"wqi": 72.4, "class": "good"}`, string(p.Payload))

	require.NoError(t, b.Publish(alerts, []byte(`{"rule": "do_low"}`), false, 1))
	p = viewer.next(t)
	assert.Equal(t, alerts, p.Topic)
	assert.Equal(t, byte(1), p.QoS)

	for _, topic := range []string{payload.Topic("OTHER", LeafWQI), "purehealth/" + station + "/",
		"purehealth/" + station, "$SYS/x", payload.Topic(station, "#"), "other/" + station + "/wqi"} {
		assert.ErrorIs(t, b.Publish(topic, nil, false, 0), ErrForeign, topic)
	}
	assert.ErrorIs(t, b.Publish(wqi, nil, false, 3), ErrInvalidQoS)
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ph-agent"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestTLSListener(t *testing.T) {
	cert, pool := selfSigned(t)
	b, sink := startBroker(t, func(o *Options) {
		o.TLSListen = "127.0.0.1:0"
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	})
	require.NotNil(t, b.TLSAddr())
	c := mustConnectV3(t, b, "device1", "devpass", func(o *pahov3.ClientOptions) {
		o.Servers = nil
		o.AddBroker("ssl://" + b.TLSAddr().String())
		o.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	})
	require.NoError(t, waitToken(t, c.Publish(phTopic, 1, false, phBody)))
	assert.Equal(t, wantPH(), storedBeforeAck(t, sink))

	// A plain-text client on the TLS port gets nowhere.
	_, _, err := connectV5At(t, b.TLSAddr().String(), "device1", "devpass")
	require.Error(t, err)
}

// Idle sockets that never log in hold only the pending places, a few per remote address
// and each for the connect timeout, so the station's devices can still connect: 1,100 of
// them used to lock every device out.
func TestIdleSocketsDoNotLockOutDevices(t *testing.T) {
	b, sink := startBroker(t, func(o *Options) { o.MaxClients = 20 })
	attacker := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	for range 3 * (20 + pendingConns) {
		c, err := attacker.Dial("tcp", b.Addr().String())
		require.NoError(t, err)
		idle = append(idle, c)
	}
	// The sockets beyond the address's share were closed at once.
	for _, c := range idle[pendingPerIP:] {
		waitClosed(t, c)
	}
	assert.GreaterOrEqual(t, b.Stats().ConnsRefused, int64(len(idle)-pendingPerIP))

	device := mustConnectV3(t, b, "device1", "devpass")
	require.NoError(t, waitToken(t, device.Publish(phTopic, 1, false, phBody)))
	assert.Equal(t, wantPH(), storedBeforeAck(t, sink))
}

// Anonymous clients cannot take the places kept for the configured users.
func TestRoomKeptForConfiguredUsers(t *testing.T) {
	b, _ := startBroker(t, func(o *Options) { o.MaxClients, o.AllowAnonymous = 10, true })
	for range 9 {
		mustConnectV5(t, b, "", "")
	}
	_, ca, err := connectV5(t, b, "", "")
	require.Error(t, err)
	require.NotNil(t, ca)
	assert.Equal(t, byte(0x89), ca.ReasonCode, "server busy for one more anonymous client")
	mustConnectV5(t, b, "device1", "devpass")
}

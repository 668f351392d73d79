package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// pendingConns is how many connections may be open and not yet logged in (still in TLS or
// sending CONNECT), beyond MaxClients: room for mochi to answer "server busy" too. Idle
// sockets can hold only these places, never an admitted client's, and each only for the
// connect timeout.
const pendingConns = 64

// pendingPerIP is how many of the pending places one remote address may hold, so that a
// host opening idle sockets in a loop leaves room for the station's devices.
const pendingPerIP = 8

// closeGrace bounds how long shutdown waits for the broker to say goodbye to each client
// before the connections are cut.
const closeGrace = 2 * time.Second

// listener is a TCP (or TLS) listener for mochi. It replaces mochi's own TCP listener, which
// stops accepting for good on the first Accept error (EMFILE included), reads CONNECT without
// a deadline (an idle socket holds a goroutine forever) and has no limit on open sockets.
//
// The accept loop and one goroutine per connection belong to the listener; Close returns
// after all of them have exited.
type listener struct {
	id             string
	ln             net.Listener
	log            *slog.Logger
	connectTimeout time.Duration // to finish the TLS handshake and CONNECT
	maxConns       int
	refused        *atomic.Int64 // connections refused at the limit
	// goodbye, when set, replaces mochi's CloseFn at Close (see Broker.disconnectListener).
	goodbye func(listenerID string)

	mu        sync.Mutex
	conns     map[net.Conn]*connState
	pending   int            // connections not yet admitted
	pendingAt map[string]int // of pending, by remote IP
	closed    bool
	done      chan struct{}
	wg        sync.WaitGroup // the accept loop and the connection goroutines
}

var _ listeners.Listener = (*listener)(nil)

// listen binds addr. The caller must call startServing once mochi has the listener, and Close.
func listen(id, addr string, cfg *tls.Config, connectTimeout time.Duration, maxConns int,
	refused *atomic.Int64, log *slog.Logger) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt %s listener: %w", id, err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	return &listener{
		id:             id,
		ln:             ln,
		log:            log.With("listener", id),
		connectTimeout: connectTimeout,
		maxConns:       maxConns,
		refused:        refused,
		conns:          make(map[net.Conn]*connState),
		pendingAt:      make(map[string]int),
		done:           make(chan struct{}),
	}, nil
}

// Addr is the bound address.
func (l *listener) Addr() net.Addr { return l.ln.Addr() }

// ID, Address, Protocol and Init complete mochi's listeners.Listener.
func (l *listener) ID() string              { return l.id }
func (l *listener) Address() string         { return l.ln.Addr().String() }
func (l *listener) Protocol() string        { return "tcp" }
func (l *listener) Init(*slog.Logger) error { return nil } // bound by listen

// expectServe registers the accept loop that mochi is about to start with Serve.
func (l *listener) expectServe() { l.wg.Add(1) }

// Serve accepts connections until Close, handing each to establish on its own goroutine.
func (l *listener) Serve(establish listeners.EstablishFn) {
	defer l.wg.Done()
	var delay time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if l.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and go on serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed", "error", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		conn = newBatchConn(conn)
		if !l.track(conn) {
			l.refused.Add(1)
			l.log.Debug("connection refused: too many open", "remote", conn.RemoteAddr())
			if err := conn.Close(); err != nil {
				l.log.Debug("close refused connection", "error", err)
			}
			continue
		}
		go l.handle(conn, establish)
	}
}

func (l *listener) handle(conn net.Conn, establish listeners.EstablishFn) {
	defer l.untrack(conn)
	// mochi replaces this deadline with the keepalive one once the client is admitted.
	if err := conn.SetDeadline(time.Now().Add(l.connectTimeout)); err != nil {
		l.log.Debug("connection dropped", "remote", conn.RemoteAddr(), "error", err)
		return
	}
	if err := establish(l.id, conn); err != nil {
		l.log.Debug("connection ended", "remote", conn.RemoteAddr(), "error", err)
	}
}

// connState is what the listener knows of one connection.
type connState struct {
	ip       string
	admitted bool
}

func remoteIP(conn net.Conn) string {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
	return host
}

func (l *listener) track(conn net.Conn) bool {
	ip := remoteIP(conn)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(l.conns) >= l.maxConns || l.pending >= pendingConns || l.pendingAt[ip] >= pendingPerIP {
		return false
	}
	l.conns[conn] = &connState{ip: ip}
	l.pending++
	l.pendingAt[ip]++
	l.wg.Add(1)
	return true
}

// admit moves conn from the pending places to the admitted clients. The broker calls it
// once the client has logged in.
func (l *listener) admit(conn net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cs := l.conns[conn]; cs != nil && !cs.admitted {
		cs.admitted = true
		l.unpendLocked(cs)
	}
}

func (l *listener) unpendLocked(cs *connState) {
	l.pending--
	if l.pendingAt[cs.ip]--; l.pendingAt[cs.ip] <= 0 {
		delete(l.pendingAt, cs.ip)
	}
}

func (l *listener) untrack(conn net.Conn) {
	l.mu.Lock()
	if cs := l.conns[conn]; cs != nil && !cs.admitted {
		l.unpendLocked(cs)
	}
	delete(l.conns, conn)
	l.mu.Unlock()
	// mochi has closed an admitted client's socket already; this closes the others.
	if err := conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		l.log.Debug("close connection", "error", err)
	}
	l.wg.Done()
}

func (l *listener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Close stops accepting, lets mochi disconnect its clients (closeClients), cuts every
// connection still open, including those that never finished CONNECT, and waits for the
// listener's goroutines. It is idempotent.
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.done)
	open := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		open = append(open, c)
	}
	l.mu.Unlock()

	cut := func() {
		for _, c := range open {
			if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				l.log.Debug("close connection", "error", err)
			}
		}
	}
	// A client whose socket is not draining would block mochi's goodbye forever.
	stuck := time.AfterFunc(closeGrace, cut)
	if l.goodbye != nil {
		closeClients = l.goodbye
	}
	closeClients(l.id)
	stuck.Stop()
	if err := l.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		l.log.Warn("close listener", "error", err)
	}
	cut()
	l.wg.Wait()
}

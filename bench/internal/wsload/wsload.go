// Package wsload is the client side of the live fan-out benchmark: many real WebSocket
// clients (github.com/gorilla/websocket, whatever the server is), each subscribed to one
// station, that note for every event they receive how long it took since the publisher
// stamped it, and check that the events come in id order; and a few slow clients,
// subscribed to every station, that never read.
//
// Event data must carry "sent_ns", the publisher's wall clock in Unix nanoseconds (the
// clients run on the same machine, so the clocks agree). Connect starts one reader
// goroutine per client; Close closes every connection and returns after they all ended.
package wsload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sync/errgroup"
)

// Config describes the clients.
type Config struct {
	URL      string   // ws://host:port/ws
	Clients  int      // readers; client i subscribes to Stations[i % len(Stations)]
	Stations []string // at least one
	Slow     int      // clients of "*" that never read (4 KiB socket receive buffer)
	// DialConcurrency bounds handshakes in flight, default 64.
	DialConcurrency int
}

// Load is a set of connected clients.
type Load struct {
	clients  []*client
	slow     []*websocket.Conn
	wg       sync.WaitGroup
	received atomic.Int64
	closing  atomic.Bool
	failed   atomic.Int64 // readers whose connection failed before Close
}

type client struct {
	conn    *websocket.Conn
	station string

	// Owned by the reader goroutine until it ends.
	latencies  []int32 // microseconds
	lastID     int64
	outOfOrder int
}

// Connect dials every client, subscribes it and waits for the acknowledgement, then
// starts the readers. On error the clients connected so far are closed.
func Connect(ctx context.Context, cfg Config) (*Load, error) {
	if cfg.Clients < 1 || len(cfg.Stations) == 0 {
		return nil, errors.New("wsload: need clients and stations")
	}
	if cfg.DialConcurrency <= 0 {
		cfg.DialConcurrency = 64
	}
	l := &Load{clients: make([]*client, cfg.Clients), slow: make([]*websocket.Conn, cfg.Slow)}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.DialConcurrency)
	for i := range cfg.Clients {
		g.Go(func() error {
			station := cfg.Stations[i%len(cfg.Stations)]
			conn, err := dial(gctx, cfg.URL, station, false)
			if err != nil {
				return fmt.Errorf("client %d: %w", i, err)
			}
			l.clients[i] = &client{conn: conn, station: station}
			return nil
		})
	}
	for i := range cfg.Slow {
		g.Go(func() error {
			conn, err := dial(gctx, cfg.URL, "*", true)
			if err != nil {
				return fmt.Errorf("slow client %d: %w", i, err)
			}
			l.slow[i] = conn
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		l.closeAll()
		return nil, err
	}
	for _, c := range l.clients {
		l.wg.Go(func() { l.read(c) })
	}
	return l, nil
}

func dial(ctx context.Context, url, station string, slow bool) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	if slow {
		nd := &net.Dialer{}
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := nd.DialContext(ctx, network, addr)
			if err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					err = tc.SetReadBuffer(4096)
				}
			}
			return conn, err
		}
	}
	conn, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	sub, err := json.Marshal(map[string]any{"type": "subscribe", "stations": []string{station}})
	if err == nil {
		err = conn.WriteMessage(websocket.TextMessage, sub)
	}
	if err == nil {
		err = waitAck(conn)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// waitAck reads up to the server's acknowledgement of the subscription.
func waitAck(conn *websocket.Conn) error {
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return err
	}
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("wait for the subscription: %w", err)
		}
		if bytes.Contains(data, []byte(`"subscribed"`)) {
			return conn.SetReadDeadline(time.Time{})
		}
	}
}

// read is a client's reader goroutine.
func (l *Load) read(c *client) {
	var buf bytes.Buffer
	for {
		_, r, err := c.conn.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			if !l.closing.Load() {
				l.failed.Add(1)
			}
			return
		}
		now := time.Now().UnixNano()
		msg := buf.Bytes()
		sent, ok := intField(msg, `"sent_ns":`)
		if !ok {
			continue // not a benchmark event
		}
		id, _ := intField(msg, `"id":`)
		if id <= c.lastID {
			c.outOfOrder++
		}
		c.lastID = id
		c.latencies = append(c.latencies, int32(min((now-sent)/1000, 1<<31-1)))
		l.received.Add(1)
	}
}

// intField reads the integer after key in msg.
func intField(msg []byte, key string) (int64, bool) {
	i := bytes.Index(msg, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := msg[i+len(key):]
	j := 0
	for j < len(rest) && (rest[j] == '-' || rest[j] >= '0' && rest[j] <= '9') {
		j++
	}
	v, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return v, err == nil
}

// Received is how many benchmark events the readers have received so far.
func (l *Load) Received() int64 { return l.received.Load() }

// Result is what the readers saw.
type Result struct {
	Latencies  []time.Duration // every event's delivery latency, sorted
	Frames     int64
	OutOfOrder int            // events with an id not above the previous one
	Failed     int            // readers whose connection failed before Close
	PerStation map[string]int // events received, per station, by the client of that station that received the fewest
}

// Percentile returns the q-quantile (0..1) of the latencies.
func (r Result) Percentile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(r.Latencies)-1))
	return r.Latencies[i]
}

// Close closes every connection, waits for the readers and returns what they saw.
func (l *Load) Close() Result {
	l.closing.Store(true)
	l.closeAll()
	l.wg.Wait()
	res := Result{Frames: l.received.Load(), Failed: int(l.failed.Load()), PerStation: map[string]int{}}
	total := 0
	for _, c := range l.clients {
		total += len(c.latencies)
	}
	res.Latencies = make([]time.Duration, 0, total)
	for _, c := range l.clients {
		for _, us := range c.latencies {
			res.Latencies = append(res.Latencies, time.Duration(us)*time.Microsecond)
		}
		res.OutOfOrder += c.outOfOrder
		if n, ok := res.PerStation[c.station]; !ok || len(c.latencies) < n {
			res.PerStation[c.station] = len(c.latencies)
		}
	}
	slices.Sort(res.Latencies)
	return res
}

func (l *Load) closeAll() {
	for _, c := range l.clients {
		if c != nil {
			c.conn.Close()
		}
	}
	for _, c := range l.slow {
		if c != nil {
			c.Close()
		}
	}
}

// Package gorillahub is the reference the live fan-out benchmark compares ph-cloud with: a
// minimal WebSocket hub on github.com/gorilla/websocket with the same logic and the same
// wire protocol. It follows the cloud's live events the same way a ph-cloud replica does
// (LISTEN ph_events, then read the events after the last id from PostgreSQL), encodes
// each event once as the same message, and fans it out to the clients subscribed to its
// station through a bounded queue per client; publishing never waits, and a client whose
// queue is full is evicted (1008). Each connection has one reader goroutine (subscribe
// messages) and one writer goroutine (messages, pings), as gorilla requires.
//
// Serve owns every goroutine it starts and returns after they all ended.
package gorillahub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
)

// Options configure the hub. Zero fields mean the defaults, which equal ph-cloud's.
type Options struct {
	DatabaseURL  string
	Queue        int           // messages waiting per client before it is evicted, default 4096
	WriteTimeout time.Duration // default 10s
	PingInterval time.Duration // default 30s
	PollInterval time.Duration // default 5s
	Log          *slog.Logger  // default: discard
}

func (o *Options) fill() {
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Stats are the hub's counters (GET /stats).
type Stats struct {
	Clients      int64 `json:"clients"`
	MessagesSent int64 `json:"messages_sent"`
	Evictions    int64 `json:"evictions"`
	Events       int64 `json:"events"`
}

type hub struct {
	opts Options

	mu        sync.Mutex
	byStation map[string]map[*client]struct{}
	all       map[*client]struct{}
	conns     sync.WaitGroup

	clients, sent, evictions, events atomic.Int64
}

type client struct {
	send     chan []byte
	evict    chan struct{}
	evictOne sync.Once
	stations map[string]bool // guarded by hub.mu
	all      bool
}

// Serve listens on ln until ctx ends: GET /ws (subscribe messages as ph-cloud's) and GET
// /stats. It returns after closing every connection and stopping its goroutines.
func Serve(ctx context.Context, ln net.Listener, opts Options) error {
	opts.fill()
	h := &hub{opts: opts, byStation: map[string]map[*client]struct{}{}, all: map[*client]struct{}{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) { h.serve(ctx, w, r) })
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(Stats{Clients: h.clients.Load(), MessagesSent: h.sent.Load(), //nolint:errcheck // best effort
			Evictions: h.evictions.Load(), Events: h.events.Load()})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	feedErr := make(chan error, 1)
	feedCtx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	go func() { feedErr <- h.feed(feedCtx) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-feedErr:
		err = fmt.Errorf("feed: %w", err)
		feedErr <- nil
	case err = <-serveErr:
		serveErr <- nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err = errors.Join(err, srv.Shutdown(sctx))
	stopFeed()
	<-feedErr
	if serr := <-serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	h.conns.Wait() // the handlers end with ctx
	return err
}

var upgrader = websocket.Upgrader{} // defaults: the HTTP server's buffers, same-origin check

func (h *hub) serve(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	// Counted before the upgrade: Shutdown waits for the handler until it hijacks.
	h.conns.Add(1)
	defer h.conns.Done()
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	h.clients.Add(1)
	defer h.clients.Add(-1)
	defer conn.Close()
	conn.SetReadLimit(16 << 10)
	c := &client{send: make(chan []byte, h.opts.Queue), evict: make(chan struct{}), stations: map[string]bool{}}
	defer h.remove(c)

	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var m struct {
				Type     string   `json:"type"`
				Stations []string `json:"stations"`
			}
			if json.Unmarshal(data, &m) != nil {
				continue
			}
			h.change(c, m.Type == "subscribe", m.Stations)
		}
	}()
	ping := time.NewTicker(h.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case msg := <-c.send:
			conn.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout)) //nolint:errcheck // a failed write says it
			if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				conn.Close()
				<-readerDone
				return
			}
			h.sent.Add(1)
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(h.opts.WriteTimeout)); err != nil {
				conn.Close()
				<-readerDone
				return
			}
		case <-c.evict:
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "slow consumer"), //nolint:errcheck // closing anyway
				time.Now().Add(time.Second))
			conn.Close()
			<-readerDone
			return
		case <-readerDone:
			return
		case <-ctx.Done():
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), //nolint:errcheck // closing anyway
				time.Now().Add(time.Second))
			conn.Close()
			<-readerDone
			return
		}
	}
}

// change applies a subscribe or unsubscribe and queues the acknowledgement the load
// generator waits for (the same shape as ph-cloud's).
func (h *hub) change(c *client, subscribe bool, stations []string) {
	h.mu.Lock()
	for _, s := range stations {
		switch {
		case s == "*" && subscribe:
			c.all = true
			h.all[c] = struct{}{}
		case s == "*":
			c.all = false
			delete(h.all, c)
		case subscribe:
			c.stations[s] = true
			m := h.byStation[s]
			if m == nil {
				m = map[*client]struct{}{}
				h.byStation[s] = m
			}
			m[c] = struct{}{}
		default:
			delete(c.stations, s)
			delete(h.byStation[s], c)
		}
	}
	h.mu.Unlock()
	ack, _ := json.Marshal(map[string]any{"type": "status", "id": 0, "time": time.Now().UTC(),
		"data": map[string]any{"subscribed": stations}})
	h.offer(c, ack)
}

func (h *hub) remove(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.all, c)
	for s := range c.stations {
		delete(h.byStation[s], c)
	}
}

// offer queues msg for c without waiting, or evicts c.
func (h *hub) offer(c *client, msg []byte) {
	select {
	case c.send <- msg:
	default:
		c.evictOne.Do(func() {
			h.evictions.Add(1)
			close(c.evict)
		})
	}
}

func (h *hub) publish(station string, msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events.Add(1)
	for c := range h.byStation[station] {
		if !c.all {
			h.offer(c, msg)
		}
	}
	for c := range h.all {
		h.offer(c, msg)
	}
}

// feed follows the events table as a ph-cloud replica does.
func (h *hub) feed(ctx context.Context) error {
	listen, err := pgx.Connect(ctx, h.opts.DatabaseURL)
	if err != nil {
		return err
	}
	defer listen.Close(context.WithoutCancel(ctx))
	query, err := pgx.Connect(ctx, h.opts.DatabaseURL)
	if err != nil {
		return err
	}
	defer query.Close(context.WithoutCancel(ctx))
	if _, err := listen.Exec(ctx, "LISTEN ph_events"); err != nil {
		return err
	}
	var last int64
	if err := query.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM events").Scan(&last); err != nil {
		return err
	}
	for ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(ctx, h.opts.PollInterval)
		n, err := listen.WaitForNotification(wctx)
		cancel()
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && listen.IsClosed() {
			return err
		}
		if n != nil {
			if id, perr := strconv.ParseInt(n.Payload, 10, 64); perr == nil && id <= last {
				continue
			}
		}
		for ctx.Err() == nil {
			got, err := h.fetch(ctx, query, &last)
			if err != nil {
				return err
			}
			if got < 1000 {
				break
			}
		}
	}
	return nil
}

func (h *hub) fetch(ctx context.Context, conn *pgx.Conn, last *int64) (int, error) {
	rows, err := conn.Query(ctx, `SELECT id, station_id, type, time, data FROM events WHERE id > $1 ORDER BY id LIMIT 1000`, *last)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var m struct {
			Type    string          `json:"type"`
			ID      int64           `json:"id"`
			Station string          `json:"station,omitempty"`
			Time    time.Time       `json:"time"`
			Data    json.RawMessage `json:"data"`
		}
		var data []byte
		if err := rows.Scan(&m.ID, &m.Station, &m.Type, &m.Time, &data); err != nil {
			return n, err
		}
		m.Data, m.Time = data, m.Time.UTC()
		msg, err := json.Marshal(m)
		if err != nil {
			return n, err
		}
		h.publish(m.Station, msg)
		*last = m.ID
		n++
	}
	return n, rows.Err()
}

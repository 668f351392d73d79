package fanout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Close reasons sent to clients.
const (
	reasonSlow     = "slow consumer"
	reasonShutdown = "server shutting down"
)

// client is one connection's place in the hub.
type client struct {
	queue    chan delivery
	pending  atomic.Int64  // events queued and not yet written
	kick     chan struct{} // closed on eviction
	kickOnce sync.Once

	// Guarded by Hub.mu.
	f         filter // a copy of the session's
	live      bool   // routed: the hub queues its events
	lastChunk uint64 // the last chunk offered
}

func (c *client) kicked() bool {
	select {
	case <-c.kick:
		return true
	default:
		return false
	}
}

func (h *Hub) serveWS(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, nil)
}

func (h *Hub) serveStation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !telemetry.ValidStationID(id) {
		h.refuse(w, http.StatusBadRequest, "not a station id")
		return
	}
	req := request{subscribe: true, stations: []string{id}}
	if s := r.URL.Query().Get("since"); s != "" {
		since, err := ParseSince(s)
		if err != nil {
			h.refuse(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), errRequest.Error()+": "))
			return
		}
		req.since = &since
	}
	h.serve(w, r, &req)
}

func (h *Hub) refuse(w http.ResponseWriter, status int, msg string) {
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	http.Error(w, msg, status)
}

// serve runs one connection: the checks before the upgrade, then the writer loop in this
// goroutine with a reader goroutine beside it.
func (h *Hub) serve(w http.ResponseWriter, r *http.Request, initial *request) {
	if !h.originAllowed(r) {
		h.stats.rejectOrigin.Add(1)
		h.refuse(w, http.StatusForbidden, "origin not allowed")
		return
	}
	if !h.waitReady(r.Context()) {
		h.stats.rejectReady.Add(1)
		h.refuse(w, http.StatusServiceUnavailable, "live events are not available yet")
		return
	}
	if initial != nil {
		unknown, err := h.src.UnknownStations(r.Context(), initial.stations)
		if err != nil {
			h.log.Warn("live events: look up station", "err", err)
			h.refuse(w, http.StatusServiceUnavailable, "database unavailable, retry later")
			return
		}
		if len(unknown) > 0 {
			h.stats.rejectStation.Add(1)
			h.refuse(w, http.StatusNotFound, "no station "+initial.stations[0])
			return
		}
	}
	if n := h.clients.Add(1); n > int64(h.opts.MaxClients) {
		h.clients.Add(-1)
		h.stats.rejectFull.Add(1)
		h.refuse(w, http.StatusServiceUnavailable, "too many live clients on this server")
		return
	}
	defer h.clients.Add(-1)
	if !h.admit() {
		h.refuse(w, http.StatusServiceUnavailable, reasonShutdown)
		return
	}
	c := &client{queue: make(chan delivery, chunkQueue), kick: make(chan struct{})}
	defer h.leave(c)

	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OriginPatterns:  h.opts.AllowedOrigins,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		h.log.Debug("live events: handshake failed", "err", err)
		return
	}
	h.stats.connections.Add(1)
	conn.SetReadLimit(h.opts.ReadLimit)

	// The connection's contexts. Cancelling readCtx closes the connection at once (it is
	// the context of the read in progress); ctx (database work, pings) ends with the
	// connection or the hub. Writes take no context: the watchdog ends stuck ones.
	readCtx, cancelRead := context.WithCancel(context.WithoutCancel(r.Context()))
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	s := &session{h: h, c: c, conn: conn, cancelRead: cancelRead, cancel: cancel, requests: make(chan request),
		readerDone: make(chan struct{}), writerDone: make(chan struct{})}
	h.watch(s)
	defer h.unwatch(s)
	go s.read(readCtx)
	s.write(ctx, initial)
	close(s.writerDone)
	cancelRead()
	if err := conn.CloseNow(); err != nil && !errors.Is(err, net.ErrClosed) {
		h.log.Debug("live events: close", "err", err)
	}
	<-s.readerDone
}

// originAllowed applies the same rule as websocket.Accept (which checks again): no
// Origin (not a browser), the same host, or a configured pattern.
func (h *Hub) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range h.opts.AllowedOrigins {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(p), strings.ToLower(target)); err == nil && ok {
			return true
		}
	}
	return false
}

// session is the state of one connection, owned by its writer (the handler goroutine)
// except where noted.
type session struct {
	h          *Hub
	c          *client
	conn       *websocket.Conn
	cancelRead context.CancelFunc
	cancel     context.CancelFunc // ends the session's context (the hub's shutdown)
	requests   chan request       // reader -> writer
	readerDone chan struct{}      // closed by the reader
	writerDone chan struct{}      // closed by the writer

	// readErr is set by the reader before it closes readerDone.
	readErr error

	// For the watchdog: when the write in progress began (Unix ns, 0 when none), and
	// whether the watchdog closed the connection because of it.
	writing  atomic.Int64
	timedOut atomic.Bool

	resume     int64  // every wanted event up to here has been sent
	subscribed bool   // a subscribe has been handled
	f          filter // the subscription; the hub routes by a copy
}

// read is the reader goroutine: it parses client messages and hands them to the writer;
// pongs and close frames are handled inside conn.Read.
func (s *session) read(ctx context.Context) {
	defer close(s.readerDone)
	lim := rate.NewLimiter(rate.Limit(s.h.opts.MessageRate), s.h.opts.MessageBurst)
	for {
		typ, data, err := s.conn.Read(ctx)
		if err != nil {
			s.readErr = err
			return
		}
		if !lim.Allow() {
			s.h.stats.closedByLimit.Add(1)
			s.readErr = errTooManyMessages
			return
		}
		var req request
		if typ != websocket.MessageText {
			err = fmt.Errorf("%w: send text messages of JSON", errRequest)
		} else {
			req, err = parseRequest(data, s.h.opts.MaxStations)
		}
		if err != nil {
			req = request{err: err}
		}
		select {
		case s.requests <- req:
		case <-s.writerDone:
			return
		}
	}
}

var errTooManyMessages = errors.New("too many messages")

// write is the writer loop.
func (s *session) write(ctx context.Context, initial *request) {
	h := s.h
	if initial != nil && !s.handle(ctx, *initial) {
		return
	}
	ping := time.NewTicker(h.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case d := <-s.c.queue:
			for _, f := range d.chunk.frames {
				if !s.send(ctx, f) {
					return
				}
			}
			s.c.pending.Add(-int64(d.n))
		case req := <-s.requests:
			if !s.handle(ctx, req) {
				return
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, h.opts.WriteTimeout)
			err := s.conn.Ping(pctx)
			cancel()
			if err != nil {
				if s.c.kicked() {
					s.evicted()
				} else if ctx.Err() == nil && pctx.Err() != nil {
					h.stats.evictPing.Add(1)
				}
				return
			}
		case <-s.c.kick:
			s.evicted()
			return
		case <-s.readerDone:
			if errors.Is(s.readErr, errTooManyMessages) {
				s.close(websocket.StatusPolicyViolation, "too many messages")
			}
			return
		case <-h.closing:
			s.close(websocket.StatusGoingAway, reasonShutdown)
			return
		}
	}
}

// evicted closes the connection of a client that could not keep up: with 1008 when the
// close frame goes out within CloseTimeout, at once otherwise.
func (s *session) evicted() {
	s.h.stats.evictSlow.Add(1)
	s.close(websocket.StatusPolicyViolation, reasonSlow)
}

// close runs the close handshake, cut short after CloseTimeout.
func (s *session) close(code websocket.StatusCode, reason string) {
	// Cancelling the reader's context closes the connection under the handshake.
	t := time.AfterFunc(s.h.opts.CloseTimeout, s.cancelRead)
	defer t.Stop()
	if err := s.conn.Close(code, reason); err != nil {
		s.h.log.Debug("live events: close handshake", "code", code, "err", err)
	}
}

// send writes a frame's events unless they are duplicates or no longer wanted.
func (s *session) send(ctx context.Context, f *frame) bool {
	if f.id <= s.resume || !s.f.wants(f.station) {
		return true
	}
	if s.c.kicked() {
		s.evicted()
		return false
	}
	_, ok := s.writeFrame(ctx, f, s.resume, f.id)
	return ok
}

// writeFrame writes the events of f with ids in (after, upto] and moves the resume point
// past each; it returns how many it wrote, and false when the connection failed. A frame
// whose messages cannot be made is logged (once) and stepped over.
func (s *session) writeFrame(ctx context.Context, f *frame, after, upto int64) (int, bool) {
	msgs, err := f.messages()
	if err != nil {
		if f.logged.CompareAndSwap(false, true) {
			s.h.log.Error("live events: cannot encode an event", "err", err)
		}
		s.resume = max(s.resume, min(f.id, upto))
		return 0, true
	}
	n := 0
	for i, msg := range msgs {
		id := f.first + int64(i)
		if id <= after {
			continue
		}
		if id > upto {
			break
		}
		if !s.writeMsg(ctx, msg) {
			return n, false
		}
		s.resume = max(s.resume, id)
		n++
	}
	return n, true
}

// writeMsg writes one message; false ends the connection. The write has no context of
// its own (a context with a deadline costs a timer and a callback per message): the
// hub's watchdog closes the connection under a write that takes longer than
// WriteTimeout, or longer than CloseTimeout once the client is evicted.
func (s *session) writeMsg(_ context.Context, msg []byte) bool {
	s.writing.Store(time.Now().UnixNano())
	err := s.conn.Write(noDeadline, websocket.MessageText, msg)
	s.writing.Store(0)
	if err != nil {
		switch {
		case s.c.kicked():
			s.h.stats.evictSlow.Add(1)
		case s.timedOut.Load():
			s.h.stats.evictWriteTimeout.Add(1)
		}
		return false
	}
	s.h.stats.messages.Add(1)
	return true
}

// noDeadline is the context of writes: it never ends, so coder/websocket arms nothing.
var noDeadline = context.Background()

func (s *session) status(ctx context.Context, st connStatus) bool {
	return s.writeMsg(ctx, statusMessage(s.resume, s.h.opts.Now(), st))
}

// handle applies one client request; false ends the connection.
func (s *session) handle(ctx context.Context, req request) bool {
	if req.err != nil {
		return s.status(ctx, connStatus{Error: strings.TrimPrefix(req.err.Error(), errRequest.Error()+": ")})
	}
	if req.subscribe {
		if s.f.namedAfter(req) > s.h.opts.MaxStations {
			return s.status(ctx, connStatus{Error: fmt.Sprintf("stations: at most %d per connection", s.h.opts.MaxStations)})
		}
		// Only stations of the service may be named: a connection naming made-up ids
		// would hold memory for each.
		if unknown, err := s.h.src.UnknownStations(ctx, s.f.newIn(req)); err != nil {
			s.h.log.Warn("live events: look up stations", "err", err)
			return s.status(ctx, connStatus{Error: "stations cannot be checked now; subscribe again later"})
		} else if len(unknown) > 0 {
			s.h.stats.rejectStation.Add(1)
			return s.status(ctx, connStatus{Error: "stations: no station " + strings.Join(clipIDs(unknown, 5), ", ")})
		}
		if req.since != nil && s.subscribed {
			return s.status(ctx, connStatus{Error: "since: only the first subscribe of a connection resumes; open a new connection"})
		}
	}
	// The writer's filter first, then the hub's copy.
	s.f.apply(req)
	s.h.change(s.c, s.f.clone())
	var replayed *int
	if req.subscribe && !s.subscribed {
		s.subscribed = true
		if req.since == nil {
			s.resume = s.h.goLiveNow(s.c)
		} else {
			n, resync, ok := s.replay(ctx, *req.since)
			if !ok {
				return false
			}
			if resync != "" {
				s.h.stats.resyncs.Add(1)
				if !s.status(ctx, connStatus{Resync: true, Reason: resync}) {
					return false
				}
			}
			replayed = &n
		}
	}
	return s.status(ctx, connStatus{Subscribed: s.f.list(), Replayed: replayed})
}

// replay sends the events after since that the subscription wants and makes the client
// live, with no gap and no duplicate between the two. It returns how many events it
// sent, and a reason when the gap could not be served (the client is then live from the
// current position, which becomes its resume point). ok is false when the connection
// failed.
func (s *session) replay(ctx context.Context, since Since) (n int, resync string, ok bool) {
	h := s.h
	now := h.opts.Now()
	oldest := now.Add(-h.opts.ReplayWindow)
	after := since.ID
	if !since.Time.IsZero() {
		if since.Time.Before(oldest) {
			return s.resyncNow(h.resyncReason(ErrTooOld))
		}
		id, inMemory := h.idBefore(since.Time)
		if !inMemory {
			var err error
			if id, err = h.src.IDBefore(ctx, since.Time); err != nil {
				h.log.Warn("live events: resume: find the time", "err", err)
				return s.resyncNow(reasonUnavailable)
			}
		}
		after = id
	} else if after > h.Position() {
		// Ahead of this replica (which has not read the newest events yet), or an id
		// that never existed: the Source tells.
		if err := h.src.Replay(ctx, ReplayQuery{After: after, Upto: after}, nil); err != nil {
			return s.resyncNow(h.resyncReason(err))
		}
		h.goLiveNow(s.c)
		s.resume = after // what the queue holds up to here the client has
		return 0, "", true
	}

	cursor := after
	for round := 0; round < 4; round++ {
		frames, pos, inMemory := h.goLive(s.c, cursor)
		if inMemory {
			var count int64
			for _, f := range frames {
				count += f.after(cursor)
			}
			if int64(n)+count > int64(h.opts.ReplayMax) {
				s.resume = pos
				return n, h.resyncReason(ErrTooMany), true
			}
			if round == 0 && len(frames) > 0 && frames[0].created.Before(oldest) {
				s.resume = pos
				return n, h.resyncReason(ErrTooOld), true
			}
			for _, f := range frames {
				k, ok := s.writeFrame(ctx, f, cursor, pos)
				n += k
				h.stats.replayed.Add(int64(k))
				if !ok {
					return n, "", false
				}
			}
			s.resume = max(pos, cursor)
			return n, "", true
		}
		// From the Source: (cursor, pos].
		q := ReplayQuery{After: cursor, Upto: pos, Stations: s.f.named(), Max: h.opts.ReplayMax - n, Oldest: oldest}
		err := h.src.Replay(ctx, q, func(e store.Event) error {
			f, err := newFrame(e)
			if err != nil {
				return err
			}
			k, ok := s.writeFrame(ctx, f, cursor, pos)
			n += k
			h.stats.replayed.Add(int64(k))
			if !ok {
				return errWrite
			}
			return nil
		})
		switch {
		case errors.Is(err, errWrite):
			return n, "", false
		case err != nil:
			return s.resyncNow(h.resyncReason(err))
		}
		cursor = pos
	}
	return s.resyncNow("events arrive faster than this resume can catch up")
}

var errWrite = errors.New("write to the client failed")

// reasonUnavailable is the resync reason when the Source failed.
const reasonUnavailable = "the database is unavailable"

// resyncReason is what a resync message says for a Replay's error; the Source's own
// trouble is logged.
func (h *Hub) resyncReason(err error) string {
	switch {
	case errors.Is(err, ErrTooMany):
		return fmt.Sprintf("more than %d events to resume", h.opts.ReplayMax)
	case errors.Is(err, ErrTooOld):
		return "since is older than the replay window of " + h.opts.ReplayWindow.String()
	case errors.Is(err, ErrUnknownID), errors.Is(err, ErrNotKept):
		return err.Error()
	}
	h.log.Warn("live events: resume from the database", "err", err)
	return reasonUnavailable
}

// resyncNow makes the client live from the current position, which becomes its resume
// point, and returns the reason for the resync message.
func (s *session) resyncNow(reason string) (int, string, bool) {
	s.resume = s.h.goLiveNow(s.c)
	return 0, reason, true
}

// clipIDs keeps the first n ids for a message, saying how many more there are.
func clipIDs(ids []string, n int) []string {
	if len(ids) <= n {
		return ids
	}
	return append(ids[:n:n], fmt.Sprintf("and %d more", len(ids)-n))
}

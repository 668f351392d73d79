package fanout

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/store"
)

// Options tune a Hub. Zero fields mean the defaults.
type Options struct {
	// AllowedOrigins are host patterns (path.Match syntax, such as "dash.example.org" or
	// "*.example.org"; with "://" the scheme is matched too) of web pages allowed to
	// connect besides the service's own origin. A bare "*" is refused by New.
	AllowedOrigins []string
	MaxClients     int // connections at once, default 10000
	// Queue is how many events may wait for one client: a client further behind is
	// evicted, default 4096. A batch reaches all its clients at once, so Queue should
	// exceed the largest batch a station sends by a good margin.
	Queue        int
	WriteTimeout time.Duration // one write (or ping answer), default 10s
	CloseTimeout time.Duration // close handshake with an evicted client, default 1s
	PingInterval time.Duration // default 30s
	ReadLimit    int64         // largest client message in bytes, default 16 KiB
	MaxStations  int           // stations one connection may name, default 256
	// MessageRate is how many messages a second a client may send (burst MessageBurst);
	// defaults 5 and 20.
	MessageRate  float64
	MessageBurst int
	ReplayMax    int           // events a resume may send, default 10000; negative: none
	ReplayWindow time.Duration // how old the first missing event may be, default 24h
	// Recent is how many of the latest events the hub keeps in memory, so that most
	// resumes need not ask the Source, default 10000; negative: none.
	Recent int
	// ReadyTimeout is how long a request waits for Run to start, default 10s.
	ReadyTimeout time.Duration
	Log          *slog.Logger     // default: discard
	Now          func() time.Time // default time.Now
}

func (o *Options) fill() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxClients, DefaultMaxClients)
	def(&o.Queue, DefaultQueue)
	defDur(&o.WriteTimeout, DefaultWriteTimeout)
	defDur(&o.CloseTimeout, DefaultCloseTimeout)
	defDur(&o.PingInterval, DefaultPingInterval)
	if o.ReadLimit <= 0 {
		o.ReadLimit = DefaultReadLimit
	}
	def(&o.MaxStations, DefaultMaxStations)
	if o.MessageRate <= 0 {
		o.MessageRate = DefaultMessageRate
	}
	def(&o.MessageBurst, DefaultMessageBurst)
	if o.ReplayMax < 0 {
		o.ReplayMax = 0
	} else if o.ReplayMax == 0 {
		o.ReplayMax = DefaultReplayMax
	}
	defDur(&o.ReplayWindow, DefaultReplayWindow)
	if o.Recent < 0 {
		o.Recent = 0
	} else if o.Recent == 0 {
		o.Recent = DefaultRecent
	}
	defDur(&o.ReadyTimeout, DefaultReadyTimeout)
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Hub is one replica's fan-out. See the package documentation.
type Hub struct {
	src     Source
	opts    Options
	log     *slog.Logger
	ready   chan struct{} // closed once Run knows the position to start from
	closing chan struct{} // closed when Run ends: every connection closes
	clients atomic.Int64  // connections admitted (for MaxClients)
	stats   counters

	mu        sync.Mutex
	last      int64 // highest event id published
	ring      ring
	byStation map[string]map[*client]struct{} // live clients by named station
	all       map[*client]struct{}            // live clients of "*"
	chunkSeq  uint64                          // chunks published
	stopped   bool
	conns     sync.WaitGroup // connection handlers; Add only under mu while !stopped

	sessMu   sync.Mutex
	sessions map[*session]struct{} // for the watchdog and the shutdown
}

// New checks the options and returns a Hub fed by src; nothing runs until Run.
func New(src Source, opts Options) (*Hub, error) {
	opts.fill()
	for _, p := range opts.AllowedOrigins {
		if err := CheckOriginPattern(p); err != nil {
			return nil, fmt.Errorf("allowed origin %w", err)
		}
	}
	return &Hub{
		src: src, opts: opts, log: opts.Log,
		ready: make(chan struct{}), closing: make(chan struct{}),
		ring:      newRing(opts.Recent),
		byStation: map[string]map[*client]struct{}{},
		all:       map[*client]struct{}{},
		sessions:  map[*session]struct{}{},
	}, nil
}

// CheckOriginPattern refuses an allowed-origin pattern that would let any web page
// connect, or that is not a pattern at all.
func CheckOriginPattern(p string) error {
	host := p
	if _, after, ok := strings.Cut(p, "://"); ok {
		host = after
	}
	if host == "" || strings.Trim(host, "*?") == "" {
		return fmt.Errorf("%q would let every web page connect: name the hosts", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q: %w", p, err)
	}
	return nil
}

// Register adds GET /ws and GET /ws/station/{id} to mux.
func (h *Hub) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /ws", h.serveWS)
	mux.HandleFunc("GET /ws/station/{id}", h.serveStation)
}

// Run publishes what the Source follows until ctx ends. When ctx ends it closes every
// connection (1001) and returns once their handlers have all returned, with the error of
// the Source's Follow if it failed. Run must be called once.
func (h *Hub) Run(ctx context.Context) error {
	// The watchdog outlives the feed: it also ends writes stuck during the shutdown.
	stopWatchdog := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { h.watchdog(stopWatchdog) })
	defer func() {
		h.shutdown()
		close(stopWatchdog)
		wg.Wait()
	}()
	if err := h.src.Follow(ctx, h.opts.Recent, h.begin, h.publishEvents); err != nil {
		return fmt.Errorf("live events: %w", err)
	}
	return nil
}

func (h *Hub) watch(s *session) {
	h.sessMu.Lock()
	defer h.sessMu.Unlock()
	h.sessions[s] = struct{}{}
}

func (h *Hub) unwatch(s *session) {
	h.sessMu.Lock()
	defer h.sessMu.Unlock()
	delete(h.sessions, s)
}

// watchdog closes connections under writes that take too long: WriteTimeout, or
// CloseTimeout for an evicted client or during the shutdown (the client then gets no
// close frame: it does not read). It returns when stop is closed.
func (h *Hub) watchdog(stop <-chan struct{}) {
	every := min(h.opts.CloseTimeout, h.opts.WriteTimeout) / 4
	t := time.NewTicker(max(every, 10*time.Millisecond))
	defer t.Stop()
	var stuck []*session
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		closing := false
		select {
		case <-h.closing:
			closing = true
		default:
		}
		now := time.Now().UnixNano()
		stuck = stuck[:0]
		h.sessMu.Lock()
		for s := range h.sessions {
			w := s.writing.Load()
			if w == 0 || s.timedOut.Load() {
				continue
			}
			age := time.Duration(now - w)
			if age > h.opts.WriteTimeout || (age > h.opts.CloseTimeout && (closing || s.c.kicked())) {
				s.timedOut.Store(true)
				stuck = append(stuck, s)
			}
		}
		h.sessMu.Unlock()
		for _, s := range stuck {
			if err := s.conn.CloseNow(); err != nil {
				h.log.Debug("live events: close a stuck connection", "err", err)
			}
		}
	}
}

// begin sets the position the hub starts from, after which come evs (the newest events,
// kept in memory), and lets connections in.
func (h *Hub) begin(after int64, evs []store.Event) {
	select {
	case <-h.ready: // a Source that starts twice only publishes
		h.publishEvents(evs)
		return
	default:
	}
	frames := h.frames(evs)
	h.mu.Lock()
	h.last = after
	h.ring.reset(after)
	h.mu.Unlock()
	h.publish(frames)
	h.log.Info("live events: starting", "after_id", h.Position(), "in_memory", len(frames))
	close(h.ready)
}

// publishEvents publishes new events, in id order.
func (h *Hub) publishEvents(evs []store.Event) { h.publish(h.frames(evs)) }

// frames encodes evs. An event that cannot be encoded (its data is not JSON) is logged
// and left out, so that it cannot hold up the ones after it.
func (h *Hub) frames(evs []store.Event) []*frame {
	out := make([]*frame, 0, len(evs))
	for _, e := range evs {
		f, err := newFrame(e)
		if err != nil {
			h.log.Error("live events: cannot encode an event", "err", err)
			continue
		}
		out = append(out, f)
	}
	return out
}

// Position returns the id of the newest event the hub has published.
func (h *Hub) Position() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// publish hands frames, in id order, to every live client that wants some of them, as
// one shared chunk. It never waits: a client that is more than Queue events behind is
// evicted.
func (h *Hub) publish(fs []*frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := 0
	for i < len(fs) && fs[i].id <= h.last {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		return
	}
	ch := &chunk{frames: fs, count: map[string]int{}}
	for _, f := range fs {
		h.last = f.id
		h.ring.push(f)
		ch.count[f.station] += int(f.count())
		ch.total += int(f.count())
	}
	h.stats.events.Add(int64(ch.total))
	h.chunkSeq++
	for station := range ch.count {
		for c := range h.byStation[station] {
			h.offer(c, ch)
		}
	}
	for c := range h.all {
		h.offer(c, ch)
	}
}

// offer queues ch for c, once per chunk, or evicts c. h.mu is held.
func (h *Hub) offer(c *client, ch *chunk) {
	if c.lastChunk == h.chunkSeq || !c.live {
		return
	}
	c.lastChunk = h.chunkSeq
	n := ch.total
	if !c.f.all {
		n = 0
		for station, k := range ch.count {
			if c.f.wants(station) {
				n += k
			}
		}
	}
	if c.pending.Add(int64(n)) > int64(h.opts.Queue) {
		h.evictLocked(c)
		return
	}
	select {
	case c.queue <- delivery{ch, n}:
	default:
		h.evictLocked(c)
	}
}

// evictLocked takes c out of the stream and tells its writer. h.mu is held.
func (h *Hub) evictLocked(c *client) {
	h.unrouteLocked(c)
	c.live = false
	c.kickOnce.Do(func() { close(c.kick) }) // a write in progress: see watchdog
}

func (h *Hub) routeLocked(c *client) {
	if c.f.all {
		h.all[c] = struct{}{}
	}
	for s := range c.f.stations {
		m := h.byStation[s]
		if m == nil {
			m = map[*client]struct{}{}
			h.byStation[s] = m
		}
		m[c] = struct{}{}
	}
}

func (h *Hub) unrouteLocked(c *client) {
	delete(h.all, c)
	for s := range c.f.stations {
		if m := h.byStation[s]; m != nil {
			delete(m, c)
			if len(m) == 0 {
				delete(h.byStation, s)
			}
		}
	}
}

// change makes f, a copy of the connection's filter, c's filter (and routes c by it, when
// c is live).
func (h *Hub) change(c *client, f filter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.live {
		h.unrouteLocked(c)
	}
	c.f = f
	if c.live {
		h.routeLocked(c)
	}
}

// goLive makes c live if the memory holds every event after `after`: it returns the
// remembered frames with events after `after` that c wants (in id order; the first may
// hold some at or below it) and the position, from which on c's queue receives the rest.
// Otherwise it returns ok false and the position.
func (h *Hub) goLive(c *client, after int64) (frames []*frame, pos int64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if after < h.ring.start && after < h.last {
		return nil, h.last, false
	}
	h.ring.each(after, func(f *frame) {
		if c.f.wants(f.station) {
			frames = append(frames, f)
		}
	})
	h.goLiveLocked(c)
	return frames, h.last, true
}

// goLiveNow makes c live from the current position and returns it.
func (h *Hub) goLiveNow(c *client) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.goLiveLocked(c)
	return h.last
}

func (h *Hub) goLiveLocked(c *client) {
	if !c.live && !c.kicked() {
		c.live = true
		h.routeLocked(c)
	}
}

// idBefore finds in memory the newest event stored before t; ok is false when the memory
// does not reach back to t.
func (h *Hub) idBefore(t time.Time) (id int64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ring.before(t)
}

// admit registers a connection handler, unless the hub is shutting down.
func (h *Hub) admit() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return false
	}
	h.conns.Add(1)
	return true
}

// leave forgets c and ends its handler's registration.
func (h *Hub) leave(c *client) {
	h.mu.Lock()
	h.unrouteLocked(c)
	c.live = false
	h.mu.Unlock()
	h.conns.Done()
}

// shutdown closes every connection and waits for the handlers.
func (h *Hub) shutdown() {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	close(h.closing)
	h.sessMu.Lock()
	for s := range h.sessions {
		s.cancel() // a resume reading the database stops
	}
	h.sessMu.Unlock()
	h.conns.Wait()
}

// waitReady waits until Run has started, for at most ReadyTimeout.
func (h *Hub) waitReady(ctx context.Context) bool {
	select {
	case <-h.ready:
		return true
	default:
	}
	t := time.NewTimer(h.opts.ReadyTimeout)
	defer t.Stop()
	select {
	case <-h.ready:
		return true
	case <-h.closing:
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// chunk is frames published together, shared by every client that wants some of them.
type chunk struct {
	frames []*frame
	count  map[string]int // events per station
	total  int            // events
}

// delivery is a chunk queued for one client and how many of its frames the client wants.
type delivery struct {
	chunk *chunk
	n     int
}

// chunkQueue bounds the chunks waiting for one client (Queue bounds their events).
const chunkQueue = 64

// ring holds the latest frames, at most size events in all (a batch's frame holds
// many). It holds every published event with an id above start.
type ring struct {
	buf    []*frame
	head   int // index of the oldest frame
	n      int
	events int64 // in the frames held
	start  int64
}

func newRing(size int) ring { return ring{buf: make([]*frame, size)} }

func (r *ring) reset(start int64) {
	clear(r.buf)
	r.head, r.n, r.events, r.start = 0, 0, 0, start
}

func (r *ring) push(f *frame) {
	for r.n > 0 && (r.n == len(r.buf) || r.events+f.count() > int64(len(r.buf))) {
		r.drop()
	}
	if len(r.buf) == 0 || f.count() > int64(len(r.buf)) {
		r.start = f.id
		return
	}
	r.buf[(r.head+r.n)%len(r.buf)] = f
	r.n++
	r.events += f.count()
}

// drop forgets the oldest frame.
func (r *ring) drop() {
	old := r.buf[r.head]
	r.start, r.events = old.id, r.events-old.count()
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}

func (r *ring) at(i int) *frame { return r.buf[(r.head+i)%len(r.buf)] }

// each calls fn for the frames with events above after, oldest first.
func (r *ring) each(after int64, fn func(*frame)) {
	i := sort.Search(r.n, func(i int) bool { return r.at(i).id > after })
	for ; i < r.n; i++ {
		fn(r.at(i))
	}
}

// before returns the id of the newest frame stored before t. ok is false unless the
// oldest frame is older than t (so that nothing before t is missing from the answer).
func (r *ring) before(t time.Time) (int64, bool) {
	if r.n == 0 || !r.at(0).created.Before(t) {
		return 0, false
	}
	i := sort.Search(r.n, func(i int) bool { return !r.at(i).created.Before(t) })
	return r.at(i - 1).id, true
}

// counters are the hub's statistics.
type counters struct {
	connections, messages, events, replayed, resyncs atomic.Int64
	evictSlow, evictWriteTimeout, evictPing          atomic.Int64
	rejectOrigin, rejectFull, rejectReady            atomic.Int64
	rejectStation, closedByLimit                     atomic.Int64
}

// Stats is what the hub did since it started.
type Stats struct {
	Clients      int64 `json:"clients"`       // connected now
	Connections  int64 `json:"connections"`   // accepted since start
	MessagesSent int64 `json:"messages_sent"` // frames written to clients
	Events       int64 `json:"events"`        // events received from the database
	LastEventID  int64 `json:"last_event_id"`
	Replayed     int64 `json:"replayed"` // events sent by resumes
	Resyncs      int64 `json:"resyncs"`  // resumes answered with a resync
	// Evictions counts clients disconnected for being too slow, by reason:
	// slow_consumer (queue full), write_timeout, ping_timeout.
	Evictions map[string]int64 `json:"evictions"`
	// Rejected counts refused connections and closed misbehaving ones, by reason.
	Rejected map[string]int64 `json:"rejected"`
	// ListenFailures and FetchFailures count the Source's trouble, when it reports them
	// (StoreSource: the database).
	ListenFailures int64 `json:"listen_failures"`
	FetchFailures  int64 `json:"fetch_failures"`
}

// EvictionsTotal is the sum of Evictions.
func (s Stats) EvictionsTotal() int64 {
	var n int64
	for _, v := range s.Evictions {
		n += v
	}
	return n
}

// Stats returns the counters.
func (h *Hub) Stats() Stats {
	c := &h.stats
	var listen, fetch int64
	if r, ok := h.src.(interface{ Failures() (listen, fetch int64) }); ok {
		listen, fetch = r.Failures()
	}
	return Stats{
		Clients: h.clients.Load(), Connections: c.connections.Load(), MessagesSent: c.messages.Load(),
		Events: c.events.Load(), LastEventID: h.Position(), Replayed: c.replayed.Load(), Resyncs: c.resyncs.Load(),
		Evictions: map[string]int64{
			"slow_consumer": c.evictSlow.Load(), "write_timeout": c.evictWriteTimeout.Load(),
			"ping_timeout": c.evictPing.Load(),
		},
		Rejected: map[string]int64{
			"origin": c.rejectOrigin.Load(), "full": c.rejectFull.Load(),
			"not_ready": c.rejectReady.Load(), "unknown_station": c.rejectStation.Load(),
			"misbehaving": c.closedByLimit.Load(),
		},
		ListenFailures: listen, FetchFailures: fetch,
	}
}

package fanout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/fanout"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// backend is a Source the tests add events to: memory (memSource) for what the hub does
// with them, PostgreSQL (pgSource) for what only the database does and for the cases
// both Sources must answer alike.
type backend interface {
	fanout.Source
	addStation(t testing.TB, id string)
	// ingest stores n new readings of station, each with its event.
	ingest(t testing.TB, station string, n int)
	// events returns every stored event after id, in id order, of the stations (all
	// when none are named).
	events(t testing.TB, after int64, stations ...string) []store.Event
	lastEventID(t testing.TB) int64
	// prune deletes the events stored before the time.
	prune(t testing.TB, before time.Time)
}

// backends are the Sources the shared cases run on.
var backends = []struct {
	name string
	new  func(t *testing.T) backend
}{
	{"memory", func(*testing.T) backend { return newMemSource() }},
	{"postgres", func(t *testing.T) backend { return newPGSource(t, store.Options{}) }},
}

// pgSource is the service's Source over a fresh database.
type pgSource struct {
	*fanout.StoreSource
	st  *store.Store
	seq map[string]uint64 // next reading seq per station
}

func newPGSource(t testing.TB, opts store.Options) *pgSource {
	t.Helper()
	st, _ := storetest.Open(t, opts)
	return pgSourceOn(st)
}

func pgSourceOn(st *store.Store) *pgSource {
	return &pgSource{
		StoreSource: fanout.NewStoreSource(st, fanout.SourceOptions{PollInterval: 200 * time.Millisecond}),
		st:          st, seq: map[string]uint64{},
	}
}

func (p *pgSource) addStation(t testing.TB, id string) { storetest.AddStation(t, p.st, id) }

// ingest goes through the normal ingest path.
func (p *pgSource) ingest(t testing.TB, station string, n int) {
	t.Helper()
	if p.seq[station] == 0 {
		p.seq[station] = 1
	}
	rs := storetest.Readings(p.seq[station], n, time.Now().Add(-time.Hour).Add(time.Duration(p.seq[station])*time.Second), time.Millisecond)
	p.seq[station] += uint64(n)
	_, err := p.st.Ingest(context.Background(), station, storetest.Batch(station, rs))
	require.NoError(t, err)
}

func (p *pgSource) events(t testing.TB, after int64, stations ...string) []store.Event {
	t.Helper()
	q := store.EventQuery{After: after, Limit: 1_000_000}
	if len(stations) > 0 {
		q.Stations = stations
	}
	evs, err := p.st.Events(context.Background(), q)
	require.NoError(t, err)
	return evs
}

func (p *pgSource) lastEventID(t testing.TB) int64 {
	t.Helper()
	_, last, err := p.st.EventBounds(context.Background())
	require.NoError(t, err)
	return last
}

func (p *pgSource) prune(t testing.TB, before time.Time) {
	t.Helper()
	_, err := p.st.PruneEvents(context.Background(), before)
	require.NoError(t, err)
}

// env is a hub on a backend behind a real HTTP server.
type env struct {
	backend
	hub *fanout.Hub
	srv *httptest.Server
}

// newEnv starts a hub with opts on an in-memory Source with the given stations. It is
// stopped (and every connection closed) when the test ends.
func newEnv(t *testing.T, opts fanout.Options, stations ...string) *env {
	t.Helper()
	return newEnvOn(t, newMemSource(), opts, stations...)
}

func newEnvOn(t *testing.T, b backend, opts fanout.Options, stations ...string) *env {
	t.Helper()
	for _, s := range stations {
		b.addStation(t, s)
	}
	e := startHub(t, b, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.hub.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return e
}

// startHub makes a hub on b and serves it; it does not Run it.
func startHub(t *testing.T, b backend, opts fanout.Options) *env {
	t.Helper()
	hub, err := fanout.New(b, opts)
	require.NoError(t, err)
	mux := http.NewServeMux()
	hub.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{backend: b, hub: hub, srv: srv}
}

func (e *env) wsURL(path string) string {
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + path
}

// msg is a server message as a client sees it.
type msg struct {
	Type    string          `json:"type"`
	ID      int64           `json:"id"`
	Station string          `json:"station"`
	Time    time.Time       `json:"time"`
	Data    json.RawMessage `json:"data"`
}

type connStatus struct {
	Subscribed []string `json:"subscribed"`
	Replayed   *int     `json:"replayed"`
	Resync     bool     `json:"resync"`
	Reason     string   `json:"reason"`
	Error      string   `json:"error"`
}

func (m msg) status(t testing.TB) connStatus {
	t.Helper()
	require.Equal(t, "status", m.Type)
	require.Empty(t, m.Station, "a message about the connection has no station")
	var st connStatus
	require.NoError(t, json.Unmarshal(m.Data, &st))
	return st
}

// client is a real WebSocket client.
type client struct {
	t    testing.TB
	conn *websocket.Conn
}

func (e *env) dial(t testing.TB, path string, opts *websocket.DialOptions) *client {
	t.Helper()
	c, resp, err := e.tryDial(t, path, opts)
	require.NoError(t, err, "dial %s (status %d)", path, statusOf(resp))
	return c
}

func (e *env) tryDial(t testing.TB, path string, opts *websocket.DialOptions) (*client, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, e.wsURL(path), opts)
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(1 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	return &client{t: t, conn: conn}, resp, nil
}

func statusOf(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	require.NoError(c.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(c.t, c.conn.Write(ctx, websocket.MessageText, b))
}

// next reads one message; a read that takes 10s fails the test.
func (c *client) next() msg {
	c.t.Helper()
	m, err := c.read(10 * time.Second)
	require.NoError(c.t, err)
	return m
}

func (c *client) read(timeout time.Duration) (msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	typ, data, err := c.conn.Read(ctx)
	if err != nil {
		return msg{}, err
	}
	if typ != websocket.MessageText {
		return msg{}, fmt.Errorf("message of type %v", typ)
	}
	var m msg
	if err := json.Unmarshal(data, &m); err != nil {
		return msg{}, fmt.Errorf("%w: %s", err, data)
	}
	return m, nil
}

// subscribe sends a subscribe and returns the acknowledgement (and the resync message
// and the replayed events that came before it).
func (c *client) subscribe(stations []string, since any) (ack msg, before []msg) {
	c.t.Helper()
	m := map[string]any{"type": "subscribe", "stations": stations}
	if since != nil {
		m["since"] = since
	}
	c.send(m)
	return c.untilAck()
}

func (c *client) unsubscribe(stations ...string) msg {
	c.t.Helper()
	c.send(map[string]any{"type": "unsubscribe", "stations": stations})
	ack, before := c.untilAck()
	require.Empty(c.t, before)
	return ack
}

// untilAck reads up to the next acknowledgement or error.
func (c *client) untilAck() (ack msg, before []msg) {
	c.t.Helper()
	for {
		m := c.next()
		if m.Type == "status" && m.Station == "" {
			st := m.status(c.t)
			if st.Subscribed != nil || st.Error != "" {
				return m, before
			}
		}
		before = append(before, m)
	}
}

// collect reads until it has n events (messages with a station), failing on anything
// else.
func (c *client) collect(n int) []msg {
	c.t.Helper()
	var out []msg
	for len(out) < n {
		m := c.next()
		require.NotEmpty(c.t, m.Station, "unexpected message %+v", m)
		out = append(out, m)
	}
	return out
}

// idsOf lists the event ids.
func idsOf[T any](xs []T, id func(T) int64) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

func msgIDs(ms []msg) []int64 { return idsOf(ms, func(m msg) int64 { return m.ID }) }
func eventIDs(evs []store.Event) []int64 {
	return idsOf(evs, func(e store.Event) int64 { return e.ID })
}

// smallBufferClient dials with a 4 KiB socket receive buffer (no autotuning): a client
// that stops reading blocks the server after a few kilobytes instead of megabytes.
func smallBufferClient() *http.Client {
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if tc, ok := conn.(*net.TCPConn); ok {
				if err := tc.SetReadBuffer(4096); err != nil {
					conn.Close()
					return nil, err
				}
			}
			return conn, nil
		},
	}}
}

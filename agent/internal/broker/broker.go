package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/purehealth/purehealth/agent/internal/payload"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Sink turns decoded observations into durable readings.
type Sink interface {
	// Ingest returns only when every accepted observation is durable. rejected[i] != nil means
	// observation i was refused (unknown parameter, unit mismatch...) and not stored; a nil or
	// short rejected slice means the rest were accepted. err != nil means nothing was stored
	// (store failure). It is called from many client goroutines at once.
	Ingest(ctx context.Context, obs []telemetry.Observation) (rejected []error, err error)
}

// Defaults for Options. The sizes are per connected client and chosen for a Raspberry Pi
// with 512 MB: measured on amd64, an idle client costs about 26 KiB with them (6 KiB heap,
// the rest the stacks of its two goroutines), against about 91 KiB with mochi's defaults,
// whose 8192-slot write queue alone is 64 KiB. 1000 clients fit in about 26 MiB.
const (
	DefaultListen          = "127.0.0.1:1883" // the station's own network only
	DefaultMaxPacketSize   = 64 << 10         // bytes; also the largest payload Decode accepts
	DefaultMaxClients      = 1000
	DefaultReceiveMaximum  = 1024 // QoS 1/2 publishes a client may have unacknowledged
	DefaultMaxInflight     = 128  // outgoing QoS 1/2 messages kept per client until acked
	DefaultWritesPending   = 128  // outgoing messages queued per client before drops
	DefaultReadBufferSize  = 1024
	DefaultWriteBufferSize = 1024
	DefaultSessionExpiry   = time.Hour       // a disconnected persistent session is kept
	DefaultMessageExpiry   = 24 * time.Hour  // queued and retained messages are kept
	DefaultConnectTimeout  = 5 * time.Second // for a socket to log in; it holds a pending place until then
	DefaultIngestTimeout   = 10 * time.Second
)

// Options configure a Broker. The zero value of each limit means its default.
type Options struct {
	Station        string // this agent's station id: devices may only publish under it
	Listen         string // TCP address, e.g. "127.0.0.1:1883" (":0" picks a port, see Addr)
	TLSListen      string // optional second listener, with TLS
	TLS            *tls.Config
	AllowAnonymous bool // anonymous clients get the device role; off by default
	Users          []User
	Location       *time.Location // station timezone for offset-less timestamps; nil = UTC

	MaxPacketSize uint32 // largest MQTT packet accepted, checked before it is read
	MaxClients    int64  // connected clients; at most 64 more sockets may be mid-handshake
	// ReceiveMaximum is the MQTT 5 receive maximum. An MQTT 3 client cannot see it and is
	// disconnected when it exceeds it, hence the high default; the broker reads a client's
	// publishes only as fast as it stores them whatever it is.
	ReceiveMaximum  uint16
	MaxInflight     uint16 // outgoing QoS 1/2 messages held per client awaiting acks
	WritesPending   int32  // outgoing queue per client; beyond it messages are dropped (counted)
	ReadBufferSize  int    // per client
	WriteBufferSize int    // per client, used only while writes queue up
	// SessionExpiry caps how long a disconnected persistent session is kept.
	SessionExpiry time.Duration
	// MessageExpiry caps how long a message is kept for a subscriber. mochi applies it to
	// retained messages too: a retained output (wqi, status) must be republished more often.
	MessageExpiry  time.Duration
	ConnectTimeout time.Duration // for a new connection to finish TLS and CONNECT
	// IngestTimeout bounds one Sink.Ingest call; keep it below client keepalives. Calls
	// starting close together share a deadline, so a call gets between 7/8 of it and all.
	IngestTimeout time.Duration

	Logger *slog.Logger // nil discards
}

// The reasons in Stats.Rejects.
const (
	ReasonDecode       = "decode"        // a payload or readings item that does not decode
	ReasonUnknownParam = "unknown_param" // a reading the sink refused: unknown parameter
	ReasonUnitMismatch = "unit_mismatch" // a reading the sink refused: unit does not fit
	ReasonInvalid      = "invalid"       // a reading the sink refused for another reason
	ReasonSensorLimit  = "sensor_limit"  // a reading of a new sensor beyond the station's limit
	ReasonStoreFailure = "store_failure" // a publish left unacknowledged: the sink failed
	ReasonACL          = "acl"           // a publish, subscription, delivery, Will or session takeover denied
	ReasonAuth         = "auth"          // a login refused
)

var reasons = []string{ReasonDecode, ReasonUnknownParam, ReasonUnitMismatch, ReasonInvalid,
	ReasonSensorLimit, ReasonStoreFailure, ReasonACL, ReasonAuth}

// Stats are counters since New.
type Stats struct {
	ClientsConnected int64            // clients connected now
	MessagesReceived int64            // publishes received on this station's reading topics
	ReadingsAccepted int64            // observations the sink stored
	Rejects          map[string]int64 // by reason (the Reason constants), every reason present
	ErrorsPublished  int64            // messages published on purehealth/<station>/errors
	MessagesDropped  int64            // outgoing messages dropped: a client's queue was full
	ConnsRefused     int64            // sockets closed at once: too many open
}

type counters struct {
	received, accepted, errorsPublished, dropped, connsRefused atomic.Int64
	rejects                                                    map[string]*atomic.Int64
}

func (c *counters) reject(reason string, n int) {
	if n > 0 {
		c.rejects[reason].Add(int64(n))
	}
}

// Errors returned by the Broker.
var (
	ErrRunning    = errors.New("broker already run")
	ErrForeign    = errors.New("topic not under this station")
	ErrInvalidQoS = errors.New("qos must be 0, 1 or 2")
)

// Broker is the agent's embedded MQTT broker: devices publish readings to it, which it
// stores through a Sink before acknowledging, and the agent publishes its outputs on it.
//
// Run owns every goroutine of the broker. Publish and Stats are safe for concurrent use at
// any time, before, during and after Run.
type Broker struct {
	opts        Options
	sink        Sink
	log         *slog.Logger
	access      *access
	srv         *mqtt.Server
	hook        *hook
	prefix      string // "purehealth/<station>/"
	errorsTopic string
	stats       counters

	started   atomic.Bool
	lns       []*listener // bound by Listen
	ready     chan struct{}
	addr      atomic.Value // net.Addr of the TCP listener
	tlsAddr   atomic.Value // net.Addr of the TLS listener
	closeOnce sync.Once
}

// New validates opts and builds a broker. It starts nothing and binds nothing.
func New(opts Options, sink Sink) (*Broker, error) {
	opts, err := opts.withDefaults()
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	if sink == nil {
		errs = append(errs, errors.New("nil sink"))
	}
	acc, err := newAccess(opts.Station, opts.Users, opts.AllowAnonymous)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("mqtt broker: %w", err)
	}

	b := &Broker{
		opts:        opts,
		sink:        sink,
		log:         opts.Logger,
		access:      acc,
		prefix:      payload.TopicRoot + "/" + opts.Station + "/",
		errorsTopic: payload.Topic(opts.Station, LeafErrors),
		ready:       make(chan struct{}),
	}
	b.stats.rejects = make(map[string]*atomic.Int64, len(reasons))
	for _, r := range reasons {
		b.stats.rejects[r] = new(atomic.Int64)
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = opts.MaxPacketSize
	caps.MaximumClients = opts.MaxClients
	caps.ReceiveMaximum = opts.ReceiveMaximum
	caps.MaximumInflight = opts.MaxInflight
	caps.MaximumClientWritesPending = opts.WritesPending
	caps.MaximumSessionExpiryInterval = uint32(opts.SessionExpiry / time.Second)
	caps.MaximumMessageExpiryInterval = int64(opts.MessageExpiry / time.Second)
	// mochi checks the ACL on the topic name before resolving a topic alias, so an
	// alias-only publish would be checked against "": no aliases.
	caps.TopicAliasMaximum = 0
	// mochi copies a publish's properties into its acknowledgement, and with them the
	// QoS 1 ack goes out with the reason code 0x01, a SUBACK code that a PUBACK may not
	// carry [MQTT-3.4.2-1]. Without inherited properties a successful ack has no reason
	// code (0x00); a refusal still carries its reason string.
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	b.srv = mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		ClientNetReadBufferSize:  opts.ReadBufferSize,
		ClientNetWriteBufferSize: opts.WriteBufferSize,
		Logger:                   opts.Logger,
		// $SYS topics are refreshed with a stop-the-world ReadMemStats: not every second.
		SysTopicResendInterval: 30,
		InlineClient:           true,
	})
	b.hook = &hook{b: b}
	if err := b.srv.AddHook(b.hook, nil); err != nil {
		return nil, fmt.Errorf("mqtt broker: %w", err)
	}
	return b, nil
}

func (o Options) withDefaults() (Options, error) {
	var errs []error
	if err := payload.ValidateStation(o.Station); err != nil {
		errs = append(errs, fmt.Errorf("station: %w", err))
	}
	if o.Listen == "" {
		errs = append(errs, errors.New("listen: empty address"))
	}
	if (o.TLSListen == "") != (o.TLS == nil) {
		errs = append(errs, errors.New("tls_listen and a TLS config go together"))
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault(&o.MaxPacketSize, DefaultMaxPacketSize)
	setDefault(&o.MaxClients, DefaultMaxClients)
	setDefault(&o.ReceiveMaximum, DefaultReceiveMaximum)
	setDefault(&o.MaxInflight, DefaultMaxInflight)
	setDefault(&o.WritesPending, DefaultWritesPending)
	setDefault(&o.ReadBufferSize, DefaultReadBufferSize)
	setDefault(&o.WriteBufferSize, DefaultWriteBufferSize)
	setDefault(&o.SessionExpiry, DefaultSessionExpiry)
	setDefault(&o.MessageExpiry, DefaultMessageExpiry)
	setDefault(&o.ConnectTimeout, DefaultConnectTimeout)
	setDefault(&o.IngestTimeout, DefaultIngestTimeout)
	if o.MaxPacketSize < 256 {
		errs = append(errs, fmt.Errorf("max packet size %d: want at least 256 bytes", o.MaxPacketSize))
	}
	for name, v := range map[string]int64{
		"max clients": o.MaxClients, "writes pending": int64(o.WritesPending),
		"read buffer size": int64(o.ReadBufferSize), "write buffer size": int64(o.WriteBufferSize),
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s %d: must not be negative", name, v))
		}
	}
	for name, d := range map[string]time.Duration{ // mochi counts these in whole seconds
		"session expiry": o.SessionExpiry, "message expiry": o.MessageExpiry,
	} {
		if d < time.Second || d > math.MaxUint32*time.Second {
			errs = append(errs, fmt.Errorf("%s %v: want between 1s and %v", name, d,
				math.MaxUint32*time.Second))
		}
	}
	for name, d := range map[string]time.Duration{
		"connect timeout": o.ConnectTimeout, "ingest timeout": o.IngestTimeout,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %v: must not be negative", name, d))
		}
	}
	return o, errors.Join(errs...)
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Listen binds the listeners, so that a port in use is found at start-up. Connections
// wait in the kernel's backlog until Run serves them. Run binds them itself when Listen
// was not called; a bound Broker must be Run (its context may already be done) to release
// them. Listen must not be called concurrently with Run.
func (b *Broker) Listen() error {
	if b.lns != nil {
		return nil
	}
	maxConns := int(min(b.opts.MaxClients, math.MaxInt32)) + pendingConns
	tcp, err := listen("tcp", b.opts.Listen, nil, b.opts.ConnectTimeout, maxConns,
		&b.stats.connsRefused, b.log)
	if err != nil {
		return err
	}
	tcp.goodbye = b.disconnectListener
	lns := []*listener{tcp}
	if b.opts.TLSListen != "" {
		tl, err := listen("tls", b.opts.TLSListen, b.opts.TLS, b.opts.ConnectTimeout, maxConns,
			&b.stats.connsRefused, b.log)
		if err != nil {
			tcp.Close(func(string) {})
			return err
		}
		tl.goodbye = b.disconnectListener
		lns = append(lns, tl)
	}
	b.lns = lns
	return nil
}

// listener returns the listener of id (for a client's Net.Listener).
func (b *Broker) listener(id string) *listener {
	for _, l := range b.lns {
		if l.id == id {
			return l
		}
	}
	return nil
}

// Run serves until ctx ends, then disconnects every client, cancels the Sink.Ingest calls
// in progress (their publishes stay unacknowledged) and returns once all of the broker's
// goroutines have exited. It binds the listeners first unless Listen did, and returns an
// error if one cannot be bound. A Broker runs once.
func (b *Broker) Run(ctx context.Context) error {
	if !b.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	if err := b.Listen(); err != nil {
		return err
	}
	lns, tcp := b.lns, b.lns[0]
	closeAll := func() {
		for _, l := range lns {
			l.Close(func(string) {})
		}
	}
	for _, l := range lns {
		if err := b.srv.AddListener(l); err != nil {
			closeAll()
			return fmt.Errorf("mqtt broker: %w", err)
		}
	}

	b.hook.ctx = ctx // before any client goroutine exists
	b.hook.ingest = newDeadlines(ctx, b.opts.IngestTimeout)
	for _, l := range lns {
		l.expectServe()
	}
	if err := b.srv.Serve(); err != nil {
		// Unreachable with our configuration (no config listeners, hooks or storage), but if
		// it happens the accept loops never start.
		for _, l := range lns {
			l.wg.Done()
		}
		closeAll()
		return fmt.Errorf("mqtt broker: %w", err)
	}
	b.addr.Store(tcp.Addr())
	if len(lns) > 1 {
		b.tlsAddr.Store(lns[1].Addr())
	}
	close(b.ready)
	b.log.Info("mqtt broker listening", "addr", tcp.Addr().String(), "tls_addr", b.TLSAddr())

	<-ctx.Done()
	b.closeOnce.Do(func() {
		// Closes our listeners (each waits for its goroutines) and mochi's event loop.
		if err := b.srv.Close(); err != nil {
			b.log.Warn("mqtt broker close", "error", err)
		}
	})
	// Every client goroutine has returned, so no lane starts; those still storing end
	// soon, their Sink.Ingest calls cancelled with ctx.
	b.hook.lanes.Wait()
	b.hook.ingest.stop()
	return nil
}

// disconnectListener says goodbye to the clients of one listener at shutdown. It stands in
// for mochi's own closeListenerClients, whose Clients.GetByListener takes the client map's
// read lock twice (mochi v2.7.9): a client connecting or leaving at that moment queues a
// writer between the two and Close deadlocks for good. GetAll takes the lock once.
func (b *Broker) disconnectListener(id string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Listener == id && !cl.Closed() {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown) // the client may be gone already
		}
	}
}

// Ready is closed once Run is listening.
func (b *Broker) Ready() <-chan struct{} { return b.ready }

// Addr is the bound address of the TCP listener, nil before Ready.
func (b *Broker) Addr() net.Addr {
	a, _ := b.addr.Load().(net.Addr)
	return a
}

// TLSAddr is the bound address of the TLS listener, nil before Ready or without one.
func (b *Broker) TLSAddr() net.Addr {
	a, _ := b.tlsAddr.Load().(net.Addr)
	return a
}

// Publish publishes the agent's own message, e.g. the retained WQI, an alert at QoS 1 or the
// retained status. The topic must be under purehealth/<station>/ (the broker's inline client
// bypasses the ACL, so nothing else may be published this way). qos caps the QoS at which
// subscribers receive it. The payload is copied.
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	if !strings.HasPrefix(topic, b.prefix) || len(topic) == len(b.prefix) ||
		!mqtt.IsValidFilter(topic, true) {
		return fmt.Errorf("%w: %q", ErrForeign, cut(topic, 128))
	}
	if qos > 2 {
		return fmt.Errorf("%w: got %d", ErrInvalidQoS, qos)
	}
	if err := b.srv.Publish(topic, bytes.Clone(payload), retain, qos); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// Stats returns the counters.
func (b *Broker) Stats() Stats {
	s := Stats{
		ClientsConnected: atomic.LoadInt64(&b.srv.Info.ClientsConnected),
		MessagesReceived: b.stats.received.Load(),
		ReadingsAccepted: b.stats.accepted.Load(),
		ErrorsPublished:  b.stats.errorsPublished.Load(),
		MessagesDropped:  b.stats.dropped.Load(),
		ConnsRefused:     b.stats.connsRefused.Load(),
		Rejects:          make(map[string]int64, len(reasons)),
	}
	for r, c := range b.stats.rejects {
		s.Rejects[r] = c.Load()
	}
	return s
}

// ErrorMessage is what the broker publishes on purehealth/<station>/errors (contract: topic
// and reason).
type ErrorMessage struct {
	Topic  string    `json:"topic"`  // where the refused message was published
	Reason string    `json:"reason"` // what is wrong, e.g. "readings[3].value: missing"
	Client string    `json:"client"` // MQTT client id of the sender
	Time   time.Time `json:"time"`   // when it was refused, UTC
}

// report publishes one ErrorMessage.
func (b *Broker) report(client, topic, reason string) {
	msg, err := json.Marshal(ErrorMessage{
		Topic:  topic,
		Reason: cut(reason, 512),
		Client: cut(client, 64),
		Time:   time.Now().UTC(),
	})
	if err == nil {
		err = b.srv.Publish(b.errorsTopic, msg, false, 0)
	}
	if err != nil {
		b.log.Warn("error report not published", "topic", topic, "reason", reason, "error", err)
		return
	}
	b.stats.errorsPublished.Add(1)
}

// cut shortens s to at most n bytes on a rune boundary, for text from clients.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

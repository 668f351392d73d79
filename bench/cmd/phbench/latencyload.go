package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	paho "github.com/eclipse/paho.mqtt.golang"
)

// The readings of the latency comparison: sensor s of the plan is named "lat-<s>" and its
// j-th reading has the value latencyBase + j·latencyStep, so that the value and the sensor
// of a reading the WebSocket client receives say which publication it was.
const (
	latencySensorPrefix = "lat-"
	latencyBase         = 7.0
	latencyStep         = 0.0001
	// latencyMaxPerSensor keeps the values within 7.0000..7.9999: inside the pH band of
	// class B (6.5–8.5), so that the load raises no threshold alert.
	latencyMaxPerSensor = 10000
)

// latencyPlan is what the latency comparison publishes: count readings at rate a second
// in all, reading k from sensor k mod sensors as that sensor's (k div sensors)-th, due k/rate
// seconds after the publishing starts. Sensors therefore take turns, which staggers them.
type latencyPlan struct {
	sensors int
	count   int
	rate    float64
}

func (p latencyPlan) sensorName(s int) string { return fmt.Sprintf("%s%02d", latencySensorPrefix, s) }

// perSensor is how many readings one sensor publishes at most.
func (p latencyPlan) perSensor() int { return (p.count + p.sensors - 1) / p.sensors }

func (p latencyPlan) value(k int) float64 { return latencyBase + float64(k/p.sensors)*latencyStep }

// due is when reading k is published, after the publishing starts.
func (p latencyPlan) due(k int) time.Duration {
	return time.Duration(float64(k) / p.rate * float64(time.Second))
}

// payload is reading k as a sensor sends it (design §4), stamped with the time at which it
// is published.
func (p latencyPlan) payload(k int, at time.Time) []byte {
	return fmt.Appendf(nil, `{"value": %s, "unit": "pH", "timestamp": %q, "sensor": %q}`,
		strconv.FormatFloat(p.value(k), 'f', 4, 64), at.UTC().Format(time.RFC3339Nano), p.sensorName(k%p.sensors))
}

// reading returns the index of the reading that sensor and value identify, or false for a
// reading the plan did not publish.
func (p latencyPlan) reading(sensor string, value float64) (int, bool) {
	digits, ok := strings.CutPrefix(sensor, latencySensorPrefix)
	if !ok {
		return 0, false
	}
	s, err := strconv.Atoi(digits)
	if err != nil || s < 0 || s >= p.sensors || p.sensorName(s) != sensor {
		return 0, false
	}
	j := math.Round((value - latencyBase) / latencyStep)
	if !(j >= 0 && j < latencyMaxPerSensor) || math.Abs(value-(latencyBase+j*latencyStep)) > latencyStep/10 {
		return 0, false
	}
	k := int(j)*p.sensors + s
	if k >= p.count {
		return 0, false
	}
	return k, true
}

// liveMessage is a server message of the WebSocket fan-out (cloud/internal/fanout).
type liveMessage struct {
	Type    string          `json:"type"`
	ID      int64           `json:"id"`
	Station string          `json:"station"`
	Data    json.RawMessage `json:"data"`
}

// liveReading is the part of a reading message's data the comparison reads.
type liveReading struct {
	Seq    uint64  `json:"seq"`
	Param  string  `json:"param"`
	Value  float64 `json:"value"`
	Sensor string  `json:"sensor"`
}

// parseLiveMessage reads one server message; for a reading it also returns the reading.
func parseLiveMessage(b []byte) (liveMessage, *liveReading, error) {
	var m liveMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return liveMessage{}, nil, fmt.Errorf("live message: %w", err)
	}
	if m.Type == "" {
		return liveMessage{}, nil, fmt.Errorf("live message %q: no type", cutBytes(b, 100))
	}
	if m.Type != "reading" {
		return m, nil, nil
	}
	var r liveReading
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return liveMessage{}, nil, fmt.Errorf("live reading %q: %w", cutBytes(b, 100), err)
	}
	if r.Seq == 0 || r.Sensor == "" {
		return liveMessage{}, nil, fmt.Errorf("live reading %q: no seq or sensor", cutBytes(b, 100))
	}
	return m, &r, nil
}

// latencyTracker accounts for what the WebSocket client receives: when each reading of the
// plan came, how often, and in which order. It is used by one goroutine at a time.
type latencyTracker struct {
	plan latencyPlan

	at    []time.Duration // receipt of reading k, after the run's origin (first receipt)
	times []int32         // how often reading k came
	seq   []uint64        // the agent's seq of reading k
	event []int64         // the fan-out's event id of reading k

	lastIndex []int    // per sensor: the index of its last reading received, -1 before
	lastSeq   []uint64 // per sensor: the seq of its last reading received
	lastID    int64    // of the last message with an id

	distinct   int            // readings of the plan received at least once
	duplicates int            // receipts of a reading already received
	outOfOrder int            // readings that came after a later one of their sensor
	idBackward int            // messages whose id was not above the previous one
	other      int            // readings the plan did not publish (the floor's probes)
	types      map[string]int // messages by type
	bad        int            // messages that could not be read
	firstBad   error
}

func newLatencyTracker(p latencyPlan) *latencyTracker {
	t := &latencyTracker{plan: p,
		at: make([]time.Duration, p.count), times: make([]int32, p.count),
		seq: make([]uint64, p.count), event: make([]int64, p.count),
		lastIndex: make([]int, p.sensors), lastSeq: make([]uint64, p.sensors),
		types: map[string]int{}}
	for s := range t.lastIndex {
		t.lastIndex[s] = -1
	}
	return t
}

// observe records one server message received at at; it reports whether the message was
// a reading of the plan not received before.
func (t *latencyTracker) observe(msg []byte, at time.Duration) bool {
	m, r, err := parseLiveMessage(msg)
	if err != nil {
		t.bad++
		if t.firstBad == nil {
			t.firstBad = err
		}
		return false
	}
	t.types[m.Type]++
	if m.ID != 0 {
		if m.ID <= t.lastID {
			t.idBackward++
		}
		t.lastID = m.ID
	}
	if r == nil {
		return false
	}
	k, ok := t.plan.reading(r.Sensor, r.Value)
	if !ok {
		t.other++
		return false
	}
	t.times[k]++
	if t.times[k] > 1 {
		t.duplicates++
		return false
	}
	s := k % t.plan.sensors
	if k/t.plan.sensors < t.lastIndex[s] || r.Seq < t.lastSeq[s] {
		t.outOfOrder++
	}
	t.lastIndex[s], t.lastSeq[s] = max(t.lastIndex[s], k/t.plan.sensors), max(t.lastSeq[s], r.Seq)
	t.at[k], t.seq[k], t.event[k] = at, r.Seq, m.ID
	t.distinct++
	return true
}

// missing is how many readings of the plan never came.
func (t *latencyTracker) missing() int { return t.plan.count - t.distinct }

// liveClient is a github.com/coder/websocket client subscribed to one station. Its reader
// goroutine feeds a tracker, which belongs to it until close returns.
type liveClient struct {
	conn     *websocket.Conn
	tracker  *latencyTracker
	origin   time.Time
	cancel   context.CancelFunc
	done     chan struct{}
	received atomic.Int64 // readings of the plan received, each counted once
	closing  atomic.Bool
	err      error // why the reader stopped before close, set before done is closed
}

// dialLive connects to url (ws://host:port/ws), subscribes to station, waits for the
// server's acknowledgement and starts the reader, which times every message after
// origin. The caller must close the client.
func dialLive(ctx context.Context, url, station string, tr *latencyTracker, origin time.Time) (*liveClient, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	sub, err := json.Marshal(map[string]any{"type": "subscribe", "stations": []string{station}})
	if err == nil {
		err = conn.Write(dctx, websocket.MessageText, sub)
	}
	for err == nil {
		var data []byte
		if _, data, err = conn.Read(dctx); err != nil {
			err = fmt.Errorf("wait for the subscription: %w", err)
			break
		}
		var m struct {
			Type string `json:"type"`
			Data struct {
				Subscribed []string `json:"subscribed"`
				Error      string   `json:"error"`
			} `json:"data"`
		}
		if jerr := json.Unmarshal(data, &m); jerr != nil || m.Type != "status" {
			continue
		}
		if m.Data.Error != "" {
			err = fmt.Errorf("subscribe refused: %s", m.Data.Error)
		} else if len(m.Data.Subscribed) > 0 {
			break
		}
	}
	if err != nil {
		return nil, errors.Join(err, conn.CloseNow())
	}
	rctx, stop := context.WithCancel(ctx)
	c := &liveClient{conn: conn, tracker: tr, origin: origin, cancel: stop, done: make(chan struct{})}
	go c.read(rctx)
	return c, nil
}

func (c *liveClient) read(ctx context.Context) {
	defer close(c.done)
	for {
		_, data, err := c.conn.Read(ctx)
		at := time.Since(c.origin)
		if err != nil {
			if !c.closing.Load() {
				c.err = err
			}
			return
		}
		if c.tracker.observe(data, at) {
			c.received.Add(1)
		}
	}
}

// close stops the reader and closes the connection. It returns why the reader stopped
// before it was asked to, if it did.
func (c *liveClient) close() error {
	c.closing.Store(true)
	c.cancel() // a read whose context ends closes the connection
	<-c.done
	// The cancelled read has closed the connection already (net.ErrClosed) unless the
	// reader had stopped on an error of its own.
	if err := c.conn.CloseNow(); err != nil && !errors.Is(err, net.ErrClosed) {
		return errors.Join(c.err, err)
	}
	return c.err
}

// publishResult is what publishPaced did.
type publishResult struct {
	pub, ack []time.Duration // per reading, after the origin; ack 0: not acknowledged
	failed   int
	firstErr error
	maxLate  time.Duration // the most a publication started after it was due
}

// latencyAckTimeout bounds the wait for one acknowledgement.
const latencyAckTimeout = time.Minute

// publishPaced publishes the plan at QoS 1 on topic, sensor s through clients[s], each
// reading at begin + plan.due(k) after origin. Each sensor has a goroutine that publishes
// and one that waits for the acknowledgements; all have ended when it returns.
func publishPaced(ctx context.Context, clients []paho.Client, topic string, p latencyPlan, origin time.Time, begin time.Duration) publishResult {
	res := publishResult{pub: make([]time.Duration, p.count), ack: make([]time.Duration, p.count)}
	type pending struct {
		k   int
		tok paho.Token
	}
	type outcome struct {
		failed   int
		firstErr error
		maxLate  time.Duration
	}
	outcomes := make([]outcome, 2*p.sensors) // [2s]: publisher of sensor s, [2s+1]: its acks
	var wg sync.WaitGroup
	for s := range p.sensors {
		acks := make(chan pending, p.perSensor())
		wg.Go(func() {
			defer close(acks)
			o := &outcomes[2*s]
			timer := time.NewTimer(0)
			defer timer.Stop()
			<-timer.C
			for k := s; k < p.count; k += p.sensors {
				if wait := begin + p.due(k) - time.Since(origin); wait > 0 {
					timer.Reset(wait)
					select {
					case <-ctx.Done():
						return
					case <-timer.C:
					}
				}
				now := time.Now()
				res.pub[k] = now.Sub(origin)
				o.maxLate = max(o.maxLate, res.pub[k]-begin-p.due(k))
				acks <- pending{k, clients[s].Publish(topic, 1, false, p.payload(k, now))}
			}
		})
		wg.Go(func() {
			o := &outcomes[2*s+1]
			fail := func(err error) {
				o.failed++
				if o.firstErr == nil {
					o.firstErr = err
				}
			}
			for pd := range acks {
				select {
				case <-pd.tok.Done():
					if err := pd.tok.Error(); err != nil {
						fail(fmt.Errorf("publish reading %d: %w", pd.k, err))
						continue
					}
					res.ack[pd.k] = time.Since(origin)
				case <-ctx.Done():
					fail(ctx.Err())
				case <-time.After(latencyAckTimeout):
					fail(fmt.Errorf("reading %d: no acknowledgement within %s", pd.k, latencyAckTimeout))
				}
			}
		})
	}
	wg.Wait()
	for _, o := range outcomes {
		res.failed += o.failed
		if res.firstErr == nil {
			res.firstErr = o.firstErr
		}
		res.maxLate = max(res.maxLate, o.maxLate)
	}
	return res
}

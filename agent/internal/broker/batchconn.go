package broker

import (
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// batchConn is a client connection whose writes can be held back and sent together. mochi
// writes every packet with a write call of its own; a lane answers the publishes it stored
// one by one, and held, their acknowledgements leave in one write instead of a system call
// of four bytes each.
//
// Writes made while the connection is held (by mochi for this client, from any goroutine)
// are appended to a buffer that flush sends; a write error is then seen by flush, which
// closes the connection so that mochi's reader notices. At most holdMax bytes are held: a
// write beyond sends everything held so far. For a connection that is not ours (mochi's
// inline client has none) the *batchConn is nil: hold and flush do nothing, and puback
// goes through mochi.
type batchConn struct {
	net.Conn

	mu   sync.Mutex
	held bool
	buf  []byte

	dmu      sync.Mutex
	asked    time.Time // the deadline last passed on, without the slack
	deadline time.Time // the deadline the socket has
}

// holdMax bounds what a held connection buffers: the acknowledgements of a full lane are
// a few hundred bytes, deliveries to the same client are what can make it more.
const holdMax = 64 << 10

func newBatchConn(c net.Conn) *batchConn { return &batchConn{Conn: c} }

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.held {
		return c.Conn.Write(p)
	}
	if len(c.buf)+len(p) > holdMax {
		if err := c.sendLocked(); err != nil {
			return 0, err
		}
		if len(p) > holdMax {
			return c.Conn.Write(p)
		}
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// SetDeadline passes a deadline on to the socket only when it is later than the one the
// socket has (or earlier than the one last asked for, or none), and then with some slack
// beyond it. mochi moves the deadline keepalive×1.5 ahead on every packet it reads, and
// moving a socket's deadline resets a runtime timer under locks: with the slack, most
// packets move nothing, and a client is cut at most deadlineSlack later than asked.
func (c *batchConn) SetDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if !t.IsZero() && !c.deadline.IsZero() && !t.After(c.deadline) && !t.Before(c.asked) {
		c.asked = t
		return nil
	}
	c.asked, c.deadline = t, t
	if !t.IsZero() {
		c.deadline = t.Add(deadlineSlack(time.Until(t)))
	}
	return c.Conn.SetDeadline(c.deadline)
}

// deadlineSlack is how much later than asked a deadline ahead by d may fall: a sixteenth
// of d, at most a second.
func deadlineSlack(d time.Duration) time.Duration {
	return max(0, min(d/16, time.Second))
}

// hold makes the writes that follow wait for flush.
func (c *batchConn) hold() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.held = true
	c.mu.Unlock()
}

// flush sends what was written since hold, and lets writes through again.
func (c *batchConn) flush() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = false
	if err := c.sendLocked(); err != nil {
		_ = c.Conn.Close() // mochi's reader sees the connection gone; the error is the client's
	}
}

// puback sends cl a PUBACK for packet id with reason "success" and no properties: its
// four bytes written straight, which is what mochi's WritePacket would send for it, less
// mochi's encoder and its two allocations. Writes of whole packets do not interleave:
// mochi writes each packet, or a run of them, in one call. Without a batchConn (the
// agent's inline client) the ack goes through mochi.
func (c *batchConn) puback(cl *mqtt.Client, id uint16) error {
	if c == nil {
		return cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
	}
	c.mu.Lock()
	if c.held && len(c.buf)+4 <= holdMax {
		c.buf = append(c.buf, packets.Puback<<4, 2, byte(id>>8), byte(id))
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	_, err := c.Write([]byte{packets.Puback << 4, 2, byte(id >> 8), byte(id)})
	return err
}

func (c *batchConn) sendLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	if cap(c.buf) > 4<<10 {
		c.buf = nil // a rare large batch: do not keep its buffer for every idle client
	}
	return err
}

package broker

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawConn speaks MQTT as bytes written by hand, independently of mochi's and the clients'
// encoders, for the places where the clients hide the wire.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	v5   bool
}

// rawPacket is one control packet as it came off the wire.
type rawPacket struct {
	header byte
	body   []byte
}

func (p rawPacket) kind() byte { return p.header >> 4 }

// bytes is the packet as it was on the wire, for messages.
func (p rawPacket) bytes() string {
	return hex.EncodeToString(append([]byte{p.header}, appendVarint(nil, len(p.body))...)) + " " +
		hex.EncodeToString(p.body)
}

func appendVarint(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func packet(header byte, body []byte) []byte {
	return append(appendVarint([]byte{header}, len(body)), body...)
}

// dialRaw connects and logs in as user (MQTT 3.1.1, or 5 with v5), failing the test unless
// the CONNACK says yes.
func dialRaw(t *testing.T, b *Broker, user, pass string, v5 bool) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", b.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	c := &rawConn{t: t, conn: conn, r: newReader(conn), v5: v5}
	level := byte(4)
	if v5 {
		level = 5
	}
	body := appendString(nil, "MQTT")
	body = append(body, level, 0xC2, 0, 30) // username, password, clean start; keepalive 30 s
	if v5 {
		body = append(body, 0) // no properties
	}
	body = appendString(body, clientID("raw"))
	body = appendString(body, user)
	body = appendString(body, pass)
	c.send(packet(0x10, body))
	ack := c.read()
	require.Equal(t, byte(2), ack.kind(), "want a CONNACK, got %s", ack.bytes())
	require.GreaterOrEqual(t, len(ack.body), 2)
	require.Equal(t, byte(0), ack.body[1], "CONNACK return code: %s", ack.bytes())
	return c
}

func (c *rawConn) send(p []byte) {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetWriteDeadline(time.Now().Add(guard)))
	_, err := c.conn.Write(p)
	require.NoError(c.t, err)
}

// publish sends a PUBLISH with packet id 1 and, for MQTT 5, the given user properties
// (key, value pairs).
func (c *rawConn) publish(topic string, qos byte, payload string, userProps ...string) {
	c.t.Helper()
	c.publishID(topic, qos, 1, payload, userProps...)
}

// publishID sends a PUBLISH with packet id id (for QoS 1 and 2) and, for MQTT 5, the given
// user properties (key, value pairs).
func (c *rawConn) publishID(topic string, qos byte, id uint16, payload string, userProps ...string) {
	c.t.Helper()
	body := appendString(nil, topic)
	if qos > 0 {
		body = binary.BigEndian.AppendUint16(body, id)
	}
	if c.v5 {
		var props []byte
		for i := 0; i+1 < len(userProps); i += 2 {
			props = append(props, 0x26) // User Property
			props = appendString(props, userProps[i])
			props = appendString(props, userProps[i+1])
		}
		body = append(appendVarint(body, len(props)), props...)
	}
	body = append(body, payload...)
	c.send(packet(0x30|qos<<1, body))
}

// read returns the next packet, failing the test if none comes.
func (c *rawConn) read() rawPacket {
	c.t.Helper()
	p, err := c.next()
	require.NoError(c.t, err, "reading a packet")
	return p
}

// next reads the next packet or the error that ended the connection.
func (c *rawConn) next() (rawPacket, error) {
	if err := c.conn.SetReadDeadline(time.Now().Add(guard)); err != nil {
		return rawPacket{}, err
	}
	h, err := c.r.ReadByte()
	if err != nil {
		return rawPacket{}, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		d, err := c.r.ReadByte()
		if err != nil {
			return rawPacket{}, err
		}
		n += int(d&0x7f) * mult
		mult *= 128
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return rawPacket{}, errors.New("remaining length longer than 4 bytes")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return rawPacket{}, err
	}
	return rawPacket{header: h, body: body}, nil
}

// alive checks that the connection is still open and answered: PINGREQ gets PINGRESP.
func (c *rawConn) alive() {
	c.t.Helper()
	c.send([]byte{0xC0, 0})
	p := c.read()
	require.Equal(c.t, rawPacket{header: 0xD0, body: []byte{}}, p, "want PINGRESP, got %s", p.bytes())
}

// pubackReason is the reason code of a PUBACK or PUBREC body: 0x00 (success) when the
// packet has only its id (MQTT 5 §3.4.2.1).
func pubackReason(p rawPacket) byte {
	if len(p.body) < 3 {
		return 0
	}
	return p.body[2]
}

func newReader(conn net.Conn) *bufio.Reader { return bufio.NewReader(conn) }

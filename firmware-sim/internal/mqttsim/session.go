package mqttsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// outcome is how one publish ended.
type outcome int

const (
	outcomeAcked    outcome = iota // QoS ≥ 1: PUBACK or PUBCOMP received with a success code
	outcomeWritten                 // QoS 0: written to the connection
	outcomeRejected                // QoS ≥ 1: acknowledged with an error reason code (MQTT 5)
	outcomeFailed                  // not acknowledged: write error, connection lost, closed first
)

// session is one MQTT connection of one simulated sensor. Its two implementations wrap the
// 3.1.1 and the 5 client libraries.
type session interface {
	// send hands one PUBLISH to the client and returns without waiting for its
	// acknowledgement. Calls come from one goroutine, in publish order, and go out on the wire
	// in that order. done is called exactly once with the outcome, from any goroutine, possibly
	// before send returns.
	send(ctx context.Context, topic string, payload []byte, done func(outcome, error))
	// lost is closed when the connection has ended, for whatever reason. Every send made
	// before has had (or is about to have) its done called.
	lost() <-chan struct{}
	// window is how many publishes the client lets wait for acknowledgement at once.
	window() int
	// close disconnects, fails every publish still waiting and returns after the session's
	// goroutines have exited. It is idempotent.
	close()
}

// ConnectError is a failure to establish an MQTT connection: the network dial or the
// broker's refusal. Its message names the address and the reason, like
// "connect 127.0.0.1:1883: connection refused".
type ConnectError struct {
	Addr string
	Err  error
}

func (e *ConnectError) Error() string { return "connect " + e.Addr + ": " + e.Err.Error() }

func (e *ConnectError) Unwrap() error { return e.Err }

// dialReason strips the layers of a dial error that repeat what ConnectError already says
// ("dial tcp 127.0.0.1:1883: connect: connection refused" becomes "connection refused").
func dialReason(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	var sys *os.SyscallError
	if errors.As(err, &sys) && sys.Err != nil {
		err = sys.Err
	}
	return err
}

// reasonText names an MQTT 5 reason code (MQTT 5.0 §2.4) or, for codes 1–5 of a 3.1.1
// CONNACK, its return code (MQTT 3.1.1 §3.2.2.3) when v311 is set.
func reasonText(code byte, v311 bool) string {
	if v311 {
		switch code {
		case 1:
			return "unacceptable protocol version"
		case 2:
			return "identifier rejected"
		case 3:
			return "server unavailable"
		case 4:
			return "bad user name or password"
		case 5:
			return "not authorized"
		}
		return fmt.Sprintf("return code %d", code)
	}
	switch code {
	case 0x80:
		return "unspecified error"
	case 0x81:
		return "malformed packet"
	case 0x82:
		return "protocol error"
	case 0x83:
		return "implementation specific error"
	case 0x84:
		return "unsupported protocol version"
	case 0x85:
		return "client identifier not valid"
	case 0x86:
		return "bad user name or password"
	case 0x87:
		return "not authorized"
	case 0x88:
		return "server unavailable"
	case 0x89:
		return "server busy"
	case 0x8A:
		return "banned"
	case 0x8C:
		return "bad authentication method"
	case 0x90:
		return "topic name invalid"
	case 0x91:
		return "packet identifier in use"
	case 0x95:
		return "packet too large"
	case 0x97:
		return "quota exceeded"
	case 0x99:
		return "payload format invalid"
	case 0x9A:
		return "retain not supported"
	case 0x9B:
		return "QoS not supported"
	case 0x9C:
		return "use another server"
	case 0x9D:
		return "server moved"
	case 0x9F:
		return "connection rate exceeded"
	}
	return "error"
}

// refusal describes a negative acknowledgement: what, the code, and the broker's own words.
func refusal(what string, code byte, v311 bool, brokerSays string) error {
	detail := fmt.Sprintf("reason code 0x%02x", code)
	if v311 {
		detail = fmt.Sprintf("return code %d", code)
	}
	if brokerSays != "" {
		detail += fmt.Sprintf(", broker: %q", brokerSays)
	}
	return fmt.Errorf("%s: %s (%s)", what, reasonText(code, v311), detail)
}

// lingerTimeout bounds how long closing a connection waits for the broker to close its side.
const lingerTimeout = time.Second

// lingerConn closes a TCP connection the polite way: FIN after the data already written, then
// read and discard until the broker closes its side (for at most lingerTimeout), then close.
// A plain Close with unread bytes in the receive buffer — a PINGRESP on its way, say — makes
// the kernel answer with RST, and the broker's kernel then discards what the broker had not
// read yet: the last publishes and the DISCONNECT. That loses QoS 0 messages that were
// counted as written.
type lingerConn struct {
	*net.TCPConn
	once sync.Once
	err  error
}

func linger(c net.Conn) net.Conn {
	if tcp, ok := c.(*net.TCPConn); ok {
		return &lingerConn{TCPConn: tcp}
	}
	return c
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		// Best effort: if the half-close or the deadline fails, the connection is broken
		// already and the plain Close below is all that is left to do.
		if c.CloseWrite() == nil && c.SetReadDeadline(time.Now().Add(lingerTimeout)) == nil {
			// Ends at the broker's FIN, an error or the deadline; the bytes are of no use.
			io.Copy(io.Discard, c.TCPConn) //nolint:errcheck
		}
		c.err = c.TCPConn.Close()
	})
	return c.err
}

package serialprobe

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.bug.st/serial"
)

// readPoll bounds each blocking read. go.bug.st/serial's Close closes the descriptor before
// it wakes a blocked reader, so a read could land on a descriptor number the process has
// reused meanwhile; the reader therefore stops on its own between reads (within readPoll)
// before the port is closed, and closing waits up to readPoll. A read that times out
// returns (0, nil): nothing arrived. Shorter is not free: each wake-up is a blocking select
// on a thread of its own (200 ms cost a quarter more CPU than 1 s with 50 probes at 1 s).
const readPoll = time.Second

// event is what the reader goroutine passes on: a line, a dropped overlong line, or the
// port's failure (the last event).
type event struct {
	line     string
	overlong bool
	err      error
}

// conn is an open port and the goroutine reading it. The probe's Run goroutine owns it:
// only that goroutine writes, consumes events and closes.
type conn struct {
	port   serial.Port
	events chan event // closed when the reader has stopped
	stop   chan struct{}
	wg     sync.WaitGroup
}

// dial opens the port at path (8N1) and starts its reader. Whatever the circuit sent while
// nobody listened is flushed.
func dial(path string, baud int) (*conn, error) {
	port, err := serial.Open(path, &serial.Mode{BaudRate: baud, DataBits: 8,
		Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := port.SetReadTimeout(readPoll); err != nil {
		port.Close()
		return nil, fmt.Errorf("set read timeout on %s: %w", path, err)
	}
	if err := port.ResetInputBuffer(); err != nil {
		port.Close()
		return nil, fmt.Errorf("flush %s: %w", path, err)
	}
	c := &conn{port: port, events: make(chan event, 16), stop: make(chan struct{})}
	c.wg.Go(c.read)
	return c, nil
}

// read frames lines until the port fails or stop is closed. Memory is bounded by the
// framer's buffer and the events channel: when nobody consumes, it stops reading and the
// kernel's buffer takes the backlog.
func (c *conn) read() {
	defer close(c.events)
	var (
		f   framer
		buf [256]byte
	)
	send := func(ev event) bool {
		select {
		case c.events <- ev:
			return true
		case <-c.stop:
			return false
		}
	}
	for {
		n, err := c.port.Read(buf[:])
		if n > 0 && !f.feed(buf[:n], func(line []byte, overlong bool) bool {
			return send(event{line: string(line), overlong: overlong})
		}) {
			return
		}
		if err != nil {
			send(event{err: err})
			return
		}
		select {
		case <-c.stop:
			return
		default:
		}
	}
}

// write sends one command with its carriage return.
func (c *conn) write(cmd string) error {
	b := []byte(cmd + "\r")
	for len(b) > 0 {
		n, err := c.port.Write(b)
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b = b[n:]
	}
	return nil
}

// close stops the reader, then closes the port. It returns the port's close error.
func (c *conn) close() error {
	close(c.stop)
	c.wg.Wait()
	err := c.port.Close()
	var pe *serial.PortError
	if errors.As(err, &pe) && pe.Code() == serial.PortClosed {
		return nil
	}
	return err
}

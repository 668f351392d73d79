package broker

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeLog is the far side of a batchConn: it records each write the connection makes.
type writeLog struct {
	net.Conn  // nil: only Write and Close are called
	writes    [][]byte
	fail      error
	closed    bool
	deadlines []time.Time
}

func (w *writeLog) Write(p []byte) (int, error) {
	if w.fail != nil {
		return 0, w.fail
	}
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func (w *writeLog) Close() error { w.closed = true; return nil }

func (w *writeLog) SetDeadline(t time.Time) error {
	w.deadlines = append(w.deadlines, t)
	return nil
}

// mochi moves the deadline on every packet; the socket's moves only when it must.
func TestBatchConnMovesTheDeadlineOnlyWhenDue(t *testing.T) {
	far := &writeLog{}
	c := newBatchConn(far)
	t0 := time.Now().Add(90 * time.Second)

	require.NoError(t, c.SetDeadline(t0))
	require.Len(t, far.deadlines, 1)
	set := far.deadlines[0]
	assert.Equal(t, t0.Add(time.Second), set, "90 s ahead: a second of slack")

	for _, d := range []time.Duration{time.Millisecond, 500 * time.Millisecond, time.Second} {
		require.NoError(t, c.SetDeadline(t0.Add(d)))
	}
	assert.Len(t, far.deadlines, 1, "deadlines within the slack move nothing")

	require.NoError(t, c.SetDeadline(t0.Add(time.Second+time.Millisecond)))
	require.Len(t, far.deadlines, 2, "a deadline past the socket's is passed on")
	assert.True(t, far.deadlines[1].After(t0.Add(time.Second)))

	soon := time.Now().Add(160 * time.Millisecond)
	require.NoError(t, c.SetDeadline(soon))
	require.Len(t, far.deadlines, 3, "an earlier deadline is passed on")
	assert.False(t, far.deadlines[2].After(soon.Add(10*time.Millisecond)), "with a sixteenth of its distance as slack at most")
	assert.False(t, far.deadlines[2].Before(soon))

	require.NoError(t, c.SetDeadline(time.Time{}))
	require.Len(t, far.deadlines, 4)
	assert.True(t, far.deadlines[3].IsZero(), "no deadline is passed on")
	require.NoError(t, c.SetDeadline(time.Time{}))
	require.NoError(t, c.SetDeadline(soon))
	assert.Len(t, far.deadlines, 6)
}

func TestBatchConnSendsHeldWritesTogether(t *testing.T) {
	w := &writeLog{}
	c := newBatchConn(w)
	_, err := c.Write([]byte("a"))
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte("a")}, w.writes, "not held: written at once")

	c.hold()
	for _, p := range []string{"b", "cd", "e"} {
		n, err := c.Write([]byte(p))
		require.NoError(t, err)
		assert.Equal(t, len(p), n)
	}
	assert.Len(t, w.writes, 1, "held")
	c.flush()
	assert.Equal(t, [][]byte{[]byte("a"), []byte("bcde")}, w.writes, "one write for all that was held")
	c.flush()
	assert.Len(t, w.writes, 2, "nothing held, nothing written")

	var nilConn *batchConn // mochi's inline client has no connection of ours
	nilConn.hold()
	nilConn.flush()
}

func TestBatchConnHoldsAtMostHoldMax(t *testing.T) {
	w := &writeLog{}
	c := newBatchConn(w)
	c.hold()
	chunk := bytes.Repeat([]byte("x"), holdMax/2)
	for range 3 {
		_, err := c.Write(chunk)
		require.NoError(t, err)
	}
	require.Len(t, w.writes, 1, "the third chunk would pass the bound: the first two went")
	assert.Len(t, w.writes[0], holdMax)
	big := bytes.Repeat([]byte("y"), holdMax+1)
	_, err := c.Write(big)
	require.NoError(t, err)
	require.Len(t, w.writes, 3, "what was held, then the large write on its own")
	assert.Equal(t, big, w.writes[2])
	c.flush()
	assert.Len(t, w.writes, 3)
}

func TestBatchConnFlushErrorClosesTheConnection(t *testing.T) {
	w := &writeLog{}
	c := newBatchConn(w)
	c.hold()
	_, err := c.Write([]byte("ack"))
	require.NoError(t, err, "held: the error can only come with the flush")
	w.fail = errors.New("connection reset by peer")
	c.flush()
	assert.True(t, w.closed, "closed, so that the reader sees the connection gone")
	_, err = c.Write([]byte("next"))
	assert.ErrorIs(t, err, w.fail, "writes go through again once flushed")
}

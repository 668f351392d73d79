package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// copyBinary builds a COPY ... FROM STDIN (FORMAT binary) stream by hand, for the rows the
// cloud writes most: a batch's readings. pgx's CopyFrom finds the columns' types with a
// round trip of its own and then encodes every value through its type map, which took a
// fifth of the cloud's CPU in a backlog drain; the columns of measurements are fixed
// (the migrations), so their encodings are written here directly. The format is
// PostgreSQL's (the COPY reference, "Binary Format"): a header, then per row a field
// count and each field as a length (-1 for NULL) and its bytes in the type's binary
// send format, then a trailer.
type copyBinary struct {
	buf []byte
}

// copySignature begins every binary COPY stream: the 11-byte signature, then a flags
// field and a header extension length, both zero.
const copySignature = "PGCOPY\n\xff\r\n\x00"

// copyStreams keeps the streams of past batches for the next: a stream is about 160 bytes
// a reading, and one made anew for every batch was a good part of the garbage the cloud
// collected during an ingest.
var copyStreams = sync.Pool{New: func() any { return new(copyBinary) }}

// maxKeptCopyBytes is the largest stream copyStreams keeps: a batch of readings at most.
const maxKeptCopyBytes = 4 << 20

// newCopyBinary returns an empty stream from copyStreams; release puts it back.
func newCopyBinary(sizeHint int) *copyBinary {
	c := copyStreams.Get().(*copyBinary)
	c.buf = slices.Grow(c.buf[:0], sizeHint)
	c.buf = append(c.buf, copySignature...)
	c.buf = binary.BigEndian.AppendUint32(c.buf, 0)
	c.buf = binary.BigEndian.AppendUint32(c.buf, 0)
	return c
}

func (c *copyBinary) row(fields int) { c.buf = binary.BigEndian.AppendUint16(c.buf, uint16(fields)) }

func (c *copyBinary) null() { c.buf = binary.BigEndian.AppendUint32(c.buf, math.MaxUint32) } // -1

func (c *copyBinary) text(s string) {
	c.buf = binary.BigEndian.AppendUint32(c.buf, uint32(len(s)))
	c.buf = append(c.buf, s...)
}

// textOrNull writes "" as NULL, as orNull does for pgx.
func (c *copyBinary) textOrNull(s string) {
	if s == "" {
		c.null()
		return
	}
	c.text(s)
}

func (c *copyBinary) int8(v int64) {
	c.buf = binary.BigEndian.AppendUint32(c.buf, 8)
	c.buf = binary.BigEndian.AppendUint64(c.buf, uint64(v))
}

func (c *copyBinary) float8(v float64) {
	c.buf = binary.BigEndian.AppendUint32(c.buf, 8)
	c.buf = binary.BigEndian.AppendUint64(c.buf, math.Float64bits(v))
}

// pgEpoch is where timestamptz counts from: microseconds since 2000-01-01 00:00 UTC.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// timestamptz writes t, which dbTime has truncated to the microsecond (UnixMicro: t.Sub
// would saturate beyond ±292 years).
func (c *copyBinary) timestamptz(t time.Time) {
	c.buf = binary.BigEndian.AppendUint32(c.buf, 8)
	c.buf = binary.BigEndian.AppendUint64(c.buf, uint64(t.UnixMicro()-pgEpoch.UnixMicro()))
}

// textOID is the element type of a text[] column.
const textOID = 25

// textArray writes a one-dimensional text[]; an empty one has no dimensions, as
// PostgreSQL's own array_send writes '{}'.
func (c *copyBinary) textArray(ss []string) {
	size := 12
	if len(ss) > 0 {
		size += 8
		for _, s := range ss {
			size += 4 + len(s)
		}
	}
	c.buf = binary.BigEndian.AppendUint32(c.buf, uint32(size))
	ndim := uint32(0)
	if len(ss) > 0 {
		ndim = 1
	}
	c.buf = binary.BigEndian.AppendUint32(c.buf, ndim)
	c.buf = binary.BigEndian.AppendUint32(c.buf, 0) // no NULL elements
	c.buf = binary.BigEndian.AppendUint32(c.buf, textOID)
	if len(ss) == 0 {
		return
	}
	c.buf = binary.BigEndian.AppendUint32(c.buf, uint32(len(ss)))
	c.buf = binary.BigEndian.AppendUint32(c.buf, 1) // lower bound
	for _, s := range ss {
		c.text(s)
	}
}

// run ends the stream and copies it into table's columns on conn.
func (c *copyBinary) run(ctx context.Context, conn *pgx.Conn, table pgx.Identifier, columns []string) error {
	c.buf = binary.BigEndian.AppendUint16(c.buf, math.MaxUint16) // -1: the trailer
	cols := make([]string, len(columns))
	for i, col := range columns {
		cols[i] = pgx.Identifier{col}.Sanitize()
	}
	sql := "COPY " + table.Sanitize() + " (" + strings.Join(cols, ", ") + ") FROM STDIN (FORMAT binary)"
	_, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(c.buf), sql)
	return err
}

// release returns c to copyStreams. Only after a run that succeeded: pgconn's CopyFrom may
// return on a broken connection before its writer has stopped reading the stream.
func (c *copyBinary) release() {
	if cap(c.buf) <= maxKeptCopyBytes {
		copyStreams.Put(c)
	}
}

package store

import (
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/pgtest"
)

// What copyBinary writes is what PostgreSQL reads back, for every kind of value the
// readings' columns hold: NULLs, empty and long arrays, text of any script, the extremes
// of float8, int8 and timestamptz.
func TestCopyBinaryRoundTrip(t *testing.T) {
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, pgtest.New(t))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })
	_, err = conn.Exec(ctx, `CREATE TABLE c (t timestamptz, s text, f double precision, i bigint, a text[], n text)`)
	require.NoError(t, err)

	type row struct {
		t time.Time
		s string
		f float64
		i int64
		a []string
		n *string
	}
	lab := "नदी लैब 🌊"
	rows := []row{
		{time.Date(2025, 11, 13, 12, 0, 0, 123456000, time.UTC), "ph", 7.25, 1, []string{}, nil},
		{time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC), "", -0.5, math.MaxInt64, []string{"spike", "stuck"}, &lab},
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), "Ωμέγα", math.MaxFloat64, math.MinInt64, []string{""}, nil},
		{time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), "x", math.SmallestNonzeroFloat64, 0, []string{"a", "bb", "ccc"}, nil},
	}
	c := newCopyBinary(0)
	for _, r := range rows {
		c.row(6)
		c.timestamptz(r.t)
		c.text(r.s)
		c.float8(r.f)
		c.int8(r.i)
		c.textArray(r.a)
		if r.n == nil {
			c.textOrNull("")
		} else {
			c.textOrNull(*r.n)
		}
	}
	require.NoError(t, c.run(ctx, conn, pgx.Identifier{"c"}, []string{"t", "s", "f", "i", "a", "n"}))

	got, err := conn.Query(ctx, `SELECT t, s, f, i, a, n FROM c ORDER BY ctid`)
	require.NoError(t, err)
	var back []row
	for got.Next() {
		var r row
		require.NoError(t, got.Scan(&r.t, &r.s, &r.f, &r.i, &r.a, &r.n))
		r.t = r.t.UTC()
		back = append(back, r)
	}
	require.NoError(t, got.Err())
	assert.Equal(t, rows, back)

	var text string
	require.NoError(t, conn.QueryRow(ctx, `SELECT a::text FROM c ORDER BY ctid LIMIT 1`).Scan(&text))
	assert.Equal(t, "{}", text, "an empty array is PostgreSQL's own '{}'")
}

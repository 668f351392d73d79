package e2e

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dbConnect opens a connection to the cloud's database for checks; it is closed at the end
// of the test.
func dbConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err, "connect to the cloud's database")
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// dbReading is one row of measurements.
type dbReading struct {
	Seq   int64
	Time  time.Time
	Param string
	Value float64
}

// dbReadings returns the station's rows of measurements in seq order.
func dbReadings(t *testing.T, conn *pgx.Conn) []dbReading {
	t.Helper()
	rows, err := conn.Query(t.Context(),
		`SELECT seq, time, param, value FROM measurements WHERE station_id = $1 ORDER BY seq, time`, station)
	require.NoError(t, err)
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dbReading])
	require.NoError(t, err, "read measurements")
	return rs
}

// sameInstant compares an agent's time with what PostgreSQL keeps of it (microseconds).
func sameInstant(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -time.Microsecond && d < time.Microsecond
}

// checkOptions say what a test knows about what the agent stored.
type checkOptions struct {
	// Acked are the conductivity values that got a PUBACK: each must be in the cloud
	// exactly once.
	Acked []float64
	// OnlyAcked: every conductivity reading the agent stored was acknowledged (no publish
	// was cut short), so the cloud's conductivity values are exactly Acked.
	OnlyAcked bool
}

// requireExactlyOnce waits until the agent's queue has drained and then checks that the
// cloud holds exactly what the agent stored, once: every reading (seq, time, param,
// value), every alert event, every WQI history point, and every alert with its original
// times. It returns the final queue.
func requireExactlyOnce(t *testing.T, c *cloud, a *agent, o checkOptions) queue {
	t.Helper()
	conn := dbConnect(t, c.DatabaseURL)
	cloudState := func() string { return describe(t.Context(), conn) }
	q := a.waitDrained(t, cloudState)
	assert.Zero(t, q.Rejected, "the cloud refused records, which the agent set aside")

	// Readings: the agent's own record of what it stored is the reference.
	held := a.readings(t)
	slices.SortFunc(held, func(x, y agentReading) int { return cmp.Compare(x.Seq, y.Seq) })
	rows := dbReadings(t, conn)
	require.Equal(t, q.lastSeq("readings"), uint64(len(held)),
		"the agent should hold readings 1..last seq without a gap (queue %s)", q)
	assertSameReadings(t, held, rows)

	var n, distinct int64
	require.NoError(t, conn.QueryRow(t.Context(),
		`SELECT count(*), count(DISTINCT seq) FROM measurements WHERE station_id = $1`, station).Scan(&n, &distinct))
	assert.Equal(t, n, distinct, "duplicate seqs in measurements: %d rows, %d distinct seqs", n, distinct)

	// Acknowledged values: each once.
	counts := map[float64]int{}
	var conductivity []float64
	for _, r := range rows {
		if r.Param == "conductivity" {
			counts[r.Value]++
			conductivity = append(conductivity, r.Value)
		}
	}
	var missing, doubled []float64
	for _, v := range o.Acked {
		switch counts[v] {
		case 0:
			missing = append(missing, v)
		case 1:
		default:
			doubled = append(doubled, v)
		}
	}
	assert.Empty(t, missing, "acknowledged readings missing in the cloud (%d of %d acknowledged)", len(missing), len(o.Acked))
	assert.Empty(t, doubled, "acknowledged readings stored more than once in the cloud")
	if o.OnlyAcked {
		want := slices.Clone(o.Acked)
		slices.Sort(want)
		slices.Sort(conductivity)
		if !slices.Equal(want, conductivity) {
			t.Errorf("the cloud's conductivity values differ from the acknowledged ones: %d acknowledged, %d in the cloud",
				len(want), len(conductivity))
		}
	}

	checkStream(t, conn, "wqi_readings", q.lastSeq("wqi"))

	// Alerts: the agent may open or resolve one (a sensor gone quiet) while this runs, so
	// compare again after the queue has drained again until both sides agree.
	deadline := time.Now().Add(guard)
	for {
		diffs := alertDiffs(t, a, conn, q)
		if len(diffs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			assert.Empty(t, diffs, "the cloud's alerts and alert events should be the agent's, once each; queue %s", q)
			break
		}
		time.Sleep(200 * time.Millisecond)
		q = a.waitDrained(t, cloudState)
	}
	return q
}

// assertSameReadings compares the agent's readings with the cloud's rows, both in seq
// order, and reports the first few differences.
func assertSameReadings(t *testing.T, held []agentReading, rows []dbReading) {
	t.Helper()
	var diffs []string
	i, j := 0, 0
	for (i < len(held) || j < len(rows)) && len(diffs) < 10 {
		switch {
		case j >= len(rows) || (i < len(held) && int64(held[i].Seq) < rows[j].Seq):
			diffs = append(diffs, fmt.Sprintf("seq %d (%s %v) missing in the cloud", held[i].Seq, held[i].Param, held[i].Value))
			i++
		case i >= len(held) || rows[j].Seq < int64(held[i].Seq):
			diffs = append(diffs, fmt.Sprintf("seq %d (%s %v) in the cloud but not at the agent", rows[j].Seq, rows[j].Param, rows[j].Value))
			j++
		default:
			h, r := held[i], rows[j]
			if h.Param != r.Param || h.Value != r.Value || !sameInstant(h.Time, r.Time) {
				diffs = append(diffs, fmt.Sprintf("seq %d: agent %s %v at %s, cloud %s %v at %s", h.Seq,
					h.Param, h.Value, h.Time.Format(time.RFC3339Nano), r.Param, r.Value, r.Time.Format(time.RFC3339Nano)))
			}
			i++
			j++
			// A second row with the same seq is a duplicate.
			for j < len(rows) && rows[j].Seq == r.Seq {
				diffs = append(diffs, fmt.Sprintf("seq %d stored twice in the cloud", r.Seq))
				j++
			}
		}
	}
	assert.Empty(t, diffs, "the cloud's measurements (%d rows) should be exactly the agent's readings (%d)", len(rows), len(held))
}

// checkStream checks that table holds the station's records 1..last of a stream once each.
func checkStream(t *testing.T, conn *pgx.Conn, table string, last uint64) {
	t.Helper()
	assert.Empty(t, streamDiffs(t, conn, table, last), "the cloud's %s should be the agent's records 1..%d, once each", table, last)
}

// streamDiffs compares table with the station's records 1..last of a stream.
func streamDiffs(t *testing.T, conn *pgx.Conn, table string, last uint64) []string {
	t.Helper()
	var n, distinct, top int64
	require.NoError(t, conn.QueryRow(t.Context(), fmt.Sprintf(
		`SELECT count(*), count(DISTINCT seq), coalesce(max(seq), 0) FROM %s WHERE station_id = $1`, table),
		station).Scan(&n, &distinct, &top))
	var diffs []string
	if n != int64(last) || top != int64(last) {
		diffs = append(diffs, fmt.Sprintf("%s: want the agent's %d records, found %d rows up to seq %d", table, last, n, top))
	}
	if n != distinct {
		diffs = append(diffs, fmt.Sprintf("%s: %d rows but %d distinct seqs: duplicates", table, n, distinct))
	}
	return diffs
}

// dbAlert is one row of alerts.
type dbAlert struct {
	ID         int64
	Rule       string
	State      string
	OpenedAt   time.Time
	ResolvedAt *time.Time
}

func dbAlerts(t *testing.T, conn *pgx.Conn) []dbAlert {
	t.Helper()
	rows, err := conn.Query(t.Context(),
		`SELECT alert_id, rule, state, opened_at, resolved_at FROM alerts WHERE station_id = $1 ORDER BY alert_id`, station)
	require.NoError(t, err)
	as, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dbAlert])
	require.NoError(t, err, "read alerts")
	return as
}

// alertDiffs compares the cloud's alert events with the agent's alerts stream (q), and
// the cloud's alerts with the agent's: one row each, in the same state with the same
// opened and resolved times.
// alertsListed is how many alerts `ph-agent alerts --all` lists at most, newest first.
const alertsListed = 50

func alertDiffs(t *testing.T, a *agent, conn *pgx.Conn, q queue) []string {
	t.Helper()
	diffs := streamDiffs(t, conn, "alert_events", q.lastSeq("alerts"))
	held := a.alerts(t)
	stored := dbAlerts(t, conn)
	byID := map[int64]dbAlert{}
	for _, s := range stored {
		byID[s.ID] = s
	}
	for _, h := range held {
		s, ok := byID[int64(h.ID)]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("alert %d (%s %s) missing in the cloud", h.ID, h.Rule, h.State))
			continue
		}
		delete(byID, s.ID)
		if s.State != h.State || s.Rule != h.Rule || !sameInstant(s.OpenedAt, h.OpenedAt) ||
			(s.ResolvedAt == nil) != (h.ResolvedAt == nil) ||
			(s.ResolvedAt != nil && !sameInstant(*s.ResolvedAt, *h.ResolvedAt)) {
			diffs = append(diffs, fmt.Sprintf("alert %d: agent %s %s opened %s resolved %s; cloud %s %s opened %s resolved %s",
				h.ID, h.Rule, h.State, h.OpenedAt.Format(time.RFC3339Nano), fmtTime(h.ResolvedAt),
				s.Rule, s.State, s.OpenedAt.Format(time.RFC3339Nano), fmtTime(s.ResolvedAt)))
		}
	}
	// `ph-agent alerts --all` lists at most alertsListed, the newest; the cloud keeps all.
	// The alert_events check above shows that every transition arrived once.
	for id, s := range byID {
		if len(held) == alertsListed {
			continue // older than the listing, or outside the events it folds
		}
		diffs = append(diffs, fmt.Sprintf("alert %d (%s %s) in the cloud but unknown to the agent", id, s.Rule, s.State))
	}
	return diffs
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339Nano)
}

// describe summarizes the station's rows for failure messages.
func describe(ctx context.Context, conn *pgx.Conn) string {
	var b strings.Builder
	for _, table := range []string{"measurements", "alert_events", "wqi_readings", "alerts"} {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE station_id = $1", station).Scan(&n); err != nil {
			fmt.Fprintf(&b, "%s: %v; ", table, err)
			continue
		}
		fmt.Fprintf(&b, "%s: %d rows; ", table, n)
	}
	return strings.TrimSuffix(b.String(), "; ")
}

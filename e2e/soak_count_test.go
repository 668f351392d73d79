package e2e

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// soakFigures are the soak's counts. Readings are the probes' acknowledged readings and
// the upstream sources' values; lost and duplicated add up those, WQI points and alert
// transitions; breakdown says which.
type soakFigures struct {
	readings, lost, duplicated int
	breakdown                  string
}

// tally compares the identities that must be in the cloud once each (want) with those the
// cloud holds (have). lost counts identities of want that the cloud lacks; duplicated
// counts every copy beyond the first of an identity, in the cloud or in want. in counts
// the cloud's copies of each identity.
func tally[K comparable](want, have []K) (lost, duplicated int, in map[K]int) {
	in = make(map[K]int, len(have))
	for _, k := range have {
		in[k]++
	}
	for _, n := range in {
		duplicated += n - 1
	}
	seen := make(map[K]bool, len(want))
	for _, k := range want {
		if seen[k] {
			duplicated++
			continue
		}
		seen[k] = true
		if in[k] == 0 {
			lost++
		}
	}
	return lost, duplicated, in
}

func TestTally(t *testing.T) {
	for _, tc := range []struct {
		name            string
		want, have      []string
		lost, duplicate int
	}{
		{"once each", []string{"a", "b"}, []string{"b", "a"}, 0, 0},
		{"absent", []string{"a", "b", "c"}, []string{"a"}, 2, 0},
		{"twice in the cloud", []string{"a", "b"}, []string{"a", "b", "b"}, 0, 1},
		{"three times, one absent", []string{"a", "b"}, []string{"a", "a", "a"}, 1, 2},
		{"recorded twice at the station", []string{"a", "a"}, []string{"a"}, 0, 1},
		{"extra in the cloud", []string{"a"}, []string{"a", "x"}, 0, 0},
		{"nothing", nil, nil, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lost, dup, _ := tally(tc.want, tc.have)
			assert.Equal(t, tc.lost, lost, "lost")
			assert.Equal(t, tc.duplicate, dup, "duplicated")
		})
	}
}

// The identities. A reading is its sensor, parameter and value (every value a probe sent
// is its own, see valueText); its time and flags are then checked against what was sent. A
// WQI point is its time (the agent's clock, to PostgreSQL's microsecond) and value; an
// alert transition its alert, kind and time.
type (
	readingID struct {
		sensor, param string
		value         float64
	}
	wqiID struct {
		at    int64 // Unix microseconds
		value float64
	}
	transitionID struct {
		alert      uint64
		transition string
		at         int64 // Unix microseconds
	}
)

// micros is t as PostgreSQL stores it (pgx sends microseconds, truncated).
func micros(t time.Time) int64 { return t.Truncate(time.Microsecond).UnixMicro() }

// bufferedEvent is an alert transition as the agent stored it (the JSON of its alert
// event).
type bufferedEvent struct {
	Seq        uint64     `json:"-"`
	ID         uint64     `json:"id"`
	Transition string     `json:"transition"`
	Time       time.Time  `json:"time"`
	State      string     `json:"state"`
	OpenedAt   time.Time  `json:"opened_at"`
	ResolvedAt *time.Time `json:"resolved_at"`
}

// bufferedWQI is a WQI point as the agent stored it.
type bufferedWQI struct {
	Seq   uint64    `json:"-"`
	Time  time.Time `json:"time"`
	WQI   *float64  `json:"wqi"`
	Class string    `json:"class"`
}

// stationRecords are the alert transitions and WQI points in the agent's buffer.
type stationRecords struct {
	events []bufferedEvent
	wqi    []bufferedWQI
}

// readBuffer reads the alert transitions and WQI points from a stopped agent's buffer,
// read-only, by the spool's file format (agent/internal/spool): one bbolt bucket per
// stream named after it, keys the 8-byte big-endian seq, values the record's JSON. The
// spool keeps forwarded records for its retention (30 days), so the buffer holds every
// record of the week.
func readBuffer(t *testing.T, path string) stationRecords {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: guard})
	require.NoError(t, err, "open the agent's buffer")
	defer db.Close()
	var rec stationRecords
	err = db.View(func(tx *bolt.Tx) error {
		each := func(stream string, f func(seq uint64, v []byte) error) error {
			b := tx.Bucket([]byte(stream))
			if b == nil {
				return fmt.Errorf("no bucket %q: the buffer's layout changed", stream)
			}
			return b.ForEach(func(k, v []byte) error {
				if len(k) != 8 {
					return fmt.Errorf("%s: key %x is not a seq", stream, k)
				}
				return f(binary.BigEndian.Uint64(k), v)
			})
		}
		if err := each("alerts", func(seq uint64, v []byte) error {
			e := bufferedEvent{Seq: seq}
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("alert event %d: %w", seq, err)
			}
			rec.events = append(rec.events, e)
			return nil
		}); err != nil {
			return err
		}
		return each("wqi", func(seq uint64, v []byte) error {
			w := bufferedWQI{Seq: seq}
			if err := json.Unmarshal(v, &w); err != nil {
				return fmt.Errorf("WQI point %d: %w", seq, err)
			}
			rec.wqi = append(rec.wqi, w)
			return nil
		})
	})
	require.NoError(t, err, "read the agent's buffer")
	for i, e := range rec.events {
		require.Equal(t, uint64(i+1), e.Seq, "the buffer's alert events should be seqs 1..n without a gap")
	}
	for i, w := range rec.wqi {
		require.Equal(t, uint64(i+1), w.Seq, "the buffer's WQI points should be seqs 1..n without a gap")
	}
	return rec
}

// collect waits until the agent has forwarded everything, lists its readings, stops it
// and reads its buffer. A record the agent made after its queue drained (a sensor gone
// quiet once the week's publishing ended) is forwarded by starting it again.
func (s *soak) collect(conn *pgx.Conn) ([]agentReading, stationRecords) {
	t := s.t
	cloudState := func() string { return describe(t.Context(), conn) }
	for attempt := 1; ; attempt++ {
		q := s.a.waitDrained(t, cloudState)
		assert.Zero(t, q.Rejected, "the cloud refused records, which the agent set aside")
		held := s.a.readings(t)
		require.Less(t, len(held), 100000, "`ph-agent readings` lists at most 100000: keep the week smaller")
		s.a.Stop(t)
		rec := readBuffer(t, filepath.Join(s.a.DataDir, "agent.db"))
		late := len(rec.events) - int(q.lastSeq("alerts")) + len(rec.wqi) - int(q.lastSeq("wqi"))
		if late <= 0 || attempt == 3 {
			return held, rec
		}
		t.Logf("%d records were made after the queue drained; starting the agent to forward them", late)
		s.a.Start(t)
	}
}

// soakRow is one row of measurements.
type soakRow struct {
	Seq           int64
	Time          time.Time
	Sensor, Param string
	Value         float64
	Unsynced      bool
}

func queryRows[T any](t *testing.T, conn *pgx.Conn, sql string) []T {
	t.Helper()
	rows, err := conn.Query(t.Context(), sql, station)
	require.NoError(t, err, sql)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[T])
	require.NoError(t, err, sql)
	return out
}

// count drains and stops the agent and counts what reached the cloud.
func (s *soak) count() soakFigures {
	t := s.t
	conn := dbConnect(t, s.c.DatabaseURL)
	served := s.readUpstream()
	held, rec := s.collect(conn)
	var f soakFigures

	// Readings.
	rows := queryRows[soakRow](t, conn, `SELECT seq, time, sensor, param, value, 'time_unsynced' = ANY(flags)
		FROM measurements WHERE station_id = $1 ORDER BY seq, time`)
	var acked, sent []readingID
	for _, p := range s.sent {
		id := readingID{p.probe.sensor, p.probe.param, p.value}
		sent = append(sent, id)
		if p.acked {
			acked = append(acked, id)
		}
	}
	have := make([]readingID, len(rows))
	byID := make(map[readingID]soakRow, len(rows))
	for i, r := range rows {
		have[i] = readingID{r.Sensor, r.Param, r.Value}
		byID[have[i]] = r
	}
	lostR, dupR, in := tally(acked, have)
	f.readings, f.lost, f.duplicated = len(acked), lostR, dupR
	known := make(map[readingID]bool, len(sent))
	for _, id := range sent {
		known[id] = true
	}
	for id := range in {
		if !known[id] {
			t.Errorf("the cloud holds a reading no probe sent: %+v", id)
		}
	}
	isAcked := make(map[readingID]bool, len(acked))
	for _, id := range acked {
		isAcked[id] = true
	}
	unacked := 0
	for id := range in {
		if !isAcked[id] {
			unacked++
		}
	}
	s.checkReadings(byID)
	dbRows := make([]dbReading, len(rows))
	for i, r := range rows {
		dbRows[i] = dbReading{Seq: r.Seq, Time: r.Time, Param: r.Param, Value: r.Value}
	}
	slices.SortFunc(held, func(x, y agentReading) int { return cmp.Compare(x.Seq, y.Seq) })
	assertSameReadings(t, held, dbRows)

	// WQI points.
	wqiRows := queryRows[struct {
		Seq   int64
		Time  time.Time
		WQI   float64
		Class string
	}](t, conn, `SELECT seq, time, wqi, class FROM wqi_readings WHERE station_id = $1 ORDER BY seq`)
	var wantW, haveW []wqiID
	valueless := 0
	for _, w := range rec.wqi {
		if w.WQI == nil || math.IsNaN(*w.WQI) {
			valueless++ // it cannot travel: lost
			continue
		}
		wantW = append(wantW, wqiID{micros(w.Time), *w.WQI})
	}
	for _, r := range wqiRows {
		haveW = append(haveW, wqiID{r.Time.UnixMicro(), r.WQI})
	}
	lostW, dupW, inW := tally(wantW, haveW)
	lostW += valueless
	f.lost, f.duplicated = f.lost+lostW, f.duplicated+dupW
	phantoms(t, "WQI point", wantW, inW)

	// Alert transitions, and each alert's final state.
	eventRows := queryRows[struct {
		Seq        int64
		Alert      int64
		Transition string
		Time       time.Time
	}](t, conn, `SELECT seq, alert_id, transition, time FROM alert_events WHERE station_id = $1 ORDER BY seq`)
	var wantE, haveE []transitionID
	kinds := map[string]int{}
	last := map[uint64]bufferedEvent{}
	for _, e := range rec.events {
		wantE = append(wantE, transitionID{e.ID, e.Transition, micros(e.Time)})
		kinds[e.Transition]++
		last[e.ID] = e
	}
	for _, r := range eventRows {
		haveE = append(haveE, transitionID{uint64(r.Alert), r.Transition, r.Time.UnixMicro()})
	}
	lostE, dupE, inE := tally(wantE, haveE)
	f.lost, f.duplicated = f.lost+lostE, f.duplicated+dupE
	phantoms(t, "alert transition", wantE, inE)
	checkAlertStates(t, last, dbAlerts(t, conn))

	require.Positive(t, len(rec.wqi), "the week made no WQI point: the index was never computed")
	require.Positive(t, kinds["opened"], "no alert opened in the week: the river model crosses no limit")
	require.Positive(t, kinds["resolved"], "no alert resolved in the week")
	f.breakdown = fmt.Sprintf("readings: %d published, %d acknowledged, %d lost, %d duplicated, %d more stored unacknowledged; "+
		"WQI points: %d recorded, %d lost, %d duplicated; alert transitions: %d recorded %v, %d lost, %d duplicated; "+
		"faults: %d cloud outages (backlogs %v), %d PostgreSQL restarts, %d agent restarts, %d clock sync losses, %d NTP steps",
		len(s.sent), len(acked), lostR, dupR, unacked, len(rec.wqi), lostW, dupW, len(rec.events), kinds, lostE, dupE,
		s.outages, s.backlogs, s.dbRestarts, s.agentRestarts, s.syncLosses, s.ntpSteps)
	s.countUpstream(conn, served, &f)
	return f
}

// checkReadings checks each acknowledged reading's row in the cloud: the time its probe
// sent, and the time_unsynced flag exactly when the agent did not trust its clock all the
// while the publish was in flight (a publish that straddled a change may have either).
func (s *soak) checkReadings(byID map[readingID]soakRow) {
	t := s.t
	var moved, flagWrong []string
	flagged, clean := 0, 0
	for _, p := range s.sent {
		r, ok := byID[readingID{p.probe.sensor, p.probe.param, p.value}]
		if !p.acked || !ok {
			continue
		}
		if !r.Time.Equal(p.at) {
			moved = append(moved, fmt.Sprintf("%s %v sent at %s, stored at %s", p.probe.sensor, p.value,
				p.at.Format(time.RFC3339Nano), r.Time.UTC().Format(time.RFC3339Nano)))
		}
		if p.phase != p.settled {
			continue
		}
		unsynced := p.phase%2 == 1
		if r.Unsynced != unsynced {
			flagWrong = append(flagWrong, fmt.Sprintf("%s %v (seq %d): time_unsynced %v, the agent's clock was synced: %v",
				p.probe.sensor, p.value, r.Seq, r.Unsynced, !unsynced))
		}
		if unsynced {
			flagged++
		} else {
			clean++
		}
	}
	assert.Empty(t, moved[:min(len(moved), 10)], "%d readings stored with another time than their probe sent", len(moved))
	assert.Empty(t, flagWrong[:min(len(flagWrong), 10)], "%d readings with the wrong time_unsynced flag", len(flagWrong))
	if s.syncLosses > 0 {
		assert.Positive(t, flagged, "no reading was published while the agent's clock was unsynced")
	}
	assert.Positive(t, clean, "no reading was published while the agent's clock was synced")
	t.Logf("clock sync: %d readings checked flagged time_unsynced, %d checked unflagged", flagged, clean)
}

// phantoms reports identities the cloud holds that the station never recorded.
func phantoms[K comparable](t *testing.T, what string, want []K, in map[K]int) {
	t.Helper()
	known := make(map[K]bool, len(want))
	for _, k := range want {
		known[k] = true
	}
	var extra []K
	for k := range in {
		if !known[k] {
			extra = append(extra, k)
		}
	}
	assert.Empty(t, extra[:min(len(extra), 10)], "%d of the cloud's %ss were never recorded by the agent", len(extra), what)
}

// checkAlertStates compares each alert's row in the cloud with its last transition at the
// station.
func checkAlertStates(t *testing.T, last map[uint64]bufferedEvent, stored []dbAlert) {
	t.Helper()
	byID := make(map[uint64]dbAlert, len(stored))
	for _, a := range stored {
		byID[uint64(a.ID)] = a
	}
	var diffs []string
	for id, e := range last {
		a, ok := byID[id]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("alert %d missing", id))
		case a.State != e.State || !sameInstant(a.OpenedAt, e.OpenedAt) || (a.ResolvedAt == nil) != (e.ResolvedAt == nil) ||
			(a.ResolvedAt != nil && !sameInstant(*a.ResolvedAt, *e.ResolvedAt)):
			diffs = append(diffs, fmt.Sprintf("alert %d: station %s opened %s resolved %s; cloud %s opened %s resolved %s",
				id, e.State, e.OpenedAt.Format(time.RFC3339Nano), fmtTime(e.ResolvedAt),
				a.State, a.OpenedAt.Format(time.RFC3339Nano), fmtTime(a.ResolvedAt)))
		}
	}
	assert.Empty(t, diffs, "the cloud's alerts should be in the state of their last transition at the station")
	assert.Len(t, stored, len(last), "the cloud's alerts and the station's")
}

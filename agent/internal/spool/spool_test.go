package spool

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/testclock"
	"github.com/purehealth/purehealth/shared/telemetry"
)

func TestAppendReadAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "agent.db") // the directory is created
	s := openSpool(t, Options{Path: path})
	in := []telemetry.Reading{
		reading("ph-1", telemetry.PH, 7.2, t0),
		reading("do-1", telemetry.DO, 6.5, t0.Add(time.Second)),
		reading("ph-1", telemetry.PH, 7.3, t0.In(time.FixedZone("IST", 19800)).Add(time.Minute)),
	}
	got, err := s.AppendReadings(t.Context(), in)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, []uint64{1, 2, 3}, seqs(got))
	assert.Equal(t, time.UTC, got[2].Time.Location(), "returned time is UTC, as stored")

	read, err := s.ReadingsAfter(0, 10)
	require.NoError(t, err)
	assert.Equal(t, got, read, "read back what was appended")
	read, err = s.ReadingsAfter(2, 10)
	require.NoError(t, err)
	assert.Equal(t, got[2:], read)
	read, err = s.ReadingsAfter(0, 2)
	require.NoError(t, err)
	assert.Equal(t, got[:2], read, "max limits the read")

	alert, err := s.AppendRecord(t.Context(), Alerts, []byte(`{"rule":"threshold"}`))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), alert, "each stream has its own sequence")
	wqi, err := s.AppendRecord(t.Context(), WQI, []byte(`{"wqi":83.17}`))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), wqi)

	// Reopen: everything is there and sequences continue.
	require.NoError(t, s.Close())
	s = openSpool(t, Options{Path: path})
	read, err = s.ReadingsAfter(0, 10)
	require.NoError(t, err)
	assert.Equal(t, got, read, "readings survive a reopen")
	recs, err := s.RecordsAfter(Alerts, 0, 10)
	require.NoError(t, err)
	assert.Equal(t, []Record{{1, []byte(`{"rule":"threshold"}`)}}, recs)
	more, err := s.AppendReadings(t.Context(), in[:1])
	require.NoError(t, err)
	assert.Equal(t, uint64(4), more[0].Seq, "seq continues after reopen")
	st := s.Stats()
	assert.Equal(t, map[Stream]uint64{Readings: 4, Alerts: 1, WQI: 1}, st.LastSeq)
	assert.Equal(t, map[Stream]int{Readings: 4, Alerts: 1, WQI: 1}, st.Records)
	assert.Equal(t, map[Stream]int{Readings: 4, Alerts: 1, WQI: 1}, st.Unforwarded)
	assert.True(t, st.OldestUnforwarded.Equal(t0), "oldest unforwarded is the first reading: %v", st.OldestUnforwarded)
	assert.Greater(t, st.BytesPerReading, 0.0)
	assert.Equal(t, path, st.Path)
}

func TestSeqNeverReused(t *testing.T) {
	clk := testclock.New(t0)
	path := filepath.Join(t.TempDir(), "agent.db")
	s := openSpool(t, Options{Path: path, Now: clk.Now, Retention: time.Hour})
	got := appendAll(t, s, series("ph-1", 10, t0, time.Minute), 10)
	require.NoError(t, s.Ack(t.Context(), Readings, got[9].Seq))
	clk.Advance(2 * time.Hour)
	require.NoError(t, s.Expire(t.Context()))
	require.Equal(t, 0, s.Stats().Records[Readings], "every reading expired")

	require.NoError(t, s.Close())
	s = openSpool(t, Options{Path: path, Now: clk.Now, Retention: time.Hour})
	assert.Equal(t, uint64(10), s.Stats().LastSeq[Readings], "last seq survives the deletion of every record")
	again, err := s.AppendReadings(t.Context(), series("ph-1", 1, t0, 0))
	require.NoError(t, err)
	assert.Equal(t, uint64(11), again[0].Seq, "a deleted seq is never handed out again")
	assert.Equal(t, uint64(10), s.Cursor(Readings), "cursor survives too")
}

func TestGroupCommit(t *testing.T) {
	s := openSpool(t, Options{})
	const writers, each = 200, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []uint64
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				got, err := s.AppendReadings(t.Context(), []telemetry.Reading{
					reading(fmt.Sprintf("s-%d", w), telemetry.Temp, float64(i), t0)})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				all = append(all, got[0].Seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	require.Len(t, all, writers*each)
	for i, seq := range all {
		require.Equal(t, uint64(i+1), seq, "seqs are unique and gapless")
	}
	st := s.Stats()
	assert.Equal(t, uint64(writers*each), st.Appended)
	assert.Less(t, st.Commits, st.Appended/5,
		"concurrent appends share commits: %d commits for %d appends", st.Commits, st.Appended)
	t.Logf("%d appends in %d commits", st.Appended, st.Commits)
}

// TestConcurrentAppendsKeepTheirContent checks that every stored reading is the one its
// call appended, whatever the batch sizes, string lengths and callers that give up while
// waiting: AppendReadings recycles its requests and buffers, and the writer its keys.
func TestConcurrentAppendsKeepTheirContent(t *testing.T) {
	s := openSpool(t, Options{})
	const writers, each = 40, 30
	var wg sync.WaitGroup
	var mu sync.Mutex
	want := map[uint64]telemetry.Reading{}
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				ctx := t.Context()
				if w%4 == 3 { // some callers give up at once, some while waiting
					c, cancel := context.WithTimeout(ctx, time.Duration(i%3)*time.Microsecond)
					defer cancel()
					ctx = c
				}
				rs := make([]telemetry.Reading, 1+(w+i)%5)
				for k := range rs {
					rs[k] = reading(fmt.Sprintf("s-%d-%s", w, strings.Repeat("x", (i*7+k)%40)),
						telemetry.Temp, float64(w*1000+i*10+k), t0.Add(time.Duration(i)*time.Second))
				}
				got, err := s.AppendReadings(ctx, rs)
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) {
						errs <- err
						return
					}
					continue // may or may not be stored; not checked
				}
				mu.Lock()
				for _, r := range got {
					want[r.Seq] = r
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NotEmpty(t, want)
	stored := map[uint64]telemetry.Reading{}
	for _, r := range allReadings(t, s) {
		stored[r.Seq] = r
	}
	for seq, r := range want {
		assert.Equal(t, r, stored[seq], "seq %d", seq)
	}
}

func TestAck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	s := openSpool(t, Options{Path: path})
	got := appendAll(t, s, series("ph-1", 10, t0, time.Minute), 10)
	_, err := s.AppendRecord(t.Context(), Alerts, []byte(`{}`))
	require.NoError(t, err)

	require.NoError(t, s.Ack(t.Context(), Readings, 6))
	assert.Equal(t, uint64(6), s.Cursor(Readings))
	require.NoError(t, s.Ack(t.Context(), Readings, 3), "a lower seq is a no-op")
	assert.Equal(t, uint64(6), s.Cursor(Readings), "the cursor never moves back")
	err = s.Ack(t.Context(), Readings, 11)
	assert.ErrorIs(t, err, ErrInvalid, "acking a seq never assigned")
	assert.Equal(t, uint64(6), s.Cursor(Readings))
	assert.Equal(t, uint64(0), s.Cursor(Alerts), "cursors are per stream")
	assert.Equal(t, 4, s.Stats().Unforwarded[Readings])
	assert.True(t, s.Stats().OldestUnforwarded.Equal(got[6].Time))

	after, err := s.ReadingsAfter(s.Cursor(Readings), 100)
	require.NoError(t, err)
	assert.Equal(t, got[6:], after, "the uplink reads after the cursor")

	require.NoError(t, s.Close())
	s = openSpool(t, Options{Path: path})
	assert.Equal(t, uint64(6), s.Cursor(Readings), "the cursor is durable")
	st := s.Stats()
	assert.Equal(t, 4, st.Unforwarded[Readings], "backlog recounted at open")
	assert.Equal(t, 1, st.Unforwarded[Alerts])
	assert.ErrorIs(t, s.Ack(t.Context(), Stream(9), 1), ErrInvalid)
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	openSpool(t, Options{Path: path})
	// bbolt locks with flock(2), which is held per open file description: a second open
	// in the same process conflicts just like another process would.
	second, err := Open(Options{Path: path, OpenTimeout: 100 * time.Millisecond})
	if second != nil {
		require.NoError(t, second.Close())
	}
	require.ErrorIs(t, err, ErrLocked)
	assert.Contains(t, err.Error(), "is ph-agent already running?")
	assert.Contains(t, err.Error(), path)
	matches, err := filepath.Glob(path + ".corrupt-*")
	require.NoError(t, err)
	assert.Empty(t, matches, "a locked file is not quarantined")
}

func TestFailCommits(t *testing.T) {
	faults := &Faults{}
	s := openSpool(t, Options{Faults: faults})
	first := appendAll(t, s, series("ph-1", 3, t0, time.Minute), 3)

	faults.FailCommits(true)
	_, err := s.AppendReadings(t.Context(), series("ph-1", 5, t0, time.Minute))
	assert.ErrorIs(t, err, ErrInjected)
	_, err = s.AppendRecord(t.Context(), Alerts, []byte(`{}`))
	assert.ErrorIs(t, err, ErrInjected)
	assert.ErrorIs(t, s.Ack(t.Context(), Readings, 2), ErrInjected)
	assert.ErrorIs(t, s.Put(t.Context(), "k", []byte("v")), ErrInjected)
	st := s.Stats()
	assert.Equal(t, 3, st.Records[Readings], "nothing of a failed commit is stored")
	assert.Equal(t, uint64(3), st.LastSeq[Readings], "a failed commit consumes no seq")
	assert.Equal(t, uint64(0), s.Cursor(Readings))
	v, err := s.Get("k")
	require.NoError(t, err)
	assert.Nil(t, v)

	faults.FailCommits(false)
	got, err := s.AppendReadings(t.Context(), series("ph-1", 2, t0, time.Minute))
	require.NoError(t, err)
	assert.Equal(t, []uint64{4, 5}, seqs(got), "appends work again and continue the sequence")
	all := allReadings(t, s)
	assert.Equal(t, append(first, got...), all)
}

func TestContextAndClose(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "agent.db")})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = s.AppendReadings(ctx, series("ph-1", 1, t0, 0))
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, s.Stats().Records[Readings], "a call whose context had ended stores nothing")

	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	_, err = s.AppendReadings(t.Context(), series("ph-1", 1, t0, 0))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = s.AppendRecord(t.Context(), WQI, []byte(`{}`))
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, s.Ack(t.Context(), Readings, 1), ErrClosed)
	assert.ErrorIs(t, s.Put(t.Context(), "k", nil), ErrClosed)
	assert.ErrorIs(t, s.Expire(t.Context()), ErrClosed)
	_, err = s.ReadingsAfter(0, 1)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = s.Get("k")
	assert.ErrorIs(t, err, ErrClosed)
}

func TestCloseWithAppendsInFlight(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "agent.db")})
	require.NoError(t, err)
	var wg sync.WaitGroup
	var stored, closed sync.Map
	for w := range 50 {
		wg.Go(func() {
			for i := 0; ; i++ {
				got, err := s.AppendReadings(context.Background(), series(fmt.Sprint(w), 1, t0, 0))
				if err != nil {
					closed.Store(w, err)
					return
				}
				stored.Store(got[0].Seq, true)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, s.Close())
	wg.Wait() // every caller returned: none is left waiting on a stopped writer
	closed.Range(func(_, v any) bool {
		assert.ErrorIs(t, v.(error), ErrClosed)
		return true
	})
	s = openSpool(t, Options{Path: s.path})
	n := 0
	stored.Range(func(_, _ any) bool { n++; return true })
	assert.Equal(t, n, s.Stats().Records[Readings], "every acknowledged append is in the file")
}

func TestInvalidArguments(t *testing.T) {
	s := openSpool(t, Options{MaxBatch: 10})
	_, err := s.AppendReadings(t.Context(), series("x", 11, t0, 0))
	assert.ErrorIs(t, err, ErrInvalid, "more than MaxBatch in one call")
	bad := series("x", 2, t0, 0)
	bad[1].Time = time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = s.AppendReadings(t.Context(), bad)
	assert.ErrorIs(t, err, ErrInvalid, "a reading that cannot be encoded")
	assert.Equal(t, 0, s.Stats().Records[Readings], "nothing of an invalid call is stored")
	_, err = s.AppendRecord(t.Context(), Readings, []byte(`{}`))
	assert.ErrorIs(t, err, ErrInvalid, "readings go through AppendReadings")
	_, err = s.AppendRecords(t.Context(), WQI, nil)
	assert.ErrorIs(t, err, ErrInvalid, "no record")
	_, err = s.AppendRecords(t.Context(), WQI, make([][]byte, 11))
	assert.ErrorIs(t, err, ErrInvalid, "more than MaxBatch records in one call")
	_, err = s.RecordsAfter(Readings, 0, 1)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = s.LastRecords(Stream(0), 1)
	assert.ErrorIs(t, err, ErrInvalid)
	assert.ErrorIs(t, s.Put(t.Context(), "", []byte("v")), ErrInvalid)
	_, err = Open(Options{})
	assert.ErrorIs(t, err, ErrInvalid, "no path")
	_, err = Open(Options{Path: filepath.Join(t.TempDir(), "a.db"), MaxBytes: 1000})
	assert.ErrorIs(t, err, ErrInvalid, "MaxBytes below the minimum")
	got, err := s.AppendReadings(t.Context(), nil)
	assert.NoError(t, err)
	assert.Empty(t, got)
	assert.Equal(t, "readings", Readings.String())
	assert.Equal(t, "alerts", Alerts.String())
	assert.Equal(t, "wqi", WQI.String())
}

func TestReadingsQuery(t *testing.T) {
	s := openSpool(t, Options{})
	var in []telemetry.Reading
	for i := range 30 {
		p := []telemetry.Param{telemetry.PH, telemetry.DO, telemetry.Temp}[i%3]
		in = append(in, reading("probe", p, float64(i), t0.Add(time.Duration(i)*time.Minute)))
	}
	// Time order differs from seq order for one reading: the newest first rule is by seq.
	in = append(in, reading("probe", telemetry.PH, 99, t0.Add(-time.Hour)))
	got := appendAll(t, s, in, 100)
	rev := func(rs []telemetry.Reading) []telemetry.Reading {
		out := append([]telemetry.Reading{}, rs...)
		sort.Slice(out, func(i, j int) bool { return out[i].Seq > out[j].Seq })
		return out
	}
	filter := func(keep func(r telemetry.Reading) bool) []telemetry.Reading {
		var out []telemetry.Reading
		for _, r := range got {
			if keep(r) {
				out = append(out, r)
			}
		}
		return out
	}
	tests := []struct {
		name string
		q    Query
		want []telemetry.Reading
	}{
		{"default limit 100, newest first", Query{}, rev(got)},
		{"limit", Query{Limit: 4}, rev(got)[:4]},
		{"param", Query{Param: telemetry.DO}, rev(filter(func(r telemetry.Reading) bool { return r.Param == telemetry.DO }))},
		{"param and limit", Query{Param: telemetry.PH, Limit: 2}, []telemetry.Reading{got[30], got[27]}},
		{"since", Query{Since: t0.Add(25 * time.Minute)}, rev(got[25:30])},
		{"since and param", Query{Since: t0.Add(20 * time.Minute), Param: telemetry.Temp},
			[]telemetry.Reading{got[29], got[26], got[23], got[20]}},
		{"param with no readings", Query{Param: telemetry.Chla}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := s.Readings(tt.q)
			require.NoError(t, err)
			assert.Equal(t, tt.want, rs)
		})
	}

	for i := range 3 {
		_, err := s.AppendRecord(t.Context(), WQI, fmt.Appendf(nil, `{"n":%d}`, i))
		require.NoError(t, err)
	}
	recs, err := s.LastRecords(WQI, 2)
	require.NoError(t, err)
	assert.Equal(t, []Record{{3, []byte(`{"n":2}`)}, {2, []byte(`{"n":1}`)}}, recs)
	recs, err = s.RecordsAfter(WQI, 1, 0)
	require.NoError(t, err)
	assert.Equal(t, []Record{{2, []byte(`{"n":1}`)}, {3, []byte(`{"n":2}`)}}, recs)
}

func TestKeyValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	s := openSpool(t, Options{Path: path})
	ctx := t.Context()
	v, err := s.Get("alert/1")
	require.NoError(t, err)
	assert.Nil(t, v, "absent key")

	value := []byte(`{"state":"active"}`)
	require.NoError(t, s.Put(ctx, "alert/1", value))
	value[0] = 'X' // the spool keeps its own copy
	require.NoError(t, s.Put(ctx, "alert/2", []byte(`{"state":"acknowledged"}`)))
	require.NoError(t, s.Put(ctx, "calibration/ph-1", []byte(`{"offset":0.02}`)))
	require.NoError(t, s.Put(ctx, "empty", []byte{}))
	require.NoError(t, s.Put(ctx, "alerts", []byte("not under the alert/ prefix")))

	v, err = s.Get("alert/1")
	require.NoError(t, err)
	assert.Equal(t, []byte(`{"state":"active"}`), v)
	v, err = s.Get("empty")
	require.NoError(t, err)
	assert.Equal(t, []byte{}, v, "an empty value is not an absent one")

	var keys []string
	require.NoError(t, s.Scan("alert/", func(k string, v []byte) error {
		keys = append(keys, k)
		// Scan's callback runs outside the transaction: it may write.
		return s.Put(ctx, "seen/"+k, v)
	}))
	assert.Equal(t, []string{"alert/1", "alert/2"}, keys)
	stop := errors.New("stop")
	n := 0
	err = s.Scan("", func(string, []byte) error { n++; return stop })
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 1, n)

	require.NoError(t, s.Put(ctx, "alert/2", nil), "nil deletes")
	require.NoError(t, s.Close())
	s = openSpool(t, Options{Path: path})
	v, err = s.Get("alert/2")
	require.NoError(t, err)
	assert.Nil(t, v)
	v, err = s.Get("seen/alert/2")
	require.NoError(t, err)
	assert.Equal(t, []byte(`{"state":"acknowledged"}`), v, "puts are durable")
}

// An alert transition and the state it changes are stored in one transaction: a failed
// commit stores neither, so the retry appends the transition once. (As separate writes, a
// failure after the append made the retry append it again under a new seq.)
func TestAppendEventIsAtomic(t *testing.T) {
	faults := &Faults{}
	s := openSpool(t, Options{Faults: faults})
	puts := map[string][]byte{"alert/7": []byte(`{"id":7}`), "alert/next": []byte("8"), "alert/6": nil}
	require.NoError(t, s.Put(t.Context(), "alert/6", []byte(`{"id":6}`)))

	faults.FailCommits(true)
	assert.ErrorIs(t, s.AppendEvent(t.Context(), []byte(`{"transition":"opened"}`), puts), ErrInjected)
	assert.Equal(t, 0, s.Stats().Records[Alerts])
	v, err := s.Get("alert/7")
	require.NoError(t, err)
	assert.Nil(t, v, "no state without its transition")

	faults.FailCommits(false)
	require.NoError(t, s.AppendEvent(t.Context(), []byte(`{"transition":"opened"}`), puts))
	evs, err := s.RecentEvents(10)
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte(`{"transition":"opened"}`)}, evs, "the transition once")
	for k, want := range puts {
		v, err := s.Get(k)
		require.NoError(t, err)
		assert.Equal(t, want, v, k)
	}
	assert.ErrorIs(t, s.AppendEvent(t.Context(), []byte(`{}`), map[string][]byte{"": []byte("x")}), ErrInvalid)
}

// AppendRecords stores several records as one unit, in order, under consecutive seqs.
func TestAppendRecords(t *testing.T) {
	s := openSpool(t, Options{})
	first, err := s.AppendRecord(t.Context(), WQI, []byte(`{"wqi":1}`))
	require.NoError(t, err)
	next, err := s.AppendRecords(t.Context(), WQI, [][]byte{[]byte(`{"wqi":2}`), []byte(`{"wqi":3}`)})
	require.NoError(t, err)
	assert.Equal(t, first+1, next)
	recs, err := s.RecordsAfter(WQI, 0, 10)
	require.NoError(t, err)
	require.Len(t, recs, 3)
	for i, r := range recs {
		assert.Equal(t, first+uint64(i), r.Seq)
		assert.Equal(t, fmt.Sprintf(`{"wqi":%d}`, i+1), string(r.Data))
	}
}

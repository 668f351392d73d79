package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/testclock"
	"github.com/purehealth/purehealth/shared/telemetry"
)

func TestExpire(t *testing.T) {
	clk := testclock.New(t0)
	ev := newEvictions()
	path := filepath.Join(t.TempDir(), "agent.db")
	opts := Options{Path: path, Now: clk.Now, Retention: time.Hour, OnEvict: ev.hook}
	s := openSpool(t, opts)
	ctx := t.Context()

	// At t0: readings 1-15 (1-10 forwarded), alerts 1-3 (1-2 forwarded), wqi 1-2 (forwarded).
	appendAll(t, s, series("ph-1", 15, t0, time.Second), 15)
	require.NoError(t, s.Ack(ctx, Readings, 10))
	for range 3 {
		_, err := s.AppendRecord(ctx, Alerts, []byte(`{"rule":"threshold"}`))
		require.NoError(t, err)
	}
	require.NoError(t, s.Ack(ctx, Alerts, 2))
	for range 2 {
		_, err := s.AppendRecord(ctx, WQI, []byte(`{"wqi":70}`))
		require.NoError(t, err)
	}
	require.NoError(t, s.Ack(ctx, WQI, 2))
	// At t0+30m: readings 16-25, unforwarded.
	clk.Advance(30 * time.Minute)
	appendAll(t, s, series("ph-1", 10, t0, time.Second), 10)

	clk.Advance(time.Hour) // t0+90m: what was stored at t0 is past the retention
	require.NoError(t, s.Expire(ctx))
	got := ev.next(t)
	assert.Equal(t, Evicted{ExpiredForwarded: 10 + 2 + 2}, got.Evicted)
	assert.False(t, got.Full, "a retention pass, not an overflow")
	rs := allReadings(t, s)
	require.NotEmpty(t, rs)
	assert.Equal(t, uint64(11), rs[0].Seq, "forwarded and expired readings are gone, the unforwarded ones stay")
	assert.Len(t, rs, 15)
	alerts, err := s.RecordsAfter(Alerts, 0, 10)
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	assert.Equal(t, uint64(3), alerts[0].Seq, "an unforwarded alert never expires")
	wqi, err := s.RecordsAfter(WQI, 0, 10)
	require.NoError(t, err)
	assert.Empty(t, wqi)

	// Once forwarded, 11-15 (stored at t0) expire; 16-25 (stored at t0+30m) do not yet.
	require.NoError(t, s.Ack(ctx, Readings, 25))
	require.NoError(t, s.Expire(ctx))
	assert.Equal(t, uint64(5), ev.next(t).ExpiredForwarded)
	rs = allReadings(t, s)
	require.Len(t, rs, 10)
	assert.Equal(t, uint64(16), rs[0].Seq)

	require.NoError(t, s.Expire(ctx), "nothing to expire")
	ev.none(t)

	// The writer applies retention at Open too.
	require.NoError(t, s.Close())
	clk.Advance(time.Hour)
	s = openSpool(t, opts)
	assert.Equal(t, uint64(10), ev.next(t).ExpiredForwarded, "expired at open")
	assert.Equal(t, 0, s.Stats().Records[Readings])
	st := s.Stats()
	assert.Equal(t, uint64(10+2+2+5+10), st.Evicted.ExpiredForwarded, "counters are persisted")
	assert.Equal(t, uint64(25), st.LastSeq[Readings])
}

// TestSpaceReuse shows that bbolt reuses the pages of deleted records: once retention
// deletes what was forwarded, the same load again does not grow the file.
func TestSpaceReuse(t *testing.T) {
	clk := testclock.New(t0)
	s := openSpool(t, Options{Now: clk.Now, Retention: time.Hour, MaxBytes: 64 << 20})
	ctx := t.Context()
	var sizes []int64
	for round := range 4 {
		got := appendAll(t, s, series("ph-1", 30000, t0, time.Second), 1000)
		require.NoError(t, s.Ack(ctx, Readings, got[len(got)-1].Seq))
		sizes = append(sizes, s.Stats().FileBytes)
		clk.Advance(2 * time.Hour)
		require.NoError(t, s.Expire(ctx))
		st := s.Stats()
		require.Equal(t, 0, st.Records[Readings], "round %d: all expired", round)
		assert.Less(t, st.UsedBytes, int64(64<<10), "round %d: the pages are free again", round)
	}
	t.Logf("file size after each round: %v", sizes)
	for i := 1; i < len(sizes); i++ {
		assert.LessOrEqual(t, sizes[i], sizes[0], "round %d reuses the freed pages instead of growing", i)
	}
}

// fillUntilEviction appends batches from gen until a commit lifts UsedBytes above the
// high watermark (which starts a pass), and returns everything appended. It stops at the
// first sign of the pass, so that no append overlaps it: UsedBytes above the mark (no
// eviction chunk committed yet) or the eviction counters moved (one has).
func fillUntilEviction(t *testing.T, s *Spool, gen func(i int) telemetry.Reading, batch int) []telemetry.Reading {
	t.Helper()
	before := s.Stats().Evicted
	var out []telemetry.Reading
	for i := 0; ; {
		rs := make([]telemetry.Reading, batch)
		for j := range rs {
			rs[j] = gen(i)
			i++
		}
		got, err := s.AppendReadings(t.Context(), rs)
		require.NoError(t, err)
		out = append(out, got...)
		if st := s.Stats(); st.UsedBytes > s.high || st.Evicted != before {
			return out
		}
		require.Less(t, i, 1_000_000, "the buffer never filled")
	}
}

func TestEvictionOrder(t *testing.T) {
	const maxBytes = 4 << 20
	clk := testclock.New(t0)
	ev := newEvictions()
	path := filepath.Join(t.TempDir(), "agent.db")
	opts := Options{Path: path, MaxBytes: maxBytes, Now: clk.Now, OnEvict: ev.hook}
	s := openSpool(t, opts)
	ctx := t.Context()

	// Forwarded and past the retention: readings E, 5 alerts, 3 WQI results.
	e := appendAll(t, s, series("e", 1000, t0, time.Second), 500)
	require.NoError(t, s.Ack(ctx, Readings, e[len(e)-1].Seq))
	for range 5 {
		_, err := s.AppendRecord(ctx, Alerts, []byte(`{"rule":"wqi_class"}`))
		require.NoError(t, err)
	}
	require.NoError(t, s.Ack(ctx, Alerts, 5))
	// Unforwarded alerts: never dropped, even past the retention.
	for range 2 {
		_, err := s.AppendRecord(ctx, Alerts, []byte(`{"rule":"offline"}`))
		require.NoError(t, err)
	}

	clk.Advance(31 * 24 * time.Hour)
	t1 := clk.Now()
	// Forwarded inside the retention: readings F, 3 WQI results.
	f := appendAll(t, s, series("f", 1000, t1, time.Second), 500)
	require.NoError(t, s.Ack(ctx, Readings, f[len(f)-1].Seq))
	for range 3 {
		_, err := s.AppendRecord(ctx, WQI, []byte(`{"wqi":80}`))
		require.NoError(t, err)
	}
	require.NoError(t, s.Ack(ctx, WQI, 3))
	// Unforwarded WQI results: dropped only after every reading.
	for range 2 {
		_, err := s.AppendRecord(ctx, WQI, []byte(`{"wqi":60}`))
		require.NoError(t, err)
	}
	// Unforwarded and groupable: 3000 readings, 10 per sensor-hour.
	g := appendAll(t, s, func() []telemetry.Reading {
		rs := make([]telemetry.Reading, 3000)
		for i := range rs {
			rs[i] = reading("g", telemetry.DO, float64(i%10), t1.Add(time.Duration(i/10)*time.Hour+time.Duration(i%10)*time.Minute))
		}
		return rs
	}(), 500)
	ev.none(t)
	// Unforwarded singletons (one reading per hour: nothing to downsample) until full.
	sing := fillUntilEviction(t, s, func(i int) telemetry.Reading {
		return reading("s", telemetry.Temp, 25, t1.Add(time.Duration(i)*time.Hour))
	}, 250)

	got := ev.next(t)
	ev.none(t)
	t.Logf("pass: %+v", got)
	assert.True(t, got.Full)
	assert.Equal(t, uint64(1000+5), got.ExpiredForwarded, "step 1: readings E and the forwarded alerts")
	assert.Equal(t, uint64(1000+3), got.Forwarded, "step 2: readings F, then the forwarded WQI")
	assert.Equal(t, uint64(3000), got.Downsampled, "step 3: every raw reading of G")
	assert.Equal(t, uint64(300), got.Means)
	assert.Greater(t, got.DroppedUnforwarded, uint64(300), "step 4: the means and the oldest singletons")
	assert.Zero(t, got.DroppedWQI, "WQI goes only after every reading")
	assert.Zero(t, got.DownsampledBad)
	assert.Greater(t, got.UsedBefore, s.high)
	assert.Less(t, got.UsedAfter, s.low)

	// What is left: the newest singletons, contiguous, and the unforwarded records.
	rest := allReadings(t, s)
	dropped := int(got.DroppedUnforwarded) - 300
	require.Len(t, rest, len(sing)-dropped)
	assert.Equal(t, seqs(sing[dropped:]), seqs(rest), "exactly the oldest singletons were dropped")
	alerts, err := s.RecordsAfter(Alerts, 0, 100)
	require.NoError(t, err)
	assert.Equal(t, []uint64{6, 7}, []uint64{alerts[0].Seq, alerts[1].Seq})
	assert.Len(t, alerts, 2)
	wqi, err := s.RecordsAfter(WQI, 0, 100)
	require.NoError(t, err)
	assert.Len(t, wqi, 2)
	assert.Equal(t, uint64(4), wqi[0].Seq)

	st := s.Stats()
	assert.Equal(t, got.Evicted, st.Evicted, "the persisted counters match the report")
	assert.LessOrEqual(t, st.FileBytes, int64(maxBytes), "the file never passes MaxBytes: %s", mib(st.FileBytes))
	assert.Less(t, st.UsedBytes, s.low)
	removed := len(e) + 5 + len(f) + 3 + len(g) - 300 + int(got.DroppedUnforwarded)
	assert.Equal(t, len(e)+len(f)+len(g)+len(sing)+5+2+3+2-removed,
		st.Records[Readings]+st.Records[Alerts]+st.Records[WQI], "counts add up")

	// Appends keep working, and the counters survive a restart.
	more, err := s.AppendReadings(ctx, series("s", 10, t1, time.Second))
	require.NoError(t, err)
	assert.Equal(t, sing[len(sing)-1].Seq+1, more[0].Seq)
	require.NoError(t, s.Close())
	s = openSpool(t, opts)
	assert.Equal(t, got.Evicted, s.Stats().Evicted)
}

func TestDownsample(t *testing.T) {
	const maxBytes = 4 << 20
	clk := testclock.New(t0)
	ev := newEvictions()
	s := openSpool(t, Options{MaxBytes: maxBytes, Now: clk.Now, OnEvict: ev.hook})
	h := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	r := func(sensor string, p telemetry.Param, v float64, at time.Time, q telemetry.Quality, f telemetry.Flags) telemetry.Reading {
		x := reading(sensor, p, v, at)
		x.Quality, x.Flags = q, f
		return x
	}
	api := r("t", telemetry.PH, 7.0, h.Add(40*time.Minute), telemetry.Good, 0)
	api.Source = telemetry.SourceAPI
	api2 := api
	api2.Value, api2.Time = 7.5, h.Add(41*time.Minute)
	in := []telemetry.Reading{
		r("t", telemetry.PH, 1.0, h.Add(5*time.Minute), telemetry.Good, 0),                           // 1  g1
		r("t", telemetry.PH, 6.0, h.Add(65*time.Minute), telemetry.Good, 0),                          // 2  g2
		r("t", telemetry.PH, 2.0, h.Add(20*time.Minute), telemetry.Good, telemetry.FlagTimeUnsynced), // 3  g1
		r("t", telemetry.PH, 20, h.Add(125*time.Minute), telemetry.Bad, telemetry.FlagOutOfRange),    // 4  g3
		r("t", telemetry.PH, 8.0, h.Add(70*time.Minute), telemetry.Suspect, telemetry.FlagSpike),     // 5  g2
		r("t", telemetry.PH, 4.5, h.Add(59*time.Minute+59*time.Second), telemetry.Good, 0),           // 6  g1
		r("t", telemetry.PH, 30, h.Add(130*time.Minute), telemetry.Bad, telemetry.FlagProbeError),    // 7  g3
		r("t", telemetry.PH, 99, h.Add(80*time.Minute), telemetry.Bad, telemetry.FlagOutOfRange),     // 8  g2
		r("t", telemetry.PH, 5.0, h.Add(185*time.Minute), telemetry.Good, 0),                         // 9  alone
		r("t", telemetry.PH, 6.1, h.Add(245*time.Minute), telemetry.Good, telemetry.FlagDownsampled), // 10 a mean
		r("t", telemetry.PH, 6.2, h.Add(246*time.Minute), telemetry.Good, 0),                         // 11 alone beside it
		r("t", telemetry.DO, 8.0, h.Add(10*time.Minute), telemetry.Good, 0),                          // 12 g4: other param
		r("t", telemetry.DO, 9.0, h.Add(11*time.Minute), telemetry.Good, 0),                          // 13 g4
		api,  // 14 g5: other source
		api2, // 15 g5
		r("u", telemetry.PH, 3.0, h.Add(6*time.Minute), telemetry.Good, 0), // 16 alone: other sensor
	}
	appendAll(t, s, in, 100)
	// Filler: 30 readings per hour of one sensor, well downsampled, until full.
	fill := fillUntilEviction(t, s, func(i int) telemetry.Reading {
		return reading("fill", telemetry.Temp, float64(i%30), h.Add(24*time.Hour+time.Duration(i)*2*time.Minute))
	}, 500)

	got := ev.next(t)
	t.Logf("pass: %+v, filler %d", got, len(fill))
	// One chunk of 20 000 raw readings: the 15 raw test readings (the mean is skipped)
	// and the first 19 985 filler readings, hours 0..666 of the filler.
	const fillInChunk = downsampleMax - 15
	assert.Equal(t, Evicted{
		Downsampled:    3 + 3 + 2 + 2 + 2 + fillInChunk,
		DownsampledBad: 1, // g2's bad reading; g3 is all bad and keeps one bad mean
		Means:          5 + (fillInChunk+29)/30,
	}, got.Evicted, "one chunk was enough")

	rs, err := s.ReadingsAfter(0, 11)
	require.NoError(t, err)
	want := []telemetry.Reading{
		{Seq: 1, Sensor: "t", Param: telemetry.PH, Value: (1.0 + 2.0 + 4.5) / 3, Time: h,
			Quality: telemetry.Good, Flags: telemetry.FlagTimeUnsynced | telemetry.FlagDownsampled},
		{Seq: 2, Sensor: "t", Param: telemetry.PH, Value: (6.0 + 8.0) / 2, Time: h.Add(time.Hour),
			Quality: telemetry.Suspect, Flags: telemetry.FlagSpike | telemetry.FlagOutOfRange | telemetry.FlagDownsampled},
		{Seq: 4, Sensor: "t", Param: telemetry.PH, Value: (20.0 + 30.0) / 2, Time: h.Add(2 * time.Hour),
			Quality: telemetry.Bad, Flags: telemetry.FlagOutOfRange | telemetry.FlagProbeError | telemetry.FlagDownsampled},
		in[8], in[9], in[10],
		{Seq: 12, Sensor: "t", Param: telemetry.DO, Value: 8.5, Time: h, Quality: telemetry.Good, Flags: telemetry.FlagDownsampled},
		{Seq: 14, Sensor: "t", Param: telemetry.PH, Value: 7.25, Time: h, Source: telemetry.SourceAPI,
			Quality: telemetry.Good, Flags: telemetry.FlagDownsampled},
		in[15],
	}
	for i := range want {
		if want[i].Station == "" {
			want[i].Station = "MH-PUNE-001"
			info, _ := telemetry.Info(want[i].Param)
			want[i].Unit = info.Unit
			if want[i].Source == "" {
				want[i].Source = telemetry.SourceSensor
			}
		}
	}
	want[3].Seq, want[4].Seq, want[5].Seq, want[8].Seq = 9, 10, 11, 16
	require.GreaterOrEqual(t, len(rs), len(want))
	assert.Equal(t, want, rs[:len(want)], "exact means, smallest seq, start of the hour, flags; gaps skipped")

	// The filler: each complete hour became one mean at the hour's first seq.
	all := allReadings(t, s)
	first := all[len(want)]
	assert.Equal(t, fill[0].Seq, first.Seq)
	assert.Equal(t, 14.5, first.Value, "mean of 0..29")
	assert.True(t, first.Flags.Has(telemetry.FlagDownsampled))
	assert.True(t, first.Time.Equal(h.Add(24*time.Hour)))
	assert.Equal(t, fill[30].Seq, all[len(want)+1].Seq)
	// Past the chunk, raw readings are untouched.
	last := all[len(all)-1]
	assert.Equal(t, fill[len(fill)-1], last)
	assert.Less(t, s.Stats().UsedBytes, s.low)
}

// TestBoundedUnderLoad appends far more than the bound, with nothing ever forwarded: no
// append fails, the file never passes MaxBytes, raw readings are downsampled and then the
// oldest dropped, and the newest data is there.
func TestBoundedUnderLoad(t *testing.T) {
	const maxBytes = 2 << 20
	clk := testclock.New(t0)
	ev := newEvictions()
	s := openSpool(t, Options{MaxBytes: maxBytes, Now: clk.Now, OnEvict: ev.hook})
	sensors := []string{"ph-1", "do-1", "bod-1", "fc-1", "tds-1", "temp-1", "turb-1", "cond-1"}
	at := t0
	var last []telemetry.Reading
	for round := range 240 {
		rs := make([]telemetry.Reading, 250)
		for i := range rs {
			rs[i] = reading(sensors[i%len(sensors)], telemetry.Temp, float64(i), at)
			if i%len(sensors) == len(sensors)-1 {
				at = at.Add(30 * time.Minute) // two readings per sensor-hour: means halve the data
			}
		}
		got, err := s.AppendReadings(t.Context(), rs)
		require.NoError(t, err, "round %d: a full buffer never fails an append", round)
		last = got
		st := s.Stats()
		require.LessOrEqual(t, st.FileBytes, int64(maxBytes), "round %d: file %s", round, mib(st.FileBytes))
	}
	// Expire waits for the pass in progress to end: a barrier before looking at the result.
	require.NoError(t, s.Expire(t.Context()))
	st := s.Stats()
	t.Logf("stats: file %s, used %s, records %d, %.1f bytes/reading, evicted %+v",
		mib(st.FileBytes), mib(st.UsedBytes), st.Records[Readings], st.BytesPerReading, st.Evicted)
	assert.Greater(t, st.Evicted.Downsampled, uint64(0), "raw readings were downsampled first")
	assert.Greater(t, st.Evicted.DroppedUnforwarded, uint64(0), "then dropped")
	assert.Equal(t, uint64(60000), st.LastSeq[Readings])
	assert.Equal(t, 60000-int(st.Evicted.Downsampled-st.Evicted.Means+st.Evicted.DroppedUnforwarded),
		st.Records[Readings], "every reading is stored or counted as evicted")

	// The newest data is there: every sensor-hour of the last append, raw or as a mean.
	all := allReadings(t, s)
	require.Equal(t, st.Records[Readings], len(all), "Stats counts what is stored")
	type sh struct {
		sensor string
		hour   time.Time
	}
	have := map[sh]bool{}
	for _, r := range all {
		have[sh{r.Sensor, r.Time.Truncate(time.Hour)}] = true
	}
	for _, r := range last {
		assert.True(t, have[sh{r.Sensor, r.Time.Truncate(time.Hour)}], "newest data of %s at %v", r.Sensor, r.Time)
	}
	for i := 1; i < len(all); i++ {
		require.Less(t, all[i-1].Seq, all[i].Seq, "seq order holds through downsampling")
	}
	n := 0
	for len(ev.ch) > 0 {
		<-ev.ch
		n++
	}
	assert.Greater(t, n, 1, "one report per pass")
}

// TestRoomForLargeBatch uses the smallest bound and the largest batches: a batch that
// would not fit makes the writer evict first instead of failing.
func TestRoomForLargeBatch(t *testing.T) {
	const maxBytes = MinMaxBytes
	s := openSpool(t, Options{MaxBytes: maxBytes, Now: testclock.New(t0).Now})
	for round := range 40 {
		rs := series(fmt.Sprint("s", round%3), DefaultMaxBatch, t0.Add(time.Duration(round)*time.Hour*24), time.Hour)
		_, err := s.AppendReadings(t.Context(), rs)
		require.NoError(t, err, "round %d", round)
		fi, err := os.Stat(s.path)
		require.NoError(t, err)
		require.LessOrEqual(t, fi.Size(), int64(maxBytes), "round %d", round)
	}
	assert.Greater(t, s.Stats().Evicted.DroppedUnforwarded, uint64(0))
}

func TestEvictionWhileFailing(t *testing.T) {
	// A pass whose commits fail changes nothing and reports nothing; once the disk
	// recovers, the next commit evicts and the counters hold only what was committed.
	path := filepath.Join(t.TempDir(), "agent.db")
	s := openSpool(t, Options{Path: path, MaxBytes: 8 << 20})
	appendAll(t, s, series("ph-1", 60000, t0, time.Hour), 4000)
	require.NoError(t, s.Close())

	faults := &Faults{}
	faults.FailCommits(true)
	ev := newEvictions()
	s = openSpool(t, Options{Path: path, MaxBytes: 2 << 20, OnEvict: ev.hook, Faults: faults})
	_, err := s.AppendReadings(t.Context(), series("ph-1", 1, t0, 0))
	require.ErrorIs(t, err, ErrInjected)
	require.NoError(t, s.Expire(t.Context()), "barrier") // retention has nothing to commit
	ev.none(t)
	st := s.Stats()
	assert.Equal(t, Evicted{}, st.Evicted, "failed eviction commits count nothing")
	assert.Equal(t, 60000, st.Records[Readings], "and delete nothing")

	faults.FailCommits(false)
	got, err := s.AppendReadings(t.Context(), series("ph-1", 1, t0, 0))
	require.NoError(t, err)
	assert.Equal(t, uint64(60001), got[0].Seq)
	rep := ev.next(t)
	assert.Greater(t, rep.DroppedUnforwarded, uint64(0))
	assert.Equal(t, rep.Evicted, s.Stats().Evicted)
	assert.Equal(t, 60001-int(rep.DroppedUnforwarded), s.Stats().Records[Readings])
}

// TestLowerBound reopens a file with a smaller MaxBytes than it has grown to: the file
// does not shrink, but the spool evicts at once down to the new watermarks and stops
// growing it.
func TestLowerBound(t *testing.T) {
	ev := newEvictions()
	path := filepath.Join(t.TempDir(), "agent.db")
	s := openSpool(t, Options{Path: path, MaxBytes: 8 << 20})
	appendAll(t, s, series("ph-1", 60000, t0, time.Hour), 4000)
	before := s.Stats()
	require.Greater(t, before.UsedBytes, int64(2<<20))
	require.NoError(t, s.Close())

	s = openSpool(t, Options{Path: path, MaxBytes: 2 << 20, OnEvict: ev.hook})
	got := ev.next(t)
	assert.True(t, got.Full)
	assert.Greater(t, got.DroppedUnforwarded, uint64(0))
	st := s.Stats()
	assert.Less(t, st.UsedBytes, s.low)
	assert.Equal(t, before.FileBytes, st.FileBytes, "bbolt files never shrink")
	appendAll(t, s, series("ph-1", 20000, t0, time.Hour), 4000)
	assert.Equal(t, before.FileBytes, s.Stats().FileBytes, "and it does not grow further")
}

package upstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/cloud/internal/upstream/upstreamtest"
	"github.com/purehealth/purehealth/shared/telemetry"
)

var day = time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC)

func reading(station string, p telemetry.Param, v float64, at time.Time) upstream.Reading {
	info, _ := telemetry.Info(p)
	return upstream.Reading{
		Reading: telemetry.Reading{Station: station, Param: p, Value: v, Unit: info.Unit, Time: at,
			Source: telemetry.SourceAPI},
		Origin: upstream.Origin{RecordID: "r-" + station + "-" + at.Format("20060102")},
	}
}

// rounds is a Source that answers each Fetch with the next scripted result, recording the
// cursor it was given.
type rounds struct {
	results []func(cursor string) (upstream.Batch, error)
	cursors []string
}

func (s *rounds) Fetch(_ context.Context, cursor string) (upstream.Batch, error) {
	s.cursors = append(s.cursors, cursor)
	f := s.results[0]
	if len(s.results) > 1 {
		s.results = s.results[1:]
	}
	return f(cursor)
}

func batch(cursor string, rs ...upstream.Reading) func(string) (upstream.Batch, error) {
	return func(string) (upstream.Batch, error) {
		return upstream.Batch{Readings: rs, Records: len(rs), Cursor: cursor,
			Skipped: upstream.Counts{"na": 2, "bdl": 1}}, nil
	}
}

// failingSink fails its first n calls.
type failingSink struct {
	upstreamtest.Sink
	n int
}

func (f *failingSink) StoreUpstream(ctx context.Context, rs []upstream.Reading) (upstream.Stored, error) {
	if f.n > 0 {
		f.n--
		return upstream.Stored{}, errors.New("database is down")
	}
	return f.Sink.StoreUpstream(ctx, rs)
}

func TestCollectRoundsAndRevisions(t *testing.T) {
	now := day.Add(48 * time.Hour)
	src := &rounds{results: []func(string) (upstream.Batch, error){
		batch("v1",
			reading("MH-PUNE-001", telemetry.BOD, 18.5, day),
			reading("MH-PUNE-001", telemetry.FC, 1.2e5, day),
			reading("MH-PUNE-001", telemetry.BOD, 99, day), // the same key again in one batch
			reading("MH-NASHIK-001", telemetry.DO, math.NaN(), day)),
		func(string) (upstream.Batch, error) { return upstream.Batch{}, errors.New("gateway said 502") },
		batch("v2",
			reading("MH-PUNE-001", telemetry.BOD, 21.0, day),  // republished with a correction
			reading("MH-PUNE-001", telemetry.FC, 1.2e5, day)), // unchanged
	}}
	sink, cursors := &failingSink{n: 0}, &upstreamtest.Cursors{}
	c, err := upstream.NewCollector("cpcb-nwmp", src, sink, cursors, nil, func() time.Time { return now })
	require.NoError(t, err)
	ctx := t.Context()

	require.NoError(t, c.Collect(ctx))
	st := c.Status()
	assert.EqualValues(t, 2, st.New)
	assert.Equal(t, upstream.Counts{"na": 2, "bdl": 1, upstream.SkipDuplicate: 1, upstream.SkipNotFinite: 1}, st.Skipped)
	assert.Equal(t, day, st.Newest)
	assert.Equal(t, (48 * time.Hour).Seconds(), st.LagSecond)
	for _, r := range sink.Current() {
		assert.Equal(t, "cpcb-nwmp", r.Origin.Source, "the collector names the source")
		assert.Equal(t, "cpcb-nwmp", r.Sensor)
		if r.Param == telemetry.BOD {
			assert.Equal(t, 18.5, r.Value, "the first of two readings with one key is kept")
		}
	}

	err = c.Collect(ctx)
	require.ErrorContains(t, err, "gateway said 502")
	st = c.Status()
	assert.Contains(t, st.LastError, "cpcb-nwmp: gateway said 502")
	assert.EqualValues(t, 1, st.ConsecutiveFailures)
	assert.Equal(t, now, st.LastErrorAt)

	require.NoError(t, c.Collect(ctx))
	assert.Equal(t, []string{"", "v1", "v1"}, src.cursors, "the failed round left the cursor")
	st = c.Status()
	assert.EqualValues(t, 1, st.Revised)
	assert.EqualValues(t, 1, st.Unchanged)
	assert.EqualValues(t, 0, st.ConsecutiveFailures)
	assert.Equal(t, upstream.Stored{New: 0, Revised: 1, Unchanged: 1}, st.LastRound.Stored)

	k := reading("MH-PUNE-001", telemetry.BOD, 0, day)
	k.Origin.Source = "cpcb-nwmp"
	hist := sink.History(k.Key())
	require.Len(t, hist, 2, "the old value is kept beside the revision")
	assert.Equal(t, []float64{18.5, 21}, []float64{hist[0].Value, hist[1].Value})
	got, _ := cursors.Cursor(ctx, "cpcb-nwmp")
	assert.Equal(t, "v2", got)

	// /stats shows the status as JSON.
	b, err := json.Marshal(c.Status())
	require.NoError(t, err)
	assert.Contains(t, string(b), `"source":"cpcb-nwmp"`)
	assert.Contains(t, string(b), `"revised":1`)
	assert.Contains(t, string(b), `"lag_s":172800`)
}

func TestCursorMovesOnlyWhenStored(t *testing.T) {
	src := &rounds{results: []func(string) (upstream.Batch, error){
		batch("v1", reading("MH-SANGLI-001", telemetry.BOD, 3, day)),
	}}
	sink, cursors := &failingSink{n: 1}, &upstreamtest.Cursors{}
	c, err := upstream.NewCollector("nwmp", src, sink, cursors, nil, nil)
	require.NoError(t, err)
	require.ErrorContains(t, c.Collect(t.Context()), "database is down")
	cur, _ := cursors.Cursor(t.Context(), "nwmp")
	assert.Empty(t, cur, "nothing stored: the cursor stays")
	require.NoError(t, c.Collect(t.Context()))
	cur, _ = cursors.Cursor(t.Context(), "nwmp")
	assert.Equal(t, "v1", cur)
	assert.Equal(t, []string{"", ""}, src.cursors)
}

func TestPartialRound(t *testing.T) {
	src := &rounds{results: []func(string) (upstream.Batch, error){
		func(string) (upstream.Batch, error) {
			return upstream.Batch{Readings: []upstream.Reading{reading("MH-PUNE-001", telemetry.Turbidity, 40, day)},
				Cursor: "2025-06-09"}, errors.New("MH-SANGLI-001: 503 Service Unavailable")
		},
	}}
	sink, cursors := &upstreamtest.Sink{}, &upstreamtest.Cursors{}
	c, err := upstream.NewCollector("satellite", src, sink, cursors, nil, nil)
	require.NoError(t, err)
	require.ErrorContains(t, c.Collect(t.Context()), "MH-SANGLI-001: 503")
	assert.Len(t, sink.Current(), 1, "what the round got is kept")
	cur, _ := cursors.Cursor(t.Context(), "satellite")
	assert.Equal(t, "2025-06-09", cur)
	st := c.Status()
	assert.EqualValues(t, 1, st.Failures)
	assert.EqualValues(t, 1, st.New)
}

func TestNewCollectorChecks(t *testing.T) {
	_, err := upstream.NewCollector("", &rounds{}, &upstreamtest.Sink{}, &upstreamtest.Cursors{}, nil, nil)
	assert.ErrorContains(t, err, "name")
	_, err = upstream.NewCollector("x", nil, &upstreamtest.Sink{}, &upstreamtest.Cursors{}, nil, nil)
	assert.ErrorContains(t, err, "required")
}

func TestClassify(t *testing.T) {
	r := reading("MH-PUNE-001", telemetry.BOD, 18.5, day)
	assert.Equal(t, upstream.New, upstream.Classify(r, 0, false))
	assert.Equal(t, upstream.Unchanged, upstream.Classify(r, 18.5, true))
	assert.Equal(t, upstream.Revised, upstream.Classify(r, 18.4, true))
	assert.Equal(t, "revised", upstream.Revised.String())
}

func TestGrade(t *testing.T) {
	now := day
	tests := []struct {
		name  string
		p     telemetry.Param
		v     float64
		at    time.Time
		want  telemetry.Quality
		flags telemetry.Flags
	}{
		{"plausible", telemetry.DO, 5.2, day, telemetry.Good, 0},
		{"years old is fine", telemetry.BOD, 12, day.AddDate(-3, 0, 0), telemetry.Good, 0},
		{"implausible", telemetry.PH, 12.5, day, telemetry.Suspect, telemetry.FlagImplausible},
		{"impossible", telemetry.PH, 15, day, telemetry.Bad, telemetry.FlagOutOfRange},
		{"negative rain", telemetry.Rainfall, -1, day, telemetry.Bad, telemetry.FlagOutOfRange},
		{"next year", telemetry.DO, 5, day.AddDate(1, 0, 0), telemetry.Suspect, telemetry.FlagFuture},
		{"unknown parameter", "salinity", 3, day, telemetry.Bad, telemetry.FlagOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := telemetry.Reading{Param: tt.p, Value: tt.v, Time: tt.at}
			upstream.Grade(&r, now)
			assert.Equal(t, tt.want, r.Quality)
			assert.Equal(t, tt.flags, r.Flags)
		})
	}
}

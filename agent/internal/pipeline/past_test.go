package pipeline

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// A sonde that empties its logger after an outage sends days of readings at once, each
// parameter in a message of its own, oldest first. The current index cannot use them
// (they are older than their freshness), so the station's WQI history gets the index as
// it was at each of their instants instead: stored, not published, in time order.
func TestLateReadingsFillTheWQIHistory(t *testing.T) {
	h := newHarness(t, true)
	ctx := t.Context()
	start := h.clock.Now().Add(-48 * time.Hour)
	const steps = lateBatch + 44
	at := func(i int) time.Time { return start.Add(time.Duration(i) * 5 * time.Minute) }
	for i := range steps {
		for _, o := range []telemetry.Observation{
			{Param: "do", Value: 3 + 0.01*float64(i), Unit: "mg/L"}, // the index moves every step
			{Param: "ph", Value: 7.4}, {Param: "bod", Value: 2}, {Param: "fc", Value: 100},
		} {
			o.Time = at(i)
			_, err := h.p.Ingest(ctx, []telemetry.Observation{o})
			require.NoError(t, err)
		}
		h.clock.Advance(time.Millisecond)
	}
	// An old reading out of order changes nothing: the instant it belongs to is closed.
	_, err := h.p.Ingest(ctx, []telemetry.Observation{{Param: "do", Value: 1, Time: at(3)}})
	require.NoError(t, err)

	points := func() []WQIMessage {
		recs, err := h.spool.LastRecords(spool.WQI, 1000)
		require.NoError(t, err)
		out := make([]WQIMessage, len(recs))
		for i, r := range recs { // newest first: in stored order
			require.NoError(t, json.Unmarshal(r.Data, &out[len(recs)-1-i]))
		}
		return out
	}
	assert.Len(t, points(), lateBatch, "stored a batch at a time while the burst goes on")
	h.p.Tick(ctx)
	assert.Len(t, points(), lateBatch, "the rest, and the newest instant, wait for readings still arriving")
	h.clock.Advance(lateQuiet)
	h.p.Tick(ctx)

	got := points()
	require.Len(t, got, steps, "one point per instant: the index moved at each")
	for i, m := range got {
		require.NotNil(t, m.Result, "point %d", i)
		assert.Equal(t, at(i), m.Time, "point %d is the index at its readings' instant", i)
		assert.False(t, m.Result.Partial, "point %d has all four inputs of its instant", i)
		assert.Equal(t, 3+0.01*float64(i), m.Inputs[0].Value, "point %d's DO", i)
	}
	assert.Less(t, got[0].Result.WQI, got[steps-1].Result.WQI, "more oxygen, a better index")
	assert.Empty(t, h.out.byTopic["purehealth/MH-PUNE-001/wqi"], "history only: the current index is none of these")
	assert.Nil(t, h.p.CurrentWQI(), "and the current index has no fresh input")

	// A live reading goes on as before, with the current index at now.
	_, err = h.p.Ingest(ctx, []telemetry.Observation{obs("ph", 7.5, ""), obs("do", 7, "mg/L")})
	require.NoError(t, err)
	require.NotNil(t, h.p.CurrentWQI())
	got = points()
	require.Len(t, got, steps+1)
	assert.Equal(t, h.clock.Now().UTC(), got[steps].Time)
}

// A lab sample entered days after it was taken is late by nature: on its own it makes no
// point: it would be an index of the sample alone.
func TestLateSampleMakesNoPointOfItsOwn(t *testing.T) {
	h := newHarness(t, true)
	ctx := t.Context()
	taken := h.clock.Now().Add(-40 * 24 * time.Hour) // past the 31 days a lab's BOD feeds the index
	_, err := h.p.AddSample(ctx, telemetry.Observation{Param: "bod", Value: 2, Time: taken})
	require.NoError(t, err)
	h.clock.Advance(lateQuiet)
	h.p.Tick(ctx)
	recs, err := h.spool.LastRecords(spool.WQI, 10)
	require.NoError(t, err)
	assert.Empty(t, recs)
}

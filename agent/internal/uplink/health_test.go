package uplink

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/testclock"
	"github.com/purehealth/purehealth/shared/wire"
)

// healthSource counts the records it makes; version is what they say.
type healthSource struct {
	made    atomic.Int64
	version atomic.Value // string
}

func (h *healthSource) record() *wire.Health {
	h.made.Add(1)
	return &wire.Health{Time: time.Now().UTC(), Version: h.version.Load().(string), Probes: wire.HealthProbes{Total: 1, Online: 1}}
}

func newHealthSource(version string) *healthSource {
	h := &healthSource{}
	h.version.Store(version)
	return h
}

// The health record goes in a batch of its own, at the first pass and then once per
// interval however many passes there are, taken afresh each time; the records go as
// before.
func TestHealthGoesAloneOncePerInterval(t *testing.T) {
	s := openStore(t, "")
	c := newCloud(t, nil)
	clk := testclock.New(t0)
	src := newHealthSource("v1.2.0")
	u := newUplink(t, s, c, nil, Options{Health: src.record, HealthInterval: time.Minute, Now: clk.Now})
	addReadings(t, s, 10)
	start(t, u)
	require.NoError(t, flush(t, u))

	hs := c.healthRecords()
	require.Len(t, hs, 1, "one health record at the first pass")
	assert.Equal(t, 0, hs[0].records, "the health record travels alone")
	assert.Equal(t, "v1.2.0", hs[0].h.Version)
	assert.Len(t, c.seqs("readings"), 10, "the readings went as before")
	assert.Equal(t, t0, u.Status().HealthSentAt)

	addReadings(t, s, 5)
	require.NoError(t, flush(t, u))
	assert.Len(t, c.healthRecords(), 1, "no second record within the interval")
	assert.Len(t, c.seqs("readings"), 15)

	clk.Set(t0.Add(time.Minute))
	src.version.Store("v1.3.0")
	require.NoError(t, flush(t, u))
	hs = c.healthRecords()
	require.Len(t, hs, 2, "the next record an interval later, with no data waiting")
	assert.Equal(t, "v1.3.0", hs[1].h.Version, "taken afresh, not resent")
	assert.Equal(t, int64(2), src.made.Load(), "a record is taken only when it goes")
}

// A health record the cloud refuses (here one its validation finds wrong) costs no
// record: the pass succeeds, the refusal is counted, and the record is not sent again
// before the next interval.
func TestHealthRefusedHoldsNothing(t *testing.T) {
	s := openStore(t, "")
	c := newCloud(t, nil)
	clk := testclock.New(t0)
	src := newHealthSource("v1\x1b[2J") // a control character: the cloud refuses it
	u := newUplink(t, s, c, nil, Options{Health: src.record, HealthInterval: time.Minute, Now: clk.Now})
	addReadings(t, s, 20)
	start(t, u)
	require.NoError(t, flush(t, u), "a refused health record does not fail the pass")
	assert.Len(t, c.seqs("readings"), 20)
	assert.Empty(t, c.healthRecords())
	st := u.Status()
	assert.Equal(t, uint64(1), st.HealthRefused)
	assert.True(t, st.HealthSentAt.IsZero())
	assert.Zero(t, st.ConsecutiveFailures)

	before := c.requestCount()
	require.NoError(t, flush(t, u))
	assert.Equal(t, before, c.requestCount(), "nothing to send and no record due: no request")

	clk.Set(t0.Add(time.Minute))
	src.version.Store("v1.2.0")
	require.NoError(t, flush(t, u))
	require.Len(t, c.healthRecords(), 1, "the next interval's record is taken")
}

// With the cloud out of reach the record fails the pass like any batch; the next pass
// after the cloud is back sends a fresh one at once.
func TestHealthAfterAnOutage(t *testing.T) {
	s := openStore(t, "")
	c := newCloud(t, nil)
	clk := testclock.New(t0)
	src := newHealthSource("v1.2.0")
	u := newUplink(t, s, c, nil, Options{Health: src.record, HealthInterval: time.Minute, Now: clk.Now})
	c.down()
	start(t, u)
	assert.Error(t, flush(t, u), "the cloud is down")
	assert.Empty(t, c.healthRecords())
	assert.NotZero(t, u.Status().Failures)

	c.up(t)
	require.NoError(t, flush(t, u))
	assert.Len(t, c.healthRecords(), 1)
}

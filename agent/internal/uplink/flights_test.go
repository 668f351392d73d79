package uplink

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/shared/wire"
)

// lowestReading reads the lowest reading seq of a request's batch and leaves the body
// for the contract to read again.
func lowestReading(t *testing.T, r *http.Request) uint64 {
	body, err := io.ReadAll(r.Body)
	if !assert.NoError(t, err) {
		return 0
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	b, err := wire.Decode(bytes.NewReader(body), wire.IsGzip(r.Header.Get("Content-Encoding")))
	if !assert.NoError(t, err) || len(b.Readings) == 0 {
		return 0
	}
	lo := b.Readings[0].Seq
	for _, x := range b.Readings {
		lo = min(lo, x.Seq)
	}
	return lo
}

// checkCursorHolds checks the cursor against what the cloud holds: every reading up to it
// is there, and every one above it that is there is acknowledged ahead.
func checkCursorHolds(t *testing.T, s *spool.Spool, u *Uplink, cloud *fakeCloud) {
	t.Helper()
	cur := s.Cursor(spool.Readings)
	in := map[uint64]bool{}
	var above uint64
	for _, seq := range cloud.seqs("readings") {
		in[seq] = true
		if seq > cur {
			above++
		}
	}
	for seq := uint64(1); seq <= cur; seq++ {
		require.True(t, in[seq], "the cursor (%d) passed reading %d, which the cloud does not hold", cur, seq)
	}
	assert.Equal(t, above, u.Status().AckedAhead[spool.Readings], "what the cloud holds above the cursor is acknowledged ahead")
}

// Backlog batches travel together. The cloud stores the second while it still holds the
// first: the cursor does not move past the first until its answer comes, and then
// over both.
func TestInFlightCursorWaitsForTheOldest(t *testing.T) {
	s := openStore(t, "")
	cloud := newCloud(t, nil)
	addReadings(t, s, 1200)
	u := newUplink(t, s, cloud, nil, Options{BatchMax: 500, LiveReadings: 1})
	release := make(chan struct{})
	var held uint64
	var mu sync.Mutex
	cloud.push(func(http.ResponseWriter, *http.Request) bool { return false }) // the live lane
	cloud.push(func(_ http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		held = lowestReading(t, r)
		mu.Unlock()
		select {
		case <-release:
		case <-time.After(guard):
		}
		return false
	})
	stop := start(t, u)
	defer stop()
	// The batch behind the held one is stored while it waits.
	require.Eventually(t, func() bool { return len(cloud.seqs("readings")) >= 1+500 }, guard, time.Millisecond)
	mu.Lock()
	lo := held
	mu.Unlock()
	require.NotZero(t, lo)
	assert.Less(t, s.Cursor(spool.Readings), lo, "the cursor waits below the batch held")
	close(release)
	require.NoError(t, flush(t, u))
	assert.Equal(t, span(1, 1200), cloud.seqs("readings"))
	assert.Zero(t, cloud.duplicates())
	assert.Equal(t, uint64(1200), s.Cursor(spool.Readings))
	assert.Zero(t, u.Status().AckedAhead[spool.Readings])
}

// The cloud refuses the first of the backlog batches in flight (a 503) and stores the others:
// the pass fails, the cursor stops where what the cloud holds stops, what it holds above is
// acknowledged ahead, and the next pass sends the rest, nothing twice.
func TestInFlightOneFails(t *testing.T) {
	s := openStore(t, "")
	cloud := newCloud(t, nil)
	addReadings(t, s, 3000)
	u := newUplink(t, s, cloud, nil, Options{BatchMax: 500})
	cloud.push(func(http.ResponseWriter, *http.Request) bool { return false }) // the live lane
	cloud.push(func(w http.ResponseWriter, r *http.Request) bool {
		discard(r)
		refuse(w, http.StatusServiceUnavailable, wire.Error{Error: "busy"})
		return true
	})
	timer := useFakeTimer(u)
	start(t, u)
	w := timer.next(t)
	assert.Less(t, w.d, time.Hour, "a backoff after the failure")
	assert.Contains(t, u.Status().LastError, "503")
	assert.Len(t, cloud.seqs("readings"), DefaultLiveReadings+(DefaultInFlight-1)*500, "the live lane and the batches beside the refused one")
	checkCursorHolds(t, s, u, cloud)

	w.fire <- time.Now()
	w = timer.next(t)
	assert.Equal(t, time.Hour, w.d)
	assert.Equal(t, span(1, 3000), cloud.seqs("readings"))
	assert.Zero(t, cloud.duplicates(), "nothing went twice")
	assert.Equal(t, uint64(3000), s.Cursor(spool.Readings))
	assert.Zero(t, u.Status().AckedAhead[spool.Readings])
	w.fire <- time.Now()
}

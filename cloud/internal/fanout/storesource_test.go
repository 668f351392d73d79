package fanout_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/fanout"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
)

// TestReplicasShareTheStream runs two replicas on one database, each with its own
// connections: a batch stored through one reaches the clients of both, as the same
// events in the same order.
func TestReplicasShareTheStream(t *testing.T) {
	st, url := storetest.Open(t, store.Options{})
	one := newEnvOn(t, pgSourceOn(st), fanout.Options{}, "A", "B")
	two := newEnvOn(t, pgSourceOn(storetest.OpenURL(t, url, store.Options{})), fanout.Options{})
	var clients []*client
	for _, e := range []*env{one, two} {
		c := e.dial(t, "/ws", nil)
		c.subscribe([]string{"*"}, nil)
		clients = append(clients, c)
	}
	one.ingest(t, "A", 3)
	one.ingest(t, "B", 2)
	want := one.events(t, 0)
	require.Len(t, want, 5)
	for i, c := range clients {
		assertEvents(t, want, c.collect(len(want)), []string{"the writing replica", "the other replica"}[i])
	}
}

// TestFollowSurvivesListenerLoss ends the LISTEN connection under the Source: it listens
// again and catches up, so events keep coming without waiting for a poll.
func TestFollowSurvivesListenerLoss(t *testing.T) {
	st, url := storetest.Open(t, store.Options{})
	src := pgSourceOn(st)
	src.StoreSource = fanout.NewStoreSource(st, fanout.SourceOptions{PollInterval: time.Hour})
	e := newEnvOn(t, src, fanout.Options{}, "A")
	c := e.dial(t, "/ws", nil)
	c.subscribe([]string{"A"}, nil)
	e.ingest(t, "A", 1)
	assertEvents(t, e.events(t, 0), c.collect(1), "before the loss")

	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var ended int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query ILIKE 'LISTEN%'`).Scan(&ended))
	require.Equal(t, 1, ended, "one listening connection")

	mark := e.lastEventID(t)
	e.ingest(t, "A", 2)
	assertEvents(t, e.events(t, mark), c.collect(2), "after the loss, without a poll")
}

// TestStationStatusEvents drives the station health check with the store's clock and
// watches the status and alert messages reach a subscriber.
func TestStationStatusEvents(t *testing.T) {
	var offset atomic.Int64
	st, _ := storetest.Open(t, store.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	e := newEnvOn(t, pgSourceOn(st), fanout.Options{}, "A")
	c := e.dial(t, "/ws/station/A", nil)
	c.untilAck()
	e.ingest(t, "A", 1)
	c.collect(1)

	offset.Store(int64(11 * time.Minute))
	changes, err := st.CheckStationHealth(context.Background(), store.HealthPolicy{OfflineAfter: 10 * time.Minute})
	require.NoError(t, err)
	require.Len(t, changes, 1)
	got := c.collect(2)
	assert.Equal(t, []string{"status", "alert"}, []string{got[0].Type, got[1].Type})
	var status store.StationStatus
	require.NoError(t, json.Unmarshal(got[0].Data, &status))
	assert.Equal(t, "offline", status.State)
	var alert store.AlertChange
	require.NoError(t, json.Unmarshal(got[1].Data, &alert))
	assert.Equal(t, store.RuleStationOffline, alert.Rule)
	assert.Equal(t, "cloud", alert.Origin)
	assert.Equal(t, "opened", alert.Transition)

	e.ingest(t, "A", 1)
	got = c.collect(3)
	assert.Equal(t, []string{"status", "alert", "reading"}, []string{got[0].Type, got[1].Type, got[2].Type})
	require.NoError(t, json.Unmarshal(got[0].Data, &status))
	assert.Equal(t, "online", status.State)
	require.NoError(t, json.Unmarshal(got[1].Data, &alert))
	assert.Equal(t, "resolved", alert.Transition)
}

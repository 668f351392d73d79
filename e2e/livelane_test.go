package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/pahotest"
	"github.com/purehealth/purehealth/internal/pgtest"
)

// After a long outage the operator sees the station's current state before the backlog
// has drained: the newest reading and the latest alert reach the database while older
// readings are still on their way.
func TestLiveLaneGoesFirst(t *testing.T) {
	n := scale(20000, 5000)
	c := newCloud(t, pgtest.New(t)) // not serving yet: the backlog builds up
	a := newAgent(t, c.URL(), c.TokenFile, agentOptions{})
	a.Start(t)
	acked := uniqueValues(1000, n)
	publishBulk(t, a, acked, 250)
	// Then dissolved oxygen crashes (an alert opens) and one last reading comes in.
	mc := pahotest.Connect(t, a.Listen, "sys", guard)
	pahotest.PublishAcked(t, mc, a.Topic("do"), "1.5", guard)
	pahotest.PublishAcked(t, mc, a.Topic("conductivity"), "999", guard)
	pahotest.Disconnect(mc)
	acked = append(acked, 999)
	alert := doAlert(t, a)
	require.Equal(t, "active", alert.State, "the low-oxygen alert should be open at the station: %+v", alert)
	q := a.queue(t)
	newest, total := q.lastSeq("readings"), int64(q.lastSeq("readings"))
	require.Equal(t, uint64(n+2), newest, "readings stored at the agent (queue %s)", q)

	c.serve.Start(t)
	conn := dbConnect(t, c.DatabaseURL)
	// Poll the database (not the agent) until the newest reading and the alert are there.
	var (
		count               int64
		hasNewest, hasAlert bool
		polls               int
	)
	deadline := time.Now().Add(drainGuard)
	for !(hasNewest && hasAlert) {
		require.False(t, time.Now().After(deadline),
			"the newest reading (seq %d) and the alert %d did not reach the cloud within %v; %s",
			newest, alert.ID, drainGuard, describe(t.Context(), conn))
		ctx, cancel := context.WithTimeout(t.Context(), guard)
		err := conn.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM measurements WHERE station_id = $1),
				EXISTS (SELECT FROM measurements WHERE station_id = $1 AND seq = $2),
				EXISTS (SELECT FROM alerts WHERE station_id = $1 AND alert_id = $3)`,
			station, int64(newest), int64(alert.ID)).Scan(&count, &hasNewest, &hasAlert)
		cancel()
		require.NoError(t, err)
		polls++
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("after %d polls: the newest reading and the alert are in the cloud with %d of %d readings", polls, count, total)
	assert.Less(t, count, total,
		"the newest reading and the alert should be in the cloud before the backlog has drained, found them only with all %d readings there", count)

	// The same order, independent of how fast the polls were: the rows of the live batch
	// were written by an earlier transaction than the oldest reading of the backlog.
	var liveTx, alertTx, backlogTx int64
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT
			(SELECT xmin::text::bigint FROM measurements WHERE station_id = $1 AND seq = $2),
			(SELECT max(xmin::text::bigint) FROM alert_events WHERE station_id = $1 AND alert_id = $3)`,
		station, int64(newest), int64(alert.ID)).Scan(&liveTx, &alertTx))

	requireExactlyOnce(t, c, a, checkOptions{Acked: acked, OnlyAcked: true})
	require.NoError(t, conn.QueryRow(t.Context(),
		`SELECT xmin::text::bigint FROM measurements WHERE station_id = $1 AND seq = 1`, station).Scan(&backlogTx))
	assert.Less(t, liveTx, backlogTx, "the newest reading should have been stored before the oldest")
	assert.Less(t, alertTx, backlogTx, "the alert should have been stored before the oldest reading")
}

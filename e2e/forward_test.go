package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/pahotest"
	"github.com/purehealth/purehealth/internal/pgtest"
)

// scale picks the size of a test: n normally, short with -short.
func scale(n, short int) int {
	if testing.Short() {
		return short
	}
	return n
}

// Readings published at a running agent reach the cloud once each: the database holds
// exactly the acknowledged values, one row per seq, and the agent's queue ends empty with
// its cursor on its last seq.
func TestForwardsEveryAcknowledgedReadingOnce(t *testing.T) {
	n := scale(3000, 1000)
	c := newCloud(t, pgtest.New(t))
	c.serve.Start(t)
	a := newAgent(t, c.URL(), c.TokenFile, agentOptions{})
	a.Start(t)

	acked := publishAll(t, a, uniqueValues(1000, n), pubOptions{Clients: 4})
	q := requireExactlyOnce(t, c, a, checkOptions{Acked: acked, OnlyAcked: true})
	assert.Equal(t, uint64(n), q.LastAckedSeq, "last_acked_seq should be the last reading's seq")

	// Both daemons stop cleanly on SIGTERM.
	a.Stop(t)
	c.serve.Stop(t)
}

// An alert opened and resolved at the station while the cloud was unreachable.
func publishExcursion(t *testing.T, a *agent) {
	t.Helper()
	c := pahotest.Connect(t, a.Listen, "sys", guard)
	defer pahotest.Disconnect(c)
	// Enough for a full WQI, then dissolved oxygen falls below class B's 5 mg/L and
	// recovers for longer than the alert's hysteresis needs.
	for _, p := range []struct{ param, value string }{
		{"ph", "7.4"}, {"bod", "2"}, {"fc", "120"}, {"temp", "26"}, {"do", "6.8"},
		{"do", "2"}, {"do", "7"}, {"do", "7.1"}, {"do", "7.2"}, {"do", "7.3"}, {"do", "7.2"},
	} {
		pahotest.PublishAcked(t, c, a.Topic(p.param), p.value, guard)
	}
}

// The cloud is down while the station collects readings and raises and resolves an
// alert. When it comes up, everything arrives once: the readings, the alert with the
// times it had at the station (not when it reached the cloud), both its transitions, and
// the WQI history.
func TestCloudDownDuringTheWholePublish(t *testing.T) {
	n := scale(3000, 1000)
	c := newCloud(t, pgtest.New(t)) // migrated and registered, not serving yet
	a := newAgent(t, c.URL(), c.TokenFile, agentOptions{})
	a.Start(t)

	acked := publishAll(t, a, uniqueValues(1000, n), pubOptions{})
	publishExcursion(t, a)
	before := a.waitQueue(t, "a failed attempt to reach the cloud", func(q queue) bool { return q.ConsecutiveFailures > 0 })
	require.Equal(t, uint64(0), before.LastAckedSeq, "nothing can have been acknowledged yet")
	require.GreaterOrEqual(t, before.lastSeq("wqi"), uint64(2), "the WQI should have been stored as it changed")

	excursion := doAlert(t, a)
	require.Equal(t, "resolved", excursion.State, "the low-oxygen alert should be resolved at the station: %+v", excursion)

	upAt := time.Now()
	c.serve.Start(t)
	requireExactlyOnce(t, c, a, checkOptions{Acked: acked, OnlyAcked: true})

	// The cloud has the alert as the station saw it, not as it arrived.
	conn := dbConnect(t, c.DatabaseURL)
	var (
		state            string
		opened, resolved time.Time
	)
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT state, opened_at, resolved_at FROM alerts
		WHERE station_id = $1 AND alert_id = $2`, station, int64(excursion.ID)).Scan(&state, &opened, &resolved),
		"the low-oxygen alert %d in the cloud", excursion.ID)
	assert.Equal(t, "resolved", state)
	assert.True(t, sameInstant(opened, excursion.OpenedAt) && sameInstant(resolved, *excursion.ResolvedAt),
		"the cloud has the alert opened %s, resolved %s; the station: opened %s, resolved %s",
		opened, resolved, excursion.OpenedAt, excursion.ResolvedAt)
	assert.True(t, resolved.Before(upAt), "the alert resolved at %s, before the cloud came up at %s", resolved, upAt)

	var transitions []string
	rows, err := conn.Query(t.Context(), `SELECT transition, time FROM alert_events
		WHERE station_id = $1 AND alert_id = $2 ORDER BY seq`, station, int64(excursion.ID))
	require.NoError(t, err)
	for rows.Next() {
		var tr string
		var at time.Time
		require.NoError(t, rows.Scan(&tr, &at))
		transitions = append(transitions, tr)
		switch tr {
		case "opened":
			assert.True(t, sameInstant(at, excursion.OpenedAt), "opened event at %s, the alert opened at %s", at, excursion.OpenedAt)
		case "resolved":
			assert.True(t, sameInstant(at, *excursion.ResolvedAt), "resolved event at %s, the alert resolved at %s", at, excursion.ResolvedAt)
		}
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []string{"opened", "resolved"}, transitions, "the low-oxygen alert's events in the cloud")
}

// doAlert finds the agent's threshold alert on dissolved oxygen.
func doAlert(t *testing.T, a *agent) agentAlert {
	t.Helper()
	var found []agentAlert
	for _, al := range a.alerts(t) {
		if al.Rule == "threshold" && al.Param == "do" {
			found = append(found, al)
		}
	}
	require.Len(t, found, 1, "want one threshold alert on do at the agent")
	return found[0]
}

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/pahotest"
	"github.com/purehealth/purehealth/internal/pgtest"
)

// An alert acknowledged by an operator in the cloud is acknowledged at the station once
// the station's next exchange brings it, with who and when; one acknowledged at the
// station shows as acknowledged in the cloud. Both sides end in the same state.
func TestAcknowledgeAnywhere(t *testing.T) {
	db := pgtest.New(t)
	c := newCloud(t, db)
	ops := strings.TrimSpace(mustCmd(t, cloudBin(t), "token", "add", "ops", "--role", "operator", "--config", c.Config))
	c.serve.Start(t)
	a := newAgent(t, c.URL(), c.TokenFile, agentOptions{})
	a.Start(t)
	mq := pahotest.Connect(t, a.Listen, "sys", guard)
	defer pahotest.Disconnect(mq)
	for _, p := range []struct{ param, value string }{{"ph", "7.4"}, {"do", "2"}, {"temp", "26"}, {"ph", "9.9"}} {
		pahotest.PublishAcked(t, mq, a.Topic(p.param), p.value, guard)
	}
	byRule := func() map[string]agentAlert {
		out := map[string]agentAlert{}
		for _, al := range a.alerts(t) {
			if al.Rule == "threshold" {
				out[al.Param] = al
			}
		}
		return out
	}
	alerts := byRule()
	require.Contains(t, alerts, "do", "a DO of 2 mg/L opens a threshold alert at a class B station")
	require.Contains(t, alerts, "ph", "a pH of 9.9 opens one too")
	doID, phID := alerts["do"].ID, alerts["ph"].ID

	cloudAlert := func(id uint64) (state, by string, pending bool) {
		t.Helper()
		conn, err := pgx.Connect(t.Context(), db)
		require.NoError(t, err)
		defer conn.Close(t.Context())
		err = conn.QueryRow(t.Context(), `SELECT state, acknowledged_by, ack_pending FROM alerts
			WHERE station_id = $1 AND origin = 'station' AND alert_id = $2`, station, int64(id)).Scan(&state, &by, &pending)
		if err == pgx.ErrNoRows {
			return "", "", false
		}
		require.NoError(t, err)
		return state, by, pending
	}
	require.Eventually(t, func() bool { s, _, _ := cloudAlert(doID); return s == "active" }, guard, 100*time.Millisecond,
		"the DO alert reaches the cloud")

	// In the cloud, by an operator.
	req, err := http.NewRequest(http.MethodPost, c.URL()+"/v1/alerts/"+strconv.FormatUint(doID, 10)+"/ack?station="+station, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+ops)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var acked struct {
		State          string `json:"state"`
		AcknowledgedBy string `json:"acknowledged_by"`
	}
	require.NoError(t, json.Unmarshal(body, &acked))
	assert.Equal(t, "ops", acked.AcknowledgedBy)

	// The station's next exchange brings it: a reading goes up, the acknowledgement down.
	until(t, "the station acknowledges what the operator acknowledged", func() bool {
		pahotest.PublishAcked(t, mq, a.Topic("temp"), "26.1", guard)
		return byRule()["do"].State == "acknowledged"
	})
	assert.Equal(t, "ops", byRule()["do"].AcknowledgedBy, "with who acknowledged it")
	require.Eventually(t, func() bool {
		s, by, pending := cloudAlert(doID)
		return s == "acknowledged" && by == "ops" && !pending
	}, guard, 100*time.Millisecond, "the station's acknowledged transition confirms it in the cloud")

	// At the station, by the technician.
	mustCmd(t, a.bin, "alerts", "ack", strconv.FormatUint(phID, 10), "--config", a.Config)
	require.Eventually(t, func() bool {
		s, by, _ := cloudAlert(phID)
		return s == "acknowledged" && by == "station"
	}, guard, 100*time.Millisecond, "an alert acknowledged at the station shows as acknowledged in the cloud")
}

// until polls cond in the test's goroutine (it may fail the test itself) until it holds,
// failing the test after guard.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("want %s within %v", what, guard)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

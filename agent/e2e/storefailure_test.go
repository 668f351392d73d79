package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/config"
	"github.com/purehealth/purehealth/agent/internal/daemon"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/internal/pahotest"
	"github.com/purehealth/purehealth/internal/testlog"
)

// While the buffer's commits fail (a dying SD card), a QoS 1 publish from an MQTT 3.1.1
// device gets no PUBACK, so the device keeps it and sends it again; and the station still
// alerts locally: a store_failure alert, and a threshold alert for the reading that could
// not be stored. When commits work again the next publish is acknowledged and stored, and
// the store_failure alert resolves. The daemon runs inside the test process so that the
// failure can be injected, and it must leave no goroutine behind when it stops.
func TestStoreFailureStillAlertsAndNeverAcks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	// Registered first, so it runs last: after the clients and the daemon are gone.
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })

	cfg := newConfig(t, 8<<20)
	loaded, err := config.Load(cfg.Path)
	require.NoError(t, err)
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	faults := &spool.Faults{}
	d, err := daemon.New(loaded, log, daemon.WithSpoolFaults(faults))
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err, "Run")
		case <-time.After(guard):
			t.Error("Run did not return after its context ended")
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs)
		}
	})
	waitDaemon(t, cfg, done)

	watcher := pahotest.Connect(t, cfg.Listen, "e2e", guard)
	alerts := subscribe(t, watcher, cfg.Topic("alerts"))
	device := pahotest.Connect(t, cfg.Listen, "e2e", guard)
	pahotest.PublishAcked(t, device, cfg.Topic("ph"), `{"value": 7.2, "unit": "pH"}`, guard)

	faults.FailCommits(true)
	// DO 2 mg/L is below class B's minimum of 5: a threshold alert, whether stored or not.
	first := device.Publish(cfg.Topic("do"), 1, false, `{"value": 2, "unit": "mg/L"}`)
	// Both alerts are raised while the publish is being handled, after its write failed:
	// seeing them proves the write was attempted while commits failed.
	alerts.waitFor(t, "store_failure opened", isEvent(alerting.Opened, alerting.RuleStoreFailure, ""))
	alerts.waitFor(t, "threshold opened for do", isEvent(alerting.Opened, alerting.RuleThreshold, "do"))
	faults.FailCommits(false)

	// mochi handles one client's packets in order: an acknowledgement of the second publish
	// with none for the first proves the first got none.
	second := device.Publish(cfg.Topic("do"), 1, false, `{"value": 6.5, "unit": "mg/L"}`)
	require.True(t, second.WaitTimeout(guard), "no PUBACK once commits work again")
	require.NoError(t, second.Error())
	select {
	case <-first.Done():
		t.Fatalf("the publish whose write failed was acknowledged (error %v)", first.Error())
	default:
	}
	alerts.waitFor(t, "store_failure resolved", isEvent(alerting.ResolvedTr, alerting.RuleStoreFailure, ""))

	client := admin.NewClient(cfg.Socket)
	rs, err := client.Readings(t.Context(), admin.ReadingsQuery{Param: "do", Limit: 10})
	require.NoError(t, err)
	var values []float64
	for _, r := range rs.Readings {
		values = append(values, r.Value)
	}
	assert.Equal(t, []float64{6.5}, values, "only the acknowledged DO reading is stored")

	st, err := client.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, uint64(1), st.Ingest.StoreFailures, "store failures counted")
	assert.False(t, st.Ingest.StoreFailing, "the store works again")
	assert.Equal(t, int64(1), st.Broker.Rejects["store_failure"], "unacknowledged publishes counted")
	for _, a := range st.ActiveAlerts {
		assert.NotEqual(t, alerting.RuleStoreFailure, a.Rule, "store_failure still active: %+v", a)
	}

	// The alert events raised while commits failed are written once the store works: the
	// history shows the store_failure alert resolved.
	require.Eventually(t, func() bool {
		all, err := client.Alerts(t.Context(), true, 50)
		if err != nil {
			return false
		}
		for _, a := range all.Alerts {
			if a.Rule == alerting.RuleStoreFailure {
				return a.State == alerting.Resolved
			}
		}
		return false
	}, guard, 50*time.Millisecond, "the alert history shows no resolved store_failure alert")

	pahotest.Disconnect(device)
	pahotest.Disconnect(watcher)
}

// isEvent matches an alert event JSON by transition, rule and (if not empty) parameter.
func isEvent(tr alerting.Transition, rule, param string) func([]byte) bool {
	return func(b []byte) bool {
		var ev alerting.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			return false
		}
		return ev.Transition == tr && ev.Rule == rule && (param == "" || ev.Param == param)
	}
}

// waitDaemon waits until the daemon answers on its admin socket and accepts MQTT
// connections, failing early if its Run returns.
func waitDaemon(t *testing.T, cfg agentConfig, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(guard)
	client := admin.NewClient(cfg.Socket)
	for !ready(client, cfg.Listen) {
		select {
		case err := <-done:
			t.Fatalf("daemon stopped before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not ready after %v", guard)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

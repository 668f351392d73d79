package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/purehealth/purehealth/internal/promtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// value returns the value of the family's series with labels (name=value pairs).
func value(t *testing.T, fams promtest.Families, name string, labels ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	v, ok := fams.Value(name, want)
	require.True(t, ok, "no series of %s with %v", name, labels)
	return v
}

func TestMetricsFromASnapshot(t *testing.T) {
	now := time.Now()
	autonomy := 52.5
	snap := Snapshot{
		Station: "MH-PUNE-001", Version: "v1.4.0", UptimeS: 3600, ClockSynced: true,
		Backlog: map[string]int{"readings": 120, "alerts": 1, "wqi": 0}, OldestUnsent: now.Add(-90 * time.Second),
		BufferUsedBytes: 1 << 20, BufferMaxBytes: 512 << 20, AutonomyHours: &autonomy,
		Evicted:      map[string]int64{"dropped_unforwarded": 3, "forwarded": 10},
		StoreCommits: 77, StoreFailures: 2, ReadingsStored: 1000,
		ReadingsFlagged: map[string]uint64{"bad": 4, "suspect": 6},
		Rejects:         map[string]int64{"bad_payload": 5, "sensor_limit": 1},
		Dropped:         map[string]uint64{"hook_queue_full": 2},
		BrokerClients:   3, BrokerReceived: 1010,
		Uplink: &Uplink{State: "backing off", LastSuccess: now.Add(-10 * time.Minute), Since: now.Add(-time.Hour),
			Failing: true, Failures: 9, ConsecutiveFailures: 4, Acked: 880, BytesToday: 4096},
		Probes: []Probe{{Name: "ph-1", Kind: "serial", Param: "ph", Up: true, Readings: 50,
			Errors: map[string]uint64{"timeout": 2, "garbage": 1}, Reconnects: 1}},
		HooksRun: 5, HooksFailed: 1, ActiveAlerts: 2, ReloadsApplied: 3, ReloadsFailed: 1, RestartNeeded: 2,
	}
	s := New("127.0.0.1:0", func() Snapshot { return snap }, nil)
	s.ObserveCommit(3 * time.Millisecond)
	s.ObserveCommit(40 * time.Millisecond)
	require.NoError(t, s.Listen())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	fams := promtest.Scrape(t, "http://"+s.Addr()+"/metrics")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ph_agent_info", []string{"station", "MH-PUNE-001", "version", "v1.4.0"}, 1},
		{"ph_agent_clock_synced", nil, 1},
		{"ph_agent_queue_length", []string{"stream", "readings"}, 120},
		{"ph_agent_queue_length", []string{"stream", "alerts"}, 1},
		{"ph_agent_buffer_autonomy_hours", nil, 52.5},
		{"ph_agent_buffer_evicted_total", []string{"reason", "dropped_unforwarded"}, 3},
		{"ph_agent_store_failures_total", nil, 2},
		{"ph_agent_readings_flagged_total", []string{"quality", "bad"}, 4},
		{"ph_agent_rejects_total", []string{"reason", "bad_payload"}, 5},
		{"ph_agent_rejects_total", []string{"reason", "sensor_limit"}, 1},
		{"ph_agent_dropped_total", []string{"reason", "hook_queue_full"}, 2},
		{"ph_agent_broker_clients", nil, 3},
		{"ph_agent_uplink_state", []string{"state", "backing off"}, 1},
		{"ph_agent_uplink_state", []string{"state", "idle"}, 0},
		{"ph_agent_uplink_failures_total", nil, 9},
		{"ph_agent_uplink_consecutive_failures", nil, 4},
		{"ph_agent_probe_up", []string{"probe", "ph-1", "kind", "serial", "param", "ph"}, 1},
		{"ph_agent_probe_errors_total", []string{"probe", "ph-1", "error", "timeout"}, 2},
		{"ph_agent_probe_reconnects_total", []string{"probe", "ph-1"}, 1},
		{"ph_agent_config_reloads_total", []string{"result", "applied"}, 3},
		{"ph_agent_config_reloads_total", []string{"result", "failed"}, 1},
		{"ph_agent_config_restart_needed", nil, 2},
		{"ph_agent_store_commit_seconds", nil, 2},
	} {
		assert.Equal(t, c.want, value(t, fams, c.name, c.labels...), "%s %v", c.name, c.labels)
	}
	age := value(t, fams, "ph_agent_queue_oldest_age_seconds")
	assert.InDelta(t, 90, age, 30, "the oldest unsent reading's age")
	offline := value(t, fams, "ph_agent_uplink_offline_seconds")
	assert.InDelta(t, 600, offline, 30, "offline since the last success")
	assert.Contains(t, fams, "go_goroutines", "the Go runtime's metrics too")

	// Healthy again, never a success: offline is 0; with no uplink its series are absent.
	snap.Uplink.Failing = false
	assert.Zero(t, value(t, promtest.Scrape(t, "http://"+s.Addr()+"/metrics"), "ph_agent_uplink_offline_seconds"))
	snap.Uplink, snap.AutonomyHours = nil, nil
	fams = promtest.Scrape(t, "http://"+s.Addr()+"/metrics")
	assert.NotContains(t, fams, "ph_agent_uplink_state")
	assert.NotContains(t, fams, "ph_agent_buffer_autonomy_hours", "nothing arrives: no estimate")
}

func TestOfflineSeconds(t *testing.T) {
	now := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	assert.Equal(t, 0.0, offlineSeconds(&Uplink{LastSuccess: now.Add(-time.Hour)}, now), "working")
	assert.Equal(t, 3600.0, offlineSeconds(&Uplink{Failing: true, LastSuccess: now.Add(-time.Hour)}, now))
	assert.Equal(t, 120.0, offlineSeconds(&Uplink{Failing: true, Since: now.Add(-2 * time.Minute)}, now),
		"never a success: since forwarding began")
}

// A port in use is an error of Listen, and Close releases an unused listener.
func TestListenAndClose(t *testing.T) {
	a := New("127.0.0.1:0", func() Snapshot { return Snapshot{} }, nil)
	require.NoError(t, a.Listen())
	require.NoError(t, a.Listen(), "bound already: nothing to do")
	b := New(a.Addr(), func() Snapshot { return Snapshot{} }, nil)
	assert.Error(t, b.Listen(), "the port is taken")
	require.NoError(t, a.Close())
	require.NoError(t, a.Close(), "Close twice is fine")
}

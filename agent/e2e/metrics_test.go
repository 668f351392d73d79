package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/pahotest"
	"github.com/purehealth/purehealth/internal/promtest"
	"github.com/purehealth/purehealth/internal/testproc"
)

// The agent's /metrics, scraped from a running ph-agent and read by Prometheus' text
// parser: the queue grows while the uplink (a closed port) fails and the offline time
// counts, commits are timed, a bad payload is a reject by reason, a dead HTTP probe's
// errors and state show, the broker's clients are counted.
func TestAgentMetricsScraped(t *testing.T) {
	cfg := newConfig(t, 64<<20)
	metricsAddr := testproc.FreeAddr(t, "tcp")
	closed := testproc.FreeAddr(t, "tcp") // nothing listens: the cloud is unreachable
	tokenFile := cfg.Dir + "/token"
	require.NoError(t, os.WriteFile(tokenFile, []byte("tok\n"), 0o600))
	f, err := os.OpenFile(cfg.Path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fmt.Fprintf(f, `metrics: {listen: %q}
uplink: {url: "http://%s", token_file: %s, interval: 200ms, backoff_max: 1s}
probes:
  - {name: dead-1, kind: http, url: "http://%s/ph", param: ph, interval: 200ms, timeout: 100ms}
`, metricsAddr, closed, tokenFile, closed)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	t.Logf("mqtt %s, metrics %s, closed port %s", cfg.Listen, metricsAddr, closed)
	agent := startAgent(t, cfg)
	url := "http://" + metricsAddr + "/metrics"

	c := pahotest.Connect(t, cfg.Listen, "metrics", guard)
	for i := range 25 {
		pahotest.PublishAcked(t, c, cfg.Topic("temp"), fmt.Sprintf("%d.5", 20+i%5), guard)
	}
	pahotest.PublishAcked(t, c, cfg.Topic("temp"), `{"value": "warm"}`, guard) // refused, but acknowledged at QoS 1
	pahotest.PublishAcked(t, c, cfg.Topic("salinity"), `3`, guard)

	var fams promtest.Families
	require.Eventually(t, func() bool {
		fams = promtest.Scrape(t, url)
		errs, _ := fams.Value("ph_agent_probe_errors_total", map[string]string{"probe": "dead-1"})
		offline, _ := fams.Value("ph_agent_uplink_offline_seconds", nil)
		// Between retries: the uplink is "sending" for the moment each attempt takes.
		waiting, _ := fams.Value("ph_agent_uplink_state", map[string]string{"state": "backing off"})
		return errs > 0 && offline > 0 && waiting == 1
	}, guard, 100*time.Millisecond, "the dead probe's errors, the offline time and the uplink waiting to retry show")

	for _, c := range []struct {
		name   string
		labels map[string]string
		check  func(float64) bool
		what   string
	}{
		{"ph_agent_queue_length", map[string]string{"stream": "readings"}, func(v float64) bool { return v >= 25 }, "25 or more readings wait"},
		{"ph_agent_queue_oldest_age_seconds", nil, func(v float64) bool { return v >= 0 }, "an age"},
		{"ph_agent_readings_stored_total", nil, func(v float64) bool { return v >= 25 }, "the readings stored"},
		{"ph_agent_store_commit_seconds", nil, func(v float64) bool { return v >= 1 }, "commits timed"},
		{"ph_agent_rejects_total", map[string]string{"reason": "decode"}, func(v float64) bool { return v == 1 }, "one payload refused"},
		{"ph_agent_rejects_total", map[string]string{"reason": "unknown_param"}, func(v float64) bool { return v == 1 }, "one parameter refused"},
		{"ph_agent_broker_clients", nil, func(v float64) bool { return v == 1 }, "one client"},
		{"ph_agent_uplink_state", map[string]string{"state": "backing off"}, func(v float64) bool { return v == 1 }, "backing off"},
		{"ph_agent_uplink_failures_total", nil, func(v float64) bool { return v >= 1 }, "failures counted"},
		{"ph_agent_uplink_consecutive_failures", nil, func(v float64) bool { return v >= 1 }, "consecutive failures"},
		{"ph_agent_probe_up", map[string]string{"probe": "dead-1", "kind": "http", "param": "ph"}, func(v float64) bool { return v == 0 }, "the dead probe down"},
		{"ph_agent_buffer_max_bytes", nil, func(v float64) bool { return v == 64<<20 }, "the configured bound"},
		{"ph_agent_info", map[string]string{"station": station}, func(v float64) bool { return v == 1 }, "the station"},
	} {
		v, ok := fams.Value(c.name, c.labels)
		if assert.True(t, ok, "no %s %v", c.name, c.labels) {
			assert.True(t, c.check(v), "%s %v = %v: want %s", c.name, c.labels, v, c.what)
		}
	}
	_, hasLast := fams.Value("ph_agent_uplink_last_success_timestamp_seconds", nil)
	assert.False(t, hasLast, "no batch was ever acknowledged")
	agent.Stop(t)
}

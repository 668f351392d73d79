package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/internal/pahotest"
)

// A station whose uplink never works fills its smallest allowed buffer (1 MiB) several
// times over. The buffer must stay within buffer.max_bytes, evict by its policy, count
// what it evicted, raise exactly one buffer_overflow alert and keep acknowledging.
//
// Nothing is ever forwarded here, so steps 1 (forwarded records past the retention) and 2
// (forwarded records) of the eviction policy have nothing to take, and their counters
// must stay zero. The test then observes the other two steps separately:
//
//   - phase 1 sends readings of one sensor that each fall in a different UTC hour. Step 3
//     (hourly means of unsent raw readings) can merge none of them, a group needing two
//     readings, so the buffer can only make room by step 4: dropping the oldest unsent
//     readings. After it: dropped_unforwarded > 0, downsampled = 0.
//   - phase 2 sends readings of another sensor, 150 in each of 160 recent hours. Step 3 now
//     replaces them with hourly means before step 4 drops anything of theirs (step 4 drops
//     oldest first, and what is oldest is phase 1's leftovers). After it: downsampled > 0,
//     and readings flagged downsampled exist: each is on the hour, from the dense sensor,
//     with a mean inside the range of the values sent.
//
// Phase 1's readings are 8 days to years old, so they are also flagged suspect ("past"):
// they are stored all the same.
func TestFullBufferEvictsByPolicyAndAlertsOnce(t *testing.T) {
	const (
		maxBytes     = 1 << 20 // the smallest buffer.max_bytes
		sparseCount  = 40000   // phase 1: about three buffers' worth
		denseHours   = 160
		densePerHour = 150 // phase 2: 24000 readings
		batch        = 250 // readings per publish on purehealth/<station>/readings
		devices      = 4
	)
	cfg := newConfig(t, maxBytes)
	startAgent(t, cfg)
	client := admin.NewClient(cfg.Socket)

	// Watch the buffer's size for the whole test, not only at the end.
	watchCtx, stopWatching := context.WithCancel(t.Context())
	var watch sync.WaitGroup
	var maxUsed, maxFile int64
	watch.Go(func() {
		for watchCtx.Err() == nil {
			if st, err := client.Status(watchCtx); err == nil {
				maxUsed = max(maxUsed, st.Buffer.UsedBytes)
				maxFile = max(maxFile, st.Buffer.FileBytes)
			}
			if fi, err := os.Stat(cfg.DBPath()); err == nil {
				maxFile = max(maxFile, fi.Size())
			}
			select {
			case <-watchCtx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	defer func() { stopWatching(); watch.Wait() }()

	base := time.Now().UTC().Truncate(time.Hour)

	// Phase 1: every reading in an hour of its own, 200 hours ago and older.
	sparse := make([]item, sparseCount)
	for i := range sparse {
		sparse[i] = item{Sensor: "cond-archive", Value: 800 + float64(i%7),
			Time: base.Add(-time.Duration(200+i) * time.Hour).Add(17 * time.Minute)}
	}
	publishItems(t, cfg, devices, batch, sparse)
	evicted := func() map[string]int64 {
		st, err := client.Status(t.Context())
		require.NoError(t, err)
		return st.Buffer.Evicted
	}
	require.Eventually(t, func() bool { return evicted()["dropped_unforwarded"] > 0 }, guard, 20*time.Millisecond,
		"phase 1 overfilled the buffer with readings that cannot be merged, yet none was dropped")
	ev := evicted()
	t.Logf("after phase 1: evicted %v", ev)
	assert.Zero(t, ev["downsampled"], "no two phase-1 readings share an hour: nothing to merge")

	// Phase 2: 150 readings in each of the last 160 hours, oldest hour first.
	var dense []item
	for h := denseHours; h >= 1; h-- {
		for j := range densePerHour {
			dense = append(dense, item{Sensor: "cond-dense", Value: 800 + float64(j%7),
				Time: base.Add(-time.Duration(h) * time.Hour).Add(time.Duration(j) * time.Hour / densePerHour)})
		}
	}
	publishItems(t, cfg, devices, batch, dense)
	require.Eventually(t, func() bool { return evicted()["downsampled"] > 0 }, guard, 20*time.Millisecond,
		"phase 2 overfilled the buffer with mergeable readings, yet none was downsampled")

	// The agent still acknowledges, and stores, a new reading.
	device := pahotest.Connect(t, cfg.Listen, "e2e", guard)
	pahotest.PublishAcked(t, device, cfg.Topic("conductivity"), `{"value": 999, "unit": "uS/cm"}`, guard)
	pahotest.Disconnect(device)

	stopWatching()
	watch.Wait()

	var status admin.Status
	require.NoError(t, json.Unmarshal([]byte(mustCLI(t, cfg, "status", "--json")), &status))
	t.Logf("buffer: used %d of %d bytes (file %d), %d readings; evicted %v; highest seen: used %d, file %d",
		status.Buffer.UsedBytes, status.Buffer.MaxBytes, status.Buffer.FileBytes, status.Buffer.Readings,
		status.Buffer.Evicted, maxUsed, maxFile)
	assert.Equal(t, int64(maxBytes), status.Buffer.MaxBytes)
	assert.LessOrEqual(t, maxUsed, int64(maxBytes), "buffer used beyond max_bytes")
	assert.LessOrEqual(t, maxFile, int64(maxBytes), "database file grew beyond max_bytes")
	assert.LessOrEqual(t, status.Buffer.UsedBytes, int64(maxBytes))
	assert.Zero(t, status.Buffer.Evicted["expired_forwarded"], "step 1: nothing was ever forwarded")
	assert.Zero(t, status.Buffer.Evicted["forwarded"], "step 2: nothing was ever forwarded")
	assert.Positive(t, status.Buffer.Evicted["downsampled"], "step 3")
	assert.Positive(t, status.Buffer.Evicted["dropped_unforwarded"], "step 4")
	assert.Empty(t, status.Buffer.Quarantined)

	// Exactly one buffer_overflow alert, active, and never a second one.
	var active admin.Alerts
	require.NoError(t, json.Unmarshal([]byte(mustCLI(t, cfg, "alerts", "--json")), &active))
	overflow := alertsOf(active.Alerts, alerting.RuleBufferOverflow)
	require.Len(t, overflow, 1, "active buffer_overflow alerts: %+v", overflow)
	assert.Equal(t, alerting.Active, overflow[0].State)
	assert.Equal(t, alerting.Critical, overflow[0].Severity)
	var all admin.Alerts
	require.NoError(t, json.Unmarshal([]byte(mustCLI(t, cfg, "alerts", "--all", "--json")), &all))
	assert.Len(t, alertsOf(all.Alerts, alerting.RuleBufferOverflow), 1, "buffer_overflow alerts ever raised")

	// What is left: seqs strictly increasing, the new reading newest, hourly means in place.
	rs, err := client.Readings(t.Context(), admin.ReadingsQuery{Param: "conductivity", Limit: 100000})
	require.NoError(t, err)
	require.NotEmpty(t, rs.Readings)
	assert.Equal(t, 999.0, rs.Readings[0].Value, "the reading sent last is the newest")
	assert.Equal(t, status.Buffer.Readings, len(rs.Readings), "every stored reading is a conductivity reading")
	means := 0
	for i, r := range rs.Readings {
		if i > 0 && r.Seq >= rs.Readings[i-1].Seq {
			t.Fatalf("seqs not strictly increasing: %d stored before %d", r.Seq, rs.Readings[i-1].Seq)
		}
		if !slices.Contains(r.Flags, "downsampled") {
			continue
		}
		means++
		assert.Equal(t, "cond-dense", r.Sensor, "a mean of readings that share no hour: %+v", r)
		assert.Equal(t, r.Time.Truncate(time.Hour), r.Time, "a mean stands at the start of its hour: %+v", r)
		assert.True(t, r.Value >= 800 && r.Value <= 806, "mean %v outside the values sent (800–806)", r.Value)
		assert.NotEqual(t, "bad", r.Quality, "a mean of usable readings: %+v", r)
	}
	t.Logf("%d readings left, %d of them hourly means", len(rs.Readings), means)
	assert.Positive(t, means, "no reading flagged downsampled is left")

	// And the agent still answers the technician.
	out := mustCLI(t, cfg, "status")
	assert.Contains(t, out, cfg.Station)
}

// item is one entry of a purehealth/<station>/readings array.
type item struct {
	Sensor string
	Value  float64
	Time   time.Time
}

// publishItems sends items as readings arrays of batch entries, in order, spread over
// devices MQTT clients publishing at once at QoS 1, and requires every PUBACK.
func publishItems(t *testing.T, cfg agentConfig, devices, batch int, items []item) {
	t.Helper()
	payloads := make(chan string)
	go func() {
		defer close(payloads)
		for start := 0; start < len(items); start += batch {
			var b strings.Builder
			b.WriteByte('[')
			for i, it := range items[start:min(start+batch, len(items))] {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `{"param":"conductivity","value":%g,"unit":"uS/cm","timestamp":%q,"sensor":%q}`,
					it.Value, it.Time.Format(time.RFC3339), it.Sensor)
			}
			b.WriteByte(']')
			payloads <- b.String()
		}
	}()
	topic := cfg.Topic("readings")
	errs := make(chan error, devices)
	var wg sync.WaitGroup
	for range devices {
		c := pahotest.Connect(t, cfg.Listen, "e2e", guard)
		wg.Go(func() {
			defer pahotest.Disconnect(c)
			for p := range payloads {
				if err := publishWait(c, topic, p); err != nil {
					errs <- err
					for range payloads { // let the producer finish
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func publishWait(c pahov3.Client, topic, payload string) error {
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(guard) {
		return fmt.Errorf("no PUBACK within %v", guard)
	}
	return tok.Error()
}

func alertsOf(as []alerting.Alert, rule string) []alerting.Alert {
	var out []alerting.Alert
	for _, a := range as {
		if a.Rule == rule {
			out = append(out, a)
		}
	}
	return out
}

package broker

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/testtool"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Mosquitto's own clients publish to the broker and watch its errors topic.
func TestMosquittoClients(t *testing.T) {
	pubPath := testtool.LookPath(t, "mosquitto-clients", "mosquitto_pub")
	subPath := testtool.LookPath(t, "mosquitto-clients", "mosquitto_sub")
	b, sink := startBroker(t, nil)
	host, port, err := net.SplitHostPort(b.Addr().String())
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	sub := exec.CommandContext(ctx, subPath, "-h", host, "-p", port, "-V", "mqttv311",
		"-u", "viewer1", "-P", "viewpass", "-t", errorsTopic, "-q", "1", "-C", "2")
	out, err := sub.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, sub.Start())
	// mosquitto_sub says nothing when subscribed (its -d trace is block-buffered on a pipe):
	// wait for the broker to have the subscription.
	require.Eventually(t, func() bool { return atomic.LoadInt64(&b.srv.Info.Subscriptions) > 0 },
		guard, 10*time.Millisecond, "mosquitto_sub did not subscribe")
	lines := bufio.NewScanner(out)

	publish := func(version, body string) (string, error) {
		cmd := exec.CommandContext(ctx, pubPath, "-h", host, "-p", port, "-V", version,
			"-u", "device1", "-P", "devpass", "-t", phTopic, "-q", "1", "-m", body)
		got, err := cmd.CombinedOutput()
		return string(got), err
	}

	got, err := publish("mqttv311", `{"value": 7.4, "unit": "pH"}`)
	require.NoError(t, err, "mosquitto_pub: %s", got)
	assert.Equal(t, []telemetry.Observation{{Station: station, Sensor: "ph", Param: "ph", Value: 7.4, Unit: "pH",
		Source: telemetry.SourceSensor}}, storedBeforeAck(t, sink))

	got, err = publish("mqttv311", "seven point four")
	require.NoError(t, err, "MQTT 3.1.1 acknowledges a bad payload: %s", got)

	got, err = publish("mqttv5", `{"value": "7.4"}`)
	assert.Contains(t, got, "Payload format invalid", "MQTT 5 carries the reason code (err %v)", err)
	t.Logf("mosquitto_pub over MQTT 5 said %q (exit: %v)", strings.TrimSpace(got), err)

	var reasons []string
	for lines.Scan() {
		line := lines.Text()
		var m ErrorMessage
		require.NoError(t, json.Unmarshal([]byte(line), &m), "errors payload %s", line)
		assert.Equal(t, phTopic, m.Topic)
		reasons = append(reasons, m.Reason)
	}
	require.NoError(t, sub.Wait(), "mosquitto_sub ends after two messages")
	assert.Equal(t, []string{
		`malformed JSON: want an object or a number, got "seven point four"`,
		"value: want a number, got string",
	}, reasons)
	sink.none(t)
}

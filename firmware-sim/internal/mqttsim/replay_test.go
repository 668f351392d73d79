package mqttsim

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/firmware-sim/internal/brokertest"
	"github.com/purehealth/purehealth/shared/telemetry"
)

func recorded(n int) []Recorded {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	out := make([]Recorded, n)
	for i := range out {
		out[i] = Recorded{Param: telemetry.DO, Value: 6 + float64(i)/100, Time: t0.Add(time.Duration(i) * time.Minute), Sensor: "do-0"}
	}
	return out
}

func TestReplayDeliversInOrderAcknowledged(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	for _, protocol := range []int{MQTT311, MQTT5} {
		rep, err := Replay(t.Context(), Config{Broker: b.Addr, Station: "MH-PUNE-001", Protocol: protocol}, recorded(1001), 400, nil)
		require.NoError(t, err)
		assert.Equal(t, int64(1001), rep.Readings)
		assert.Equal(t, int64(3), rep.Messages, "400 + 400 + 201")
	}
	var values []float64
	for _, m := range b.Messages() {
		require.Equal(t, "purehealth/MH-PUNE-001/readings", m.Topic)
		require.Equal(t, byte(1), m.QoS, "acknowledged, whatever the configuration says")
		var batch []struct {
			Param, Unit, Timestamp, Sensor string
			Value                          float64
		}
		require.NoError(t, json.Unmarshal(m.Payload, &batch))
		for _, r := range batch {
			assert.Equal(t, "mg/L", r.Unit, "the parameter's canonical unit")
			values = append(values, r.Value)
		}
	}
	require.Len(t, values, 2002)
	assert.Equal(t, 6.0, values[0])
	assert.Equal(t, 16.0, values[1000], "in the order given")
}

func TestReplayFailures(t *testing.T) {
	refusing := brokertest.Start(t, brokertest.Options{Reject: func(brokertest.Message) byte { return 0x87 }})
	rep, err := Replay(t.Context(), Config{Broker: refusing.Addr, Station: "MH-PUNE-001", Protocol: MQTT5}, recorded(10), 5, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "0 of 10 readings acknowledged")
	assert.Zero(t, rep.Readings)

	// Nobody listens: it waits for the broker until its context ends.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
	defer cancel()
	_, err = Replay(ctx, Config{Broker: closed, Station: "MH-PUNE-001"}, recorded(1), 0, nil)
	require.Error(t, err)
	assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded, "it kept trying until the end")

	_, err = Replay(t.Context(), Config{Broker: "", Station: "MH-PUNE-001"}, recorded(1), 0, nil)
	assert.Error(t, err, "an invalid configuration")
}

package mqttsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/firmware-sim/internal/brokertest"
	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/shared/telemetry"
)

const station = "MH-PUNE-001"

// wirePayload is the contract payload of design §4, decoded strictly: an unknown field or
// a wrong type fails the test.
type wirePayload struct {
	Param     string   `json:"param"`
	Value     *float64 `json:"value"`
	Unit      string   `json:"unit"`
	Timestamp string   `json:"timestamp"`
	Sensor    string   `json:"sensor"`
}

func decodeStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), "payload %s", data)
	require.False(t, dec.More(), "trailing data in %s", data)
}

// checkReading asserts one reading's shape: a value in the physical range, the canonical
// unit, an RFC 3339 UTC timestamp near now, the sensor name.
func checkReading(t *testing.T, p wirePayload, param telemetry.Param, sensor string) time.Time {
	t.Helper()
	info, ok := telemetry.Info(param)
	require.True(t, ok, "param %q", param)
	require.NotNil(t, p.Value, "value present")
	assert.True(t, info.Physical.Contains(*p.Value), "%s value %v physically possible", param, *p.Value)
	assert.Equal(t, info.Unit, p.Unit)
	assert.Equal(t, sensor, p.Sensor)
	ts, err := time.Parse(time.RFC3339Nano, p.Timestamp)
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(p.Timestamp, "Z"), "UTC timestamp %s", p.Timestamp)
	assert.WithinDuration(t, time.Now(), ts, time.Minute)
	return ts
}

func run(t *testing.T, ctx context.Context, cfg Config) (Report, error) {
	t.Helper()
	p, err := New(cfg, nil)
	if err != nil {
		return Report{}, err
	}
	return p.Run(ctx)
}

func TestPublishesContractTopicsAndPayloads(t *testing.T) {
	for _, protocol := range []int{MQTT311, MQTT5} {
		for _, qos := range []byte{0, 1, 2} {
			t.Run(fmt.Sprintf("mqtt%d/qos%d", protocol, qos), func(t *testing.T) {
				b := brokertest.Start(t, brokertest.Options{})
				const sensors, count = 3, 5
				rep, err := run(t, t.Context(), Config{
					Broker: b.Addr, Station: station, Sensors: sensors, Count: count,
					QoS: qos, Protocol: protocol, Rate: 0,
				})
				require.NoError(t, err)

				// QoS 0 publishes are done when written: wait for the broker to read them.
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				require.NoError(t, b.WaitFor(ctx, sensors*count), "report %+v, got %d", rep, len(b.Messages()))
				msgs := b.Messages()
				require.Len(t, msgs, sensors*count)

				params := DefaultParams()
				perClient := map[string][]time.Time{}
				for _, m := range msgs {
					var i int
					_, err := fmt.Sscanf(m.ClientID, station+"-sim-%d", &i)
					require.NoError(t, err, "client id %q", m.ClientID)
					param := params[i%len(params)]
					assert.Equal(t, "purehealth/"+station+"/"+string(param), m.Topic)
					assert.Equal(t, qos, m.QoS)
					assert.Equal(t, byte(protocol), m.Protocol)
					var p wirePayload
					decodeStrict(t, m.Payload, &p)
					assert.Empty(t, p.Param, "no param field on a per-parameter topic")
					ts := checkReading(t, p, param, fmt.Sprintf("%s-%d", param, i))
					perClient[m.ClientID] = append(perClient[m.ClientID], ts)
				}
				require.Len(t, perClient, sensors)
				for id, times := range perClient {
					assert.Len(t, times, count, id)
					for k := 1; k < len(times); k++ {
						assert.False(t, times[k].Before(times[k-1]), "%s: timestamps in publish order", id)
					}
				}

				assert.Equal(t, int64(sensors*count), rep.Sent)
				assert.Equal(t, int64(sensors*count), rep.Readings)
				assert.Zero(t, rep.Failed)
				assert.Equal(t, protocol, rep.Protocol)
				assert.Equal(t, int(qos), rep.QoS)
				if qos == 0 {
					assert.Zero(t, rep.Acked, "nothing is acknowledged at QoS 0")
					assert.Nil(t, rep.LatencyMS)
				} else {
					assert.Equal(t, int64(sensors*count), rep.Acked)
					require.NotNil(t, rep.LatencyMS)
					l := rep.LatencyMS
					assert.True(t, l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max,
						"ordered percentiles %+v", *l)
				}
				assert.Positive(t, rep.RatePerS)
			})
		}
	}
}

func TestBatchPublishesArrays(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	params := []telemetry.Param{telemetry.PH, telemetry.DO, telemetry.Temp}
	rep, err := run(t, t.Context(), Config{
		Broker: b.Addr, Station: station, Sensors: 2, Count: 3, QoS: 1, Params: params,
		Batch: true,
	})
	require.NoError(t, err)
	assert.Equal(t, int64(6), rep.Sent)
	assert.Equal(t, int64(6), rep.Acked)
	assert.Equal(t, int64(18), rep.Readings)
	assert.True(t, rep.Batch)

	msgs := b.Messages()
	require.Len(t, msgs, 6)
	for _, m := range msgs {
		assert.Equal(t, "purehealth/"+station+"/readings", m.Topic)
		var i int
		_, err := fmt.Sscanf(m.ClientID, station+"-sim-%d", &i)
		require.NoError(t, err)
		var arr []wirePayload
		decodeStrict(t, m.Payload, &arr)
		require.Len(t, arr, len(params))
		for k, p := range arr {
			assert.Equal(t, string(params[k]), p.Param)
			checkReading(t, p, params[k], fmt.Sprintf("%s-%d", params[k], i))
		}
	}
}

func TestRatePacesAndSpreadsSensors(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	// 20 messages a second: 3 each take at least two intervals (100 ms).
	start := time.Now()
	rep, err := run(t, t.Context(), Config{Broker: b.Addr, Station: station, Sensors: 2,
		Count: 3, Rate: 20, QoS: 1})
	require.NoError(t, err)
	assert.Equal(t, int64(6), rep.Acked)
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "paced, not a burst")
}

func TestMQTT5RejectionsAreCountedAsRejected(t *testing.T) {
	// A broker that refuses what is not a JSON object, as the agent does with bad payloads.
	b := brokertest.Start(t, brokertest.Options{Reject: func(m brokertest.Message) byte {
		var p wirePayload
		dec := json.NewDecoder(bytes.NewReader(m.Payload))
		dec.DisallowUnknownFields()
		if dec.Decode(&p) != nil || p.Value == nil || p.Unit == "??" {
			return 0x99 // payload format invalid
		}
		return 0
	}})
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			rep, err := run(t, t.Context(), Config{Broker: b.Addr, Station: station, Sensors: 2,
				Count: 60, QoS: qos, Protocol: MQTT5, Fault: device.FaultGarbage})
			require.NoError(t, err)
			assert.Equal(t, int64(120), rep.Sent)
			assert.Positive(t, rep.Garbage)
			assert.Equal(t, rep.Garbage, rep.Rejected, "every garbage payload refused, nothing else")
			assert.Equal(t, rep.Rejected, rep.Failed)
			assert.Equal(t, rep.Sent-rep.Garbage, rep.Acked)
			assert.Equal(t, rep.Sent-rep.Garbage, rep.Readings)
			assert.Contains(t, rep.FirstError, "payload format invalid (reason code 0x99")
		})
	}
}

func TestGarbageReachesTheBroker(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	rep, err := run(t, t.Context(), Config{Broker: b.Addr, Station: station, Count: 90, QoS: 1,
		Fault: device.FaultGarbage})
	require.NoError(t, err)
	invalid := 0
	for _, m := range b.Messages() {
		var p wirePayload
		dec := json.NewDecoder(bytes.NewReader(m.Payload))
		dec.DisallowUnknownFields()
		if dec.Decode(&p) != nil || p.Value == nil || p.Unit != "pH" {
			invalid++
		}
	}
	assert.Equal(t, int(rep.Garbage), invalid)
	assert.Positive(t, invalid)
	assert.Equal(t, int64(90), rep.Acked, "MQTT 3.1.1 acknowledges everything")
}

func TestDropoutsSendNothing(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	rep, err := run(t, t.Context(), Config{Broker: b.Addr, Station: station, Count: 200,
		Rate: 0, QoS: 1, Fault: device.FaultDropout})
	require.NoError(t, err)
	assert.Positive(t, rep.Dropouts)
	assert.Equal(t, int64(200), rep.Sent+rep.Dropouts, "every tick either publishes or drops out")
	assert.Len(t, b.Messages(), int(rep.Sent))
}

func TestReconnectsAndAccountsExactly(t *testing.T) {
	for _, protocol := range []int{MQTT311, MQTT5} {
		t.Run(fmt.Sprintf("mqtt%d", protocol), func(t *testing.T) {
			// Every 7th publish of a connection is answered by a disconnect, not an ack.
			b := brokertest.Start(t, brokertest.Options{Kick: func(_ brokertest.Message, n int) bool {
				return n%7 == 0
			}})
			rep, err := run(t, t.Context(), Config{Broker: b.Addr, Station: station, Count: 30,
				QoS: 1, Protocol: protocol, Rate: 0, Inflight: 1})
			require.NoError(t, err)
			assert.Equal(t, int64(30), rep.Sent)
			assert.Equal(t, rep.Sent, rep.Acked+rep.Failed, "every publish accounted once")
			kicked := 0
			for _, m := range b.Messages() {
				if m.Verdict == brokertest.Kicked {
					kicked++
				}
			}
			assert.Equal(t, 4, kicked, "30 publishes with one in flight: kicked at 7, 14, 21, 28")
			assert.Equal(t, int64(kicked), rep.Failed, "a kicked publish is never acked")
			assert.Equal(t, int64(kicked), rep.Reconnects)
		})
	}
}

func TestInterruptStopsCleanlyWithExactCounts(t *testing.T) {
	for _, protocol := range []int{MQTT311, MQTT5} {
		t.Run(fmt.Sprintf("mqtt%d", protocol), func(t *testing.T) {
			b := brokertest.Start(t, brokertest.Options{})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var (
				rep Report
				err error
				wg  sync.WaitGroup
			)
			wg.Go(func() {
				// Count 0 and rate 0: a load generator that runs until stopped.
				rep, err = run(t, ctx, Config{Broker: b.Addr, Station: station, Sensors: 4,
					QoS: 1, Protocol: protocol, Rate: 0})
			})
			wait, stop := context.WithTimeout(t.Context(), 20*time.Second)
			defer stop()
			require.NoError(t, b.WaitFor(wait, 500))
			cancel()
			wg.Wait()
			require.NoError(t, err, "an interrupt is a normal end")
			assert.GreaterOrEqual(t, rep.Sent, int64(500))
			assert.Equal(t, rep.Sent, rep.Acked+rep.Failed)
			assert.LessOrEqual(t, rep.Acked, int64(len(b.Messages())), "acked only what the broker got")
			assert.Zero(t, rep.Failed, "a healthy broker acks everything within the grace period")
		})
	}
}

func TestStalledBroker(t *testing.T) {
	drop := brokertest.Options{Drop: func(brokertest.Message) bool { return true }}
	for _, protocol := range []int{MQTT311, MQTT5} {
		t.Run(fmt.Sprintf("no acks: the connection counts as dead/mqtt%d", protocol), func(t *testing.T) {
			b := brokertest.Start(t, drop)
			rep, err := run(t, t.Context(), Config{Broker: b.Addr, Station: station, Count: 5,
				QoS: 1, Protocol: protocol, Inflight: 2, AckTimeout: 100 * time.Millisecond})
			require.NoError(t, err)
			assert.Equal(t, int64(5), rep.Sent)
			assert.Zero(t, rep.Acked)
			assert.Equal(t, int64(5), rep.Failed)
			assert.Equal(t, int64(2), rep.Reconnects, "two full windows went unanswered")
			assert.Len(t, b.Messages(), 5)
		})
		t.Run(fmt.Sprintf("interrupted: outstanding publishes fail after the grace period/mqtt%d", protocol), func(t *testing.T) {
			b := brokertest.Start(t, drop)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			type result struct {
				rep Report
				err error
			}
			res := make(chan result, 1)
			go func() {
				rep, err := run(t, ctx, Config{Broker: b.Addr, Station: station, QoS: 2,
					Protocol: protocol, Inflight: 3, AckTimeout: time.Hour, Grace: 50 * time.Millisecond})
				res <- result{rep, err}
			}()
			wait, stop := context.WithTimeout(t.Context(), 20*time.Second)
			defer stop()
			require.NoError(t, b.WaitFor(wait, 3))
			cancel()
			select {
			case r := <-res:
				require.NoError(t, r.err)
				assert.Equal(t, int64(3), r.rep.Sent)
				assert.Equal(t, int64(3), r.rep.Failed)
				assert.Zero(t, r.rep.Acked)
				assert.Nil(t, r.rep.LatencyMS)
			case <-time.After(20 * time.Second):
				require.Fail(t, "the run did not end after the grace period")
			}
		})
	}
}

func TestConnectErrors(t *testing.T) {
	// A port with nothing listening: take one and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := l.Addr().String()
	require.NoError(t, l.Close())

	secured := brokertest.Start(t, brokertest.Options{Users: map[string]string{"probe": "s3cret"}})

	tests := []struct {
		name     string
		cfg      Config
		wantErr  string
		protocol []int
	}{
		{"refused", Config{Broker: closed}, "connect " + closed + ": connection refused", nil},
		{"bad password 3.1.1", Config{Broker: secured.Addr, Username: "probe", Password: "nope"},
			"connect " + secured.Addr + ": refused: not authorized (return code 5)", []int{MQTT311}},
		{"bad password 5", Config{Broker: secured.Addr, Username: "probe", Password: "nope", Protocol: MQTT5},
			"connect " + secured.Addr + `: refused: bad user name or password (reason code 0x86, broker: "bad username or password")`, nil},
	}
	for _, tt := range tests {
		for _, protocol := range []int{MQTT311, MQTT5} {
			if tt.cfg.Protocol != 0 && tt.cfg.Protocol != protocol {
				continue
			}
			if tt.protocol != nil && tt.protocol[0] != protocol {
				continue
			}
			t.Run(fmt.Sprintf("%s/mqtt%d", tt.name, protocol), func(t *testing.T) {
				cfg := tt.cfg
				cfg.Station, cfg.Protocol, cfg.Sensors, cfg.Count = station, protocol, 3, 1
				rep, err := run(t, t.Context(), cfg)
				var ce *ConnectError
				require.ErrorAs(t, err, &ce)
				assert.EqualError(t, err, tt.wantErr)
				assert.Zero(t, rep.Sent)
			})
		}
	}

	t.Run("good password", func(t *testing.T) {
		for _, protocol := range []int{MQTT311, MQTT5} {
			rep, err := run(t, t.Context(), Config{Broker: secured.Addr, Station: station,
				Username: "probe", Password: "s3cret", Count: 2, QoS: 1, Protocol: protocol})
			require.NoError(t, err)
			assert.Equal(t, int64(2), rep.Acked)
		}
	})
}

func TestInflightWindowFollowsReceiveMaximum(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{ReceiveMaximum: 8})
	p, err := New(Config{Broker: b.Addr, Station: station, Protocol: MQTT5}, nil)
	require.NoError(t, err)
	s := p.newSensor(0, time.Now(), &stats{})
	require.NoError(t, s.connect(t.Context()))
	defer s.disconnect()
	assert.Equal(t, 8, cap(s.conn.slots), "the broker's receive maximum")

	p, err = New(Config{Broker: b.Addr, Station: station, Protocol: MQTT5, Inflight: 3}, nil)
	require.NoError(t, err)
	s = p.newSensor(1, time.Now(), &stats{})
	require.NoError(t, s.connect(t.Context()))
	defer s.disconnect()
	assert.Equal(t, 3, cap(s.conn.slots), "a smaller --inflight wins")

	p, err = New(Config{Broker: b.Addr, Station: station}, nil)
	require.NoError(t, err)
	s = p.newSensor(2, time.Now(), &stats{})
	require.NoError(t, s.connect(t.Context()))
	defer s.disconnect()
	assert.Equal(t, defaultInflight311, cap(s.conn.slots), "MQTT 3.1.1 default")
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	_, err := New(Config{Broker: "127.0.0.1:1883"}, nil)
	require.Error(t, err)
	assert.ErrorContains(t, err, "station is required")
	assert.False(t, errors.Is(err, context.Canceled))
}

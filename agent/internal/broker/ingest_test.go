package broker

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/payload"
	"github.com/purehealth/purehealth/shared/telemetry"
)

var (
	phTopic       = payload.Topic(station, "ph")
	readingsTopic = payload.Topic(station, payload.Readings)
	errorsTopic   = payload.Topic(station, LeafErrors)
)

// the IST local time 12:00 in UTC
var noonIST = time.Date(2025, 11, 13, 6, 30, 0, 0, time.UTC)

const (
	phBody       = `{"value": 7.2, "unit": "pH", "timestamp": "2025-11-13T12:00:00"}`
	readingsBody = `[{"param": "do", "value": 6.5, "unit": "mg/L", "sensor": "sonde", "timestamp": 1763015400},
		{"param": "temperature", "value": 77, "unit": "degF"}]`
)

func wantPH() []telemetry.Observation {
	return []telemetry.Observation{{Station: station, Sensor: "ph", Param: "ph", Value: 7.2, Unit: "pH",
		Time: noonIST, Source: telemetry.SourceSensor}}
}

func wantReadings() []telemetry.Observation {
	return []telemetry.Observation{
		{Station: station, Sensor: "sonde", Param: "do", Value: 6.5, Unit: "mg/L", Time: noonIST,
			Source: telemetry.SourceSensor},
		{Station: station, Sensor: "temperature", Param: "temperature", Value: 77, Unit: "degF",
			Source: telemetry.SourceSensor},
	}
}

// storedBeforeAck checks that the batch was in the sink when the acknowledgement arrived.
func storedBeforeAck(t *testing.T, sink *fakeSink) []telemetry.Observation {
	t.Helper()
	select {
	case b := <-sink.got:
		return b
	default:
		t.Fatal("the publish was acknowledged before its readings were stored")
		return nil
	}
}

func TestIngestMQTT3(t *testing.T) {
	b, sink := startBroker(t, nil)
	c := mustConnectV3(t, b, "device1", "devpass")
	for _, qos := range []byte{0, 1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			require.NoError(t, waitToken(t, c.Publish(phTopic, qos, false, phBody)))
			var got []telemetry.Observation
			if qos == 0 {
				got = sink.next(t)
			} else {
				got = storedBeforeAck(t, sink)
			}
			assert.Equal(t, wantPH(), got)

			require.NoError(t, waitToken(t, c.Publish(readingsTopic, qos, false, readingsBody)))
			if qos == 0 {
				got = sink.next(t)
			} else {
				got = storedBeforeAck(t, sink)
			}
			assert.Equal(t, wantReadings(), got)
		})
	}
	s := b.Stats()
	assert.Equal(t, int64(6), s.MessagesReceived)
	assert.Equal(t, int64(9), s.ReadingsAccepted)
	assert.Equal(t, int64(1), s.ClientsConnected)
}

func TestIngestMQTT5(t *testing.T) {
	b, sink := startBroker(t, nil)
	c := mustConnectV5(t, b, "device1", "devpass")
	for _, qos := range []byte{0, 1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			resp, err := c.publish(t, phTopic, qos, phBody)
			require.NoError(t, err)
			assert.Equal(t, byte(0), resp.ReasonCode)
			var got []telemetry.Observation
			if qos == 0 {
				got = sink.next(t)
			} else {
				got = storedBeforeAck(t, sink)
			}
			assert.Equal(t, wantPH(), got)

			resp, err = c.publish(t, readingsTopic, qos, readingsBody)
			require.NoError(t, err)
			assert.Equal(t, byte(0), resp.ReasonCode)
			if qos == 0 {
				got = sink.next(t)
			} else {
				got = storedBeforeAck(t, sink)
			}
			assert.Equal(t, wantReadings(), got)
		})
	}
	t.Run("bare number", func(t *testing.T) {
		_, err := c.publish(t, payload.Topic(station, "turbidity"), 1, " 12.5\n")
		require.NoError(t, err)
		assert.Equal(t, []telemetry.Observation{{Station: station, Sensor: "turbidity", Param: "turbidity",
			Value: 12.5, Source: telemetry.SourceSensor}}, storedBeforeAck(t, sink))
	})
}

// errorReport reads the next message on the errors topic.
func errorReport(t *testing.T, c *v5client) ErrorMessage {
	t.Helper()
	p := c.next(t)
	require.Equal(t, errorsTopic, p.Topic)
	var m ErrorMessage
	require.NoError(t, json.Unmarshal(p.Payload, &m), "errors payload %s", p.Payload)
	assert.WithinDuration(t, time.Now(), m.Time, time.Hour, "the report carries its time")
	return m
}

func TestBadPayloadMQTT5(t *testing.T) {
	b, sink := startBroker(t, nil)
	watcher := mustConnectV5(t, b, "viewer1", "viewpass")
	_, err := watcher.subscribe(t, errorsTopic, 0)
	require.NoError(t, err)
	device := mustConnectV5(t, b, "device1", "devpass")

	tests := []struct {
		name       string
		leaf       string
		qos        byte
		body       string
		wantCode   byte
		wantReason []string // one per error report
		wantStat   string
	}{
		{name: "not JSON", leaf: "ph", qos: 1, body: "seven", wantCode: 0x99,
			wantReason: []string{`malformed JSON: want an object or a number, got "seven"`}, wantStat: ReasonDecode},
		{name: "numeric string at QoS 2", leaf: "ph", qos: 2, body: `{"value": "7.2"}`, wantCode: 0x99,
			wantReason: []string{"value: want a number, got string"}, wantStat: ReasonDecode},
		{name: "unknown parameter in the topic", leaf: "salinity", qos: 1, body: "35", wantCode: 0x90,
			wantReason: []string{`unknown parameter: "salinity"`}, wantStat: ReasonUnknownParam},
		{name: "unit mismatch", leaf: "ph", qos: 1, body: `{"value": 7, "unit": "NTU"}`, wantCode: 0x83,
			wantReason: []string{`unit does not fit parameter: "NTU" is a unit of turbidity, not of ph`},
			wantStat:   ReasonUnitMismatch},
		{name: "readings all bad", leaf: payload.Readings, qos: 1,
			body: `[{"param": "ph"}, {"value": 3}]`, wantCode: 0x99,
			wantReason: []string{"readings[0].value: missing", "readings[1].param: missing"},
			wantStat:   ReasonDecode},
		{name: "escape sequence in a sensor name", leaf: "ph", qos: 1, body: `{"value": 7.2, "sensor": "\u001b[31mph"}`,
			wantCode: 0x99, wantReason: []string{"sensor: contains a control character"}, wantStat: ReasonDecode},
		{name: "NUL in a sensor name", leaf: payload.Readings, qos: 1,
			body: `[{"param": "ph", "value": 7.2, "sensor": "ph\u0000"}]`, wantCode: 0x99,
			wantReason: []string{"readings[0].sensor: contains a control character"}, wantStat: ReasonDecode},
		{name: "readings all refused", leaf: payload.Readings, qos: 2,
			body: `[{"param": "salinity", "value": 35}]`, wantCode: 0x83,
			wantReason: []string{`readings[0]: unknown parameter: "salinity"`}, wantStat: ReasonUnknownParam},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.Stats()
			topic := payload.Topic(station, tt.leaf)
			resp, _ := device.publish(t, topic, tt.qos, tt.body) // paho returns an error for QoS 1 refusals
			require.NotNil(t, resp, "no PUBACK/PUBREC")
			assert.Equal(t, tt.wantCode, resp.ReasonCode, "reason code")
			require.NotNil(t, resp.Properties)
			assert.Contains(t, resp.Properties.ReasonString, tt.wantReason[0])
			for _, want := range tt.wantReason {
				m := errorReport(t, watcher)
				assert.Equal(t, topic, m.Topic)
				assert.Contains(t, m.Reason, want)
				assert.NotEmpty(t, m.Client)
			}
			after := b.Stats()
			assert.Equal(t, before.Rejects[tt.wantStat]+int64(len(tt.wantReason)), after.Rejects[tt.wantStat])
			assert.Equal(t, before.ErrorsPublished+int64(len(tt.wantReason)), after.ErrorsPublished)
			assert.Equal(t, before.ReadingsAccepted, after.ReadingsAccepted)
		})
	}
	// The connection survived every refusal.
	_, err = device.publish(t, phTopic, 1, phBody)
	require.NoError(t, err)
	assert.Equal(t, wantPH(), storedBeforeAck(t, sink))
}

func TestBadPayloadMQTT3(t *testing.T) {
	b, sink := startBroker(t, nil)
	watcher := mustConnectV5(t, b, "admin", "adminpass")
	_, err := watcher.subscribe(t, payload.Topic(station, "#"), 1)
	require.NoError(t, err)
	device := mustConnectV3(t, b, "device1", "devpass")

	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			// Acknowledged: MQTT 3.1.1 cannot say no, and resending would not help.
			require.NoError(t, waitToken(t, device.Publish(phTopic, qos, false, `{"value": true}`)))
			m := errorReport(t, watcher)
			assert.Equal(t, phTopic, m.Topic)
			assert.Equal(t, "value: want a number, got boolean", m.Reason)
			sink.none(t)

			// Not passed on: the subscriber's next message on the topic is the good one
			// published after it on the same connection.
			require.NoError(t, waitToken(t, device.Publish(phTopic, qos, false, phBody)))
			p := watcher.next(t)
			assert.Equal(t, phTopic, p.Topic)
			assert.Equal(t, phBody, string(p.Payload))
			assert.Equal(t, wantPH(), storedBeforeAck(t, sink))
		})
	}
	assert.Equal(t, int64(2), b.Stats().Rejects[ReasonDecode])
}

func TestPartialReadings(t *testing.T) {
	b, sink := startBroker(t, nil)
	watcher := mustConnectV5(t, b, "viewer1", "viewpass")
	_, err := watcher.subscribe(t, errorsTopic, 0)
	require.NoError(t, err)
	device := mustConnectV5(t, b, "device1", "devpass")

	body := `[
		{"param": "ph", "value": 7.0},
		{"param": "do", "value": "6.1"},
		{"param": "salinity", "value": 35},
		{"param": "bod", "value": 2.5, "unit": "mg/L"},
		{"param": "temp", "value": 25, "unit": "NTU"}
	]`
	resp, err := device.publish(t, readingsTopic, 1, body)
	require.NoError(t, err)
	assert.Equal(t, byte(0), resp.ReasonCode, "partly good arrays are acknowledged normally")
	assert.Equal(t, []telemetry.Observation{
		{Station: station, Sensor: "ph", Param: "ph", Value: 7, Source: telemetry.SourceSensor},
		{Station: station, Sensor: "bod", Param: "bod", Value: 2.5, Unit: "mg/L", Source: telemetry.SourceSensor},
	}, storedBeforeAck(t, sink))

	var reasons []string
	for range 3 {
		m := errorReport(t, watcher)
		assert.Equal(t, readingsTopic, m.Topic)
		reasons = append(reasons, m.Reason)
	}
	assert.Equal(t, []string{
		"readings[1].value: want a number, got string",
		`readings[2]: unknown parameter: "salinity"`,
		`readings[4]: unit does not fit parameter: "NTU" is a unit of turbidity, not of temp (want degC)`,
	}, reasons)
	s := b.Stats()
	assert.Equal(t, int64(2), s.ReadingsAccepted)
	assert.Equal(t, int64(1), s.Rejects[ReasonDecode])
	assert.Equal(t, int64(1), s.Rejects[ReasonUnknownParam])
	assert.Equal(t, int64(1), s.Rejects[ReasonUnitMismatch])
}

// The store-failure tests rely on a client's publishes being answered in order: an
// acknowledgement for the second publish that arrives with none for the first proves the
// first got none. The second is sent once the sink has been called for the first, which a
// QoS 1 publish's lane would otherwise store together with it, in the call that fails.

func TestStoreFailureMQTT3(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			b, sink := startBroker(t, nil)
			watcher := mustConnectV5(t, b, "viewer1", "viewpass")
			_, err := watcher.subscribe(t, errorsTopic, 0)
			require.NoError(t, err)
			device := mustConnectV3(t, b, "device1", "devpass")

			sink.failNext(1)
			first := device.Publish(phTopic, qos, false, `{"value": 6.9}`)
			waitEntered(t, sink)
			second := device.Publish(phTopic, qos, false, phBody)
			require.NoError(t, waitToken(t, second))
			select {
			case <-first.Done():
				t.Fatal("the publish whose store failed was acknowledged")
			default:
			}
			assert.Equal(t, wantPH(), storedBeforeAck(t, sink), "only the second publish is stored")
			assert.Equal(t, 2, sink.Calls())

			m := errorReport(t, watcher)
			assert.Equal(t, phTopic, m.Topic)
			assert.Contains(t, m.Reason, "not stored")
			assert.Equal(t, int64(1), b.Stats().Rejects[ReasonStoreFailure])
		})
	}
}

// rawV5 is a bare MQTT 5 connection, for checking exactly which packets the broker sends.
type rawV5 struct {
	t    *testing.T
	conn net.Conn
}

func dialRawV5(t *testing.T, b *Broker, user, pass string) *rawV5 {
	t.Helper()
	conn, err := net.Dial("tcp", b.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(guard)))
	r := &rawV5{t: t, conn: conn}
	r.send(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, CleanStart: true, KeepAlive: 30,
		ClientID: clientID("raw"), Username: user, UsernameFlag: true, Password: []byte(pass),
		PasswordFlag: true, Properties: &packets.Properties{}})
	ca, ok := r.read().Content.(*packets.Connack)
	require.True(t, ok, "want CONNACK")
	require.Equal(t, byte(0), ca.ReasonCode)
	return r
}

func (r *rawV5) send(p io.WriterTo) {
	r.t.Helper()
	_, err := p.WriteTo(r.conn)
	require.NoError(r.t, err)
}

func (r *rawV5) read() *packets.ControlPacket {
	r.t.Helper()
	p, err := packets.ReadPacket(r.conn)
	require.NoError(r.t, err)
	return p
}

func TestStoreFailureMQTT5(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			b, sink := startBroker(t, nil)
			r := dialRawV5(t, b, "device1", "devpass")
			sink.failNext(1)
			r.send(&packets.Publish{Topic: phTopic, QoS: qos, PacketID: 1, Payload: []byte(`{"value": 6.9}`),
				Properties: &packets.Properties{}})
			waitEntered(t, sink)
			r.send(&packets.Publish{Topic: phTopic, QoS: qos, PacketID: 2, Payload: []byte(phBody),
				Properties: &packets.Properties{}})

			p := r.read()
			switch qos {
			case 1:
				ack, ok := p.Content.(*packets.Puback)
				require.True(t, ok, "want PUBACK, got %v", p)
				assert.Equal(t, uint16(2), ack.PacketID, "the failed publish must get no PUBACK")
				assert.Equal(t, byte(0), ack.ReasonCode)
			case 2:
				rec, ok := p.Content.(*packets.Pubrec)
				require.True(t, ok, "want PUBREC, got %v", p)
				assert.Equal(t, uint16(2), rec.PacketID, "the failed publish must get no PUBREC")
				assert.Equal(t, byte(0), rec.ReasonCode)
				r.send(&packets.Pubrel{PacketID: 2, Properties: &packets.Properties{}})
				comp, ok := r.read().Content.(*packets.Pubcomp)
				require.True(t, ok, "want PUBCOMP")
				assert.Equal(t, uint16(2), comp.PacketID)
			}
			assert.Equal(t, wantPH(), storedBeforeAck(t, sink))
			assert.Equal(t, int64(1), b.Stats().Rejects[ReasonStoreFailure])
		})
	}
}

// A device that publishes the same bad payload at QoS 0 is neither answered nor disconnected.
func TestBadPayloadQoS0(t *testing.T) {
	b, sink := startBroker(t, nil)
	device := mustConnectV3(t, b, "device1", "devpass")
	require.NoError(t, waitToken(t, device.Publish(phTopic, 0, false, "[]")))
	require.NoError(t, waitToken(t, device.Publish(phTopic, 1, false, phBody)))
	assert.Equal(t, wantPH(), storedBeforeAck(t, sink))
	assert.Equal(t, int64(1), b.Stats().Rejects[ReasonDecode])
}

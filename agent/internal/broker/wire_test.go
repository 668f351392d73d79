package broker

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/payload"
)

// An MQTT 5 publish that carries User Properties is acknowledged with success (0x00, or
// no reason code at all), never with 0x01 "Granted QoS 1", a SUBACK code that a PUBACK may
// not carry [MQTT-3.4.2-1]: strict clients disconnect on it and resend what is stored.
func TestAckOfPublishWithUserPropertiesMQTT5(t *testing.T) {
	b, sink := startBroker(t, nil)
	tests := []struct {
		name, user, pass, topic string
		qos                     byte
		stored                  bool
	}{
		{"reading QoS 1", "device1", "devpass", phTopic, 1, true},
		{"reading QoS 2", "device1", "devpass", phTopic, 2, true},
		{"other topic QoS 1", "gateway", "gwpass", "devices/gateway/status", 1, false},
		{"other topic QoS 2", "gateway", "gwpass", "devices/gateway/status", 2, false},
		{"another station's topic, admin", "admin", "adminpass", payload.Topic("OTHER", "ph"), 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, b, tt.user, tt.pass, true)
			c.publish(tt.topic, tt.qos, phBody, "fw", "1.2", "site", "bank")
			ack := c.read()
			want := byte(4) // PUBACK
			if tt.qos == 2 {
				want = 5 // PUBREC
			}
			require.Equal(t, want, ack.kind(), "got %s", ack.bytes())
			require.GreaterOrEqual(t, len(ack.body), 2, "got %s", ack.bytes())
			assert.Equal(t, []byte{0, 1}, ack.body[:2], "packet id")
			assert.Equal(t, byte(0), pubackReason(ack), "reason code of %s", ack.bytes())
			if tt.stored {
				assert.Equal(t, wantPH(), storedBeforeAck(t, sink))
			}
			c.alive()
		})
	}
}

// MQTT 3.1.1 has no DISCONNECT from the server [MQTT-3.3.5-2]: a publish the client may not
// make is acknowledged as the QoS requires and dropped (counted and logged), and the
// connection stays up, so a device with a persistent session is not made to resend the
// same refused message on every reconnect. MQTT 5 clients get the reason code 0x87.
func TestPublishRefusedWithoutDisconnect(t *testing.T) {
	b, sink := startBroker(t, nil)
	topics := []struct{ name, topic string }{
		{"another station's reading", payload.Topic("OTHER", "ph")},
		{"the agent's WQI output", payload.Topic(station, LeafWQI)},
		{"outside purehealth", "devices/x"},
		{"a $SYS topic", "$SYS/broker/uptime"},
	}
	for _, tp := range topics {
		for _, qos := range []byte{1, 2} {
			t.Run(tp.name, func(t *testing.T) {
				before := b.Stats().Rejects[ReasonACL]

				v3 := dialRaw(t, b, "device1", "devpass", false)
				v3.publish(tp.topic, qos, phBody)
				ack := v3.read()
				require.NotEqual(t, byte(14), ack.kind(), "a DISCONNECT packet: %s", ack.bytes())
				if qos == 1 {
					assert.Equal(t, rawPacket{header: 0x40, body: []byte{0, 1}}, ack, "PUBACK, got %s", ack.bytes())
				} else {
					assert.Equal(t, rawPacket{header: 0x50, body: []byte{0, 1}}, ack, "PUBREC, got %s", ack.bytes())
				}
				v3.alive()

				v5 := dialRaw(t, b, "device1", "devpass", true)
				v5.publish(tp.topic, qos, phBody, "fw", "1.2")
				ack = v5.read()
				assert.Equal(t, 4+qos-1, ack.kind(), "PUBACK or PUBREC, got %s", ack.bytes())
				assert.Equal(t, byte(0x87), pubackReason(ack), "got %s", ack.bytes())
				v5.alive()

				assert.Equal(t, before+2, b.Stats().Rejects[ReasonACL])
			})
		}
	}
	// A reading after all those refusals is stored: the only one.
	c := dialRaw(t, b, "device1", "devpass", false)
	c.publish(phTopic, 1, phBody)
	assert.Equal(t, rawPacket{header: 0x40, body: []byte{0, 1}}, c.read())
	assert.Equal(t, wantPH(), storedBeforeAck(t, sink))
	sink.none(t)
}

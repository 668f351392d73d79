package broker

import (
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The MQTT flows field devices depend on, walked with real clients (Eclipse Paho for MQTT
// 3.1.1 and 5) and with raw bytes where the clients hide the wire. Reason codes of
// refusals are in access_test.go (CONNACK, SUBACK, PUBACK 0x87), ingest_test.go (PUBACK
// 0x99 and 0x90 for bad payloads and parameters) and wire_test.go (acks with User
// Properties, refusals over MQTT 3.1.1).

// QoS 2 over the wire: PUBLISH, PUBREC, PUBREL, PUBCOMP, with the reading stored once,
// before the PUBREC.
func TestConformanceQoS2Handshake(t *testing.T) {
	for _, v5 := range []bool{false, true} {
		t.Run(map[bool]string{false: "mqtt3", true: "mqtt5"}[v5], func(t *testing.T) {
			b, sink := startBroker(t, nil)
			c := dialRaw(t, b, "device1", "devpass", v5)
			c.publish(phTopic, 2, phBody)
			rec := c.read()
			require.Equal(t, byte(5), rec.kind(), "PUBREC, got %s", rec.bytes())
			assert.Equal(t, []byte{0, 1}, rec.body[:2])
			assert.Equal(t, byte(0), pubackReason(rec))
			assert.Equal(t, wantPH(), storedBeforeAck(t, sink), "stored before PUBREC")

			c.send([]byte{0x62, 2, 0, 1}) // PUBREL
			comp := c.read()
			require.Equal(t, byte(7), comp.kind(), "PUBCOMP, got %s", comp.bytes())
			assert.Equal(t, []byte{0, 1}, comp.body[:2])
			assert.Equal(t, byte(0), pubackReason(comp))
			c.alive()
			sink.none(t)
		})
	}
}

// QoS 1 with both clients: the ack arrives after the reading is stored.
func TestConformanceQoS1Clients(t *testing.T) {
	b, sink := startBroker(t, nil)
	v3 := mustConnectV3(t, b, "device1", "devpass")
	require.NoError(t, waitToken(t, v3.Publish(phTopic, 1, false, phBody)))
	assert.Equal(t, wantPH(), storedBeforeAck(t, sink))

	v5 := mustConnectV5(t, b, "device1", "devpass")
	resp, err := v5.publish(t, phTopic, 1, phBody)
	require.NoError(t, err)
	assert.Equal(t, byte(0), resp.ReasonCode)
	assert.Equal(t, wantPH(), storedBeforeAck(t, sink))
}

// A retained message reaches a subscriber that comes later; an empty retained payload
// clears it.
func TestConformanceRetained(t *testing.T) {
	b, _ := startBroker(t, nil)
	pub := mustConnectV5(t, b, "gateway", "gwpass")
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	_, err := pub.Publish(ctx, &paho.Publish{Topic: "devices/gateway/state", QoS: 1, Retain: true, Payload: []byte("up")})
	require.NoError(t, err)

	sub := mustConnectV5(t, b, "gateway", "gwpass")
	_, err = sub.subscribe(t, "devices/gateway/#", 1)
	require.NoError(t, err)
	got := sub.next(t)
	assert.Equal(t, "devices/gateway/state", got.Topic)
	assert.Equal(t, "up", string(got.Payload))
	assert.True(t, got.Retain, "delivered as retained to a new subscription")

	v3 := mustConnectV3(t, b, "gateway", "gwpass")
	retained := make(chan pahov3.Message, 4)
	require.NoError(t, waitToken(t, v3.Subscribe("devices/gateway/state", 1, func(_ pahov3.Client, m pahov3.Message) { retained <- m })))
	m := recv(t, retained)
	assert.Equal(t, "up", string(m.Payload()))
	assert.True(t, m.Retained())

	_, err = pub.Publish(ctx, &paho.Publish{Topic: "devices/gateway/state", QoS: 1, Retain: true, Payload: nil})
	require.NoError(t, err)
	late := mustConnectV5(t, b, "gateway", "gwpass")
	_, err = late.subscribe(t, "devices/gateway/#", 1)
	require.NoError(t, err)
	_, err = pub.publish(t, "devices/gateway/marker", 1, "m")
	require.NoError(t, err)
	// The clearing publish itself may reach the new subscription live (mochi delivers it
	// after the PUBACK); the cleared message must not.
	for m := late.next(t); m.Topic != "devices/gateway/marker"; m = late.next(t) {
		assert.Empty(t, m.Payload, "the cleared retained message is not delivered")
		assert.False(t, m.Retain)
	}
}

// A Will is published when a client goes away without DISCONNECT, after its delay
// (MQTT 5), and not when it disconnects cleanly.
func TestConformanceWill(t *testing.T) {
	b, _ := startBroker(t, nil)
	sub := mustConnectV5(t, b, "gateway", "gwpass")
	_, err := sub.subscribe(t, "devices/gateway/#", 1)
	require.NoError(t, err)

	// Raw CONNECT with a Will and a Will Delay Interval of 1 s, then the socket is closed.
	conn, err := net.Dial("tcp", b.Addr().String())
	require.NoError(t, err)
	c := &rawConn{t: t, conn: conn, v5: true}
	c.r = newReader(conn)
	body := appendString(nil, "MQTT")
	body = append(body, 5, 0xC2|0x04|0x08, 0, 30, 0) // will flag, will QoS 1
	body = appendString(body, clientID("will"))
	willProps := binary.BigEndian.AppendUint32([]byte{0x18}, 1) // Will Delay Interval
	body = append(appendVarint(body, len(willProps)), willProps...)
	body = appendString(body, "devices/gateway/status")
	body = appendString(body, "offline")
	body = appendString(body, "gateway")
	body = appendString(body, "gwpass")
	c.send(packet(0x10, body))
	require.Equal(t, byte(0), c.read().body[1], "CONNACK")
	require.NoError(t, conn.Close())

	will := sub.next(t)
	assert.Equal(t, "devices/gateway/status", will.Topic)
	assert.Equal(t, "offline", string(will.Payload))

	// A clean DISCONNECT discards the Will.
	clean := mustConnectV5(t, b, "gateway", "gwpass", func(cp *paho.Connect) {
		cp.WillMessage = &paho.WillMessage{Topic: "devices/gateway/status", QoS: 1, Payload: []byte("gone")}
	})
	require.NoError(t, clean.Disconnect(&paho.Disconnect{ReasonCode: 0}))
	<-clean.Done()
	_, err = sub.publish(t, "devices/gateway/marker", 1, "m")
	require.NoError(t, err)
	assert.Equal(t, "devices/gateway/marker", sub.next(t).Topic, "no Will after a clean disconnect")
}

// A persistent session keeps its subscription and the QoS 1 messages that arrived while
// the client was away (MQTT 5 session expiry; MQTT 3.1.1 clean session off).
func TestConformanceSessionResume(t *testing.T) {
	b, _ := startBroker(t, nil)
	pub := mustConnectV5(t, b, "gateway", "gwpass")
	expiry := uint32(60)

	t.Run("mqtt5", func(t *testing.T) {
		id := clientID("persist")
		persistent := func(cp *paho.Connect) {
			cp.ClientID, cp.CleanStart = id, false
			cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &expiry}
		}
		first := mustConnectV5(t, b, "gateway", "gwpass", persistent)
		_, err := first.subscribe(t, "devices/gateway/q5", 1)
		require.NoError(t, err)
		require.NoError(t, first.Disconnect(&paho.Disconnect{ReasonCode: 0}))
		<-first.Done()

		_, err = pub.publish(t, "devices/gateway/q5", 1, "while away")
		require.NoError(t, err)

		again, ack, err := connectV5(t, b, "gateway", "gwpass", persistent)
		require.NoError(t, err)
		assert.True(t, ack.SessionPresent)
		m := again.next(t)
		assert.Equal(t, "while away", string(m.Payload))
	})

	t.Run("mqtt3", func(t *testing.T) {
		id := clientID("persist3")
		got := make(chan string, 4)
		persistent := func(o *pahov3.ClientOptions) {
			o.SetClientID(id).SetCleanSession(false).SetDefaultPublishHandler(func(_ pahov3.Client, m pahov3.Message) {
				got <- string(m.Payload())
			})
		}
		first := mustConnectV3(t, b, "gateway", "gwpass", persistent)
		require.NoError(t, waitToken(t, first.Subscribe("devices/gateway/q3", 1, nil)))
		first.Disconnect(50)

		_, err := pub.publish(t, "devices/gateway/q3", 1, "while away")
		require.NoError(t, err)

		again := mustConnectV3(t, b, "gateway", "gwpass", persistent)
		assert.True(t, again.IsConnectionOpen())
		assert.Equal(t, "while away", recv(t, got))
	})
}

// A client silent for one and a half keepalives is disconnected [MQTT-3.1.2-24]; one that
// pings is not.
func TestConformanceKeepalive(t *testing.T) {
	b, _ := startBroker(t, nil)
	conn, err := net.Dial("tcp", b.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	c := &rawConn{t: t, conn: conn, r: newReader(conn)}
	body := appendString(nil, "MQTT")
	body = append(body, 4, 0xC2, 0, 1) // keepalive 1 s
	body = appendString(body, clientID("silent"))
	body = appendString(body, "device1")
	body = appendString(body, "devpass")
	c.send(packet(0x10, body))
	require.Equal(t, byte(0), c.read().body[1], "CONNACK")
	c.alive()
	_, err = c.next()
	assert.Error(t, err, "the broker closed the silent connection")
}

// User Properties of a publish reach MQTT 5 subscribers unchanged.
func TestConformanceUserPropertiesForwarded(t *testing.T) {
	b, _ := startBroker(t, nil)
	sub := mustConnectV5(t, b, "gateway", "gwpass")
	_, err := sub.subscribe(t, "devices/gateway/#", 1)
	require.NoError(t, err)
	c := dialRaw(t, b, "gateway", "gwpass", true)
	c.publish("devices/gateway/props", 1, "x", "fw", "1.2", "site", "bank")
	assert.Equal(t, byte(0), pubackReason(c.read()))
	m := sub.next(t)
	require.NotNil(t, m.Properties)
	assert.Equal(t, paho.UserProperties{{Key: "fw", Value: "1.2"}, {Key: "site", Value: "bank"}}, m.Properties.User)
}

// recv returns the next value of ch, failing the test if none comes within guard.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatal("nothing received")
		var zero T
		return zero
	}
}

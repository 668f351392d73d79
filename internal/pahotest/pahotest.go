// Package pahotest connects MQTT 3.1.1 clients (Eclipse Paho) for tests that publish to
// a running broker as a device would.
package pahotest

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// clientSeq numbers the clients of the test binary, so that no two share an id.
var clientSeq atomic.Int64

// Connect connects a client to addr (host:port) with a clean session and no automatic
// reconnection, so that a lost connection completes every pending publish token with an
// error. Its client id is prefix-N, unique in the test binary. timeout bounds the connect
// and every write; t fails if the broker refuses or does not answer. The client is
// disconnected when the test ends.
func Connect(t testing.TB, addr, prefix string, timeout time.Duration) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(fmt.Sprintf("%s-%d", prefix, clientSeq.Add(1))).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(timeout).
		SetWriteTimeout(timeout).
		SetKeepAlive(time.Minute)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(timeout) {
		t.Fatalf("MQTT connect to %s did not finish within %v", addr, timeout)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("MQTT connect to %s: %v", addr, err)
	}
	t.Cleanup(func() { Disconnect(c) })
	return c
}

// Disconnect ends c's connection if it still has one. It may be called more than once.
func Disconnect(c paho.Client) {
	if c.IsConnectionOpen() {
		c.Disconnect(100)
	}
}

// PublishAcked publishes payload to topic at QoS 1 and fails t unless the broker
// acknowledges it (PUBACK) within timeout.
func PublishAcked(t testing.TB, c paho.Client, topic, payload string, timeout time.Duration) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(timeout) {
		t.Fatalf("no PUBACK for %s %s within %v", topic, payload, timeout)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish %s %s: %v", topic, payload, err)
	}
}

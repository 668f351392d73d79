package pahotest

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const guard = 20 * time.Second

// broker runs an anonymous mochi broker on 127.0.0.1 and sends what it receives on topic
// to the returned channel.
func broker(t *testing.T, topic string) (string, <-chan string) {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, srv.AddHook(new(allowAll), nil))
	l := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	require.NoError(t, srv.AddListener(l))
	require.NoError(t, srv.Serve())
	t.Cleanup(func() { assert.NoError(t, srv.Close()) })
	got := make(chan string, 16)
	require.NoError(t, srv.Subscribe(topic, 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		got <- pk.TopicName + " " + string(pk.Payload)
	}))
	return l.Address(), got
}

// allowAll lets every client connect and publish.
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }

func (*allowAll) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func TestConnectAndPublish(t *testing.T) {
	addr, got := broker(t, "purehealth/#")
	c := Connect(t, addr, "pt", guard)
	assert.True(t, c.IsConnectionOpen())
	r := c.OptionsReader()
	assert.Regexp(t, `^pt-\d+$`, r.ClientID())
	assert.False(t, r.AutoReconnect(), "a lost connection must fail pending publishes")

	PublishAcked(t, c, "purehealth/MH-PUNE-001/ph", "7.2", guard)
	select {
	case m := <-got:
		assert.Equal(t, "purehealth/MH-PUNE-001/ph 7.2", m)
	case <-time.After(guard):
		t.Fatal("the broker received nothing")
	}

	other := Connect(t, addr, "pt", guard)
	otherOpts := other.OptionsReader()
	assert.NotEqual(t, r.ClientID(), otherOpts.ClientID(), "client ids are unique")

	Disconnect(c)
	assert.False(t, c.IsConnectionOpen())
	Disconnect(c) // and again, as the cleanup will
}

package broker

import (
	"testing"

	paho "github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/payload"
)

func TestCovers(t *testing.T) {
	tests := []struct {
		allowed, filter string
		want            bool
	}{
		{"purehealth/ST/#", "purehealth/ST/#", true},
		{"purehealth/ST/#", "purehealth/ST/ph", true},
		{"purehealth/ST/#", "purehealth/ST/+", true},
		{"purehealth/ST/#", "purehealth/ST", true}, // "a/#" matches "a" too
		{"purehealth/ST/#", "purehealth/ST/a/b/c", true},
		{"purehealth/ST/#", "purehealth/#", false},
		{"purehealth/ST/#", "purehealth/+/ph", false},
		{"purehealth/ST/#", "purehealth/OTHER/ph", false},
		{"purehealth/ST/#", "#", false},
		{"purehealth/ST/#", "+/ST/ph", false},
		{"purehealth/ST/#", "purehealth", false},
		{"purehealth/+/ph", "purehealth/ST/ph", true},
		{"purehealth/+/ph", "purehealth/+/ph", true},
		{"purehealth/+/ph", "purehealth/#", false},
		{"purehealth/+/ph", "purehealth/ST/ph/x", false},
		{"purehealth/+/ph", "purehealth/ST", false},
		{"a/b", "a/b", true},
		{"a/b", "a/+", false},
		{"a/b", "a/b/c", false},
		{"#", "anything/at/all", true},
		{"#", "$SYS/broker/uptime", false},
		{"+/broker/uptime", "$SYS/broker/uptime", false},
		{"$SYS/#", "$SYS/broker/uptime", true},
	}
	for _, tt := range tests {
		t.Run(tt.allowed+" ⊇ "+tt.filter, func(t *testing.T) {
			assert.Equal(t, tt.want, covers(tt.allowed, tt.filter))
		})
	}
}

func TestACLRules(t *testing.T) {
	a, err := newAccess(station, testUsers(), true)
	require.NoError(t, err)
	acct := func(name string) *account {
		if name == "" {
			return a.anonymous
		}
		return a.byName[name]
	}
	own := func(leaf string) string { return payload.Topic(station, leaf) }
	tests := []struct {
		user    string
		publish bool
		topic   string
		want    bool
	}{
		{"device1", true, own("ph"), true},
		{"device1", true, own("readings"), true},
		{"", true, own("do"), true}, // anonymous is a device
		{"device1", true, payload.Topic("OTHER", "ph"), false},
		{"device1", true, own("wqi"), false},
		{"device1", true, own("alerts"), false},
		{"device1", true, own("status"), false},
		{"device1", true, own("errors"), false},
		{"device1", true, own("ph/extra"), false},
		{"device1", true, "devices/gateway/status", false},
		{"device1", true, "$SYS/broker/uptime", false},
		{"device1", true, "", false},
		{"viewer1", true, own("ph"), false},
		{"admin", true, own("ph"), true},
		{"admin", true, payload.Topic("OTHER", "ph"), true},
		{"admin", true, own("wqi"), false},
		{"admin", true, own("alerts/sub"), false},
		{"admin", true, "$SYS/broker/uptime", false},
		{"gateway", true, "devices/gateway/status", true},
		{"gateway", true, "devices/other/status", false},

		{"device1", false, own("#"), true},
		{"device1", false, own("+"), true},
		{"device1", false, own("errors"), true},
		{"device1", false, "#", false},
		{"device1", false, "purehealth/#", false},
		{"device1", false, "purehealth/+/ph", false},
		{"device1", false, payload.Topic("OTHER", "#"), false},
		{"device1", false, "$SYS/#", false},
		{"device1", false, "$share/g/" + own("#"), true},
		{"device1", false, "$share/g/#", false},
		{"device1", false, "$share/g", false},
		{"viewer1", false, own("wqi"), true},
		{"viewer1", false, "devices/#", false},
		{"gateway", false, "devices/#", true},
		{"gateway", false, "devices/+/status", true},
		{"gateway", false, "#", false},
		{"admin", false, "#", true},
		{"admin", false, "$SYS/#", true},
	}
	for _, tt := range tests {
		verb := "subscribe"
		if tt.publish {
			verb = "publish"
		}
		t.Run(tt.user+" "+verb+" "+tt.topic, func(t *testing.T) {
			var got bool
			if tt.publish {
				got = a.canPublish(acct(tt.user), tt.topic)
			} else {
				got = a.canSubscribe(acct(tt.user), tt.topic)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// subscribeV3 subscribes to one filter and returns the SUBACK return code.
func subscribeV3(t *testing.T, c pahov3.Client, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, nil)
	require.NoError(t, waitToken(t, tok))
	result := tok.(*pahov3.SubscribeToken).Result() // keyed by the filter without "$share/<group>/"
	require.Len(t, result, 1)
	for _, code := range result {
		return code
	}
	return 0
}

func TestConnectRefused(t *testing.T) {
	tests := []struct {
		name       string
		user, pass string
		clientID   string
		willTopic  string
		wantV3     byte // CONNACK return code
		wantV5     byte // CONNACK reason code
		wantReason string
	}{
		{name: "wrong password", user: "device1", pass: "nope", wantV3: 4, wantV5: 0x86, wantReason: ReasonAuth},
		{name: "unknown user", user: "mallory", pass: "devpass", wantV3: 4, wantV5: 0x86, wantReason: ReasonAuth},
		{name: "anonymous not allowed", wantV3: 5, wantV5: 0x87, wantReason: ReasonAuth},
		{name: "will on another station", user: "device1", pass: "devpass",
			willTopic: payload.Topic("OTHER", "ph"), wantV3: 5, wantV5: 0x87, wantReason: ReasonACL},
		{name: "will on a reading topic", user: "device1", pass: "devpass",
			willTopic: payload.Topic(station, "ph"), wantV3: 5, wantV5: 0x87, wantReason: ReasonACL},
		{name: "will on an output", user: "admin", pass: "adminpass",
			willTopic: payload.Topic(station, LeafAlerts), wantV3: 5, wantV5: 0x87, wantReason: ReasonACL},
		{name: "will on $SYS", user: "admin", pass: "adminpass",
			willTopic: "$SYS/broker/uptime", wantV3: 5, wantV5: 0x87, wantReason: ReasonACL},
		{name: "viewer will", user: "viewer1", pass: "viewpass",
			willTopic: "devices/gateway/status", wantV3: 5, wantV5: 0x87, wantReason: ReasonACL},
		{name: "the agent's inline client id", user: "device1", pass: "devpass", clientID: "inline",
			wantV3: 2, wantV5: 0x85, wantReason: ReasonACL},
	}
	b, sink := startBroker(t, nil)
	watcher := mustConnectV5(t, b, "admin", "adminpass")
	_, err := watcher.subscribe(t, "#", 1)
	require.NoError(t, err)

	for _, tt := range tests {
		t.Run(tt.name+"/mqtt3", func(t *testing.T) {
			before := b.Stats().Rejects[tt.wantReason]
			_, code, err := connectV3(t, b, tt.user, tt.pass, func(o *pahov3.ClientOptions) {
				if tt.clientID != "" {
					o.SetClientID(tt.clientID)
				}
				if tt.willTopic != "" {
					o.SetWill(tt.willTopic, "7", 1, false)
				}
			})
			require.Error(t, err)
			assert.Equal(t, tt.wantV3, code)
			assert.Equal(t, before+1, b.Stats().Rejects[tt.wantReason])
		})
		t.Run(tt.name+"/mqtt5", func(t *testing.T) {
			before := b.Stats().Rejects[tt.wantReason]
			_, ca, err := connectV5(t, b, tt.user, tt.pass, func(c *paho.Connect) {
				if tt.clientID != "" {
					c.ClientID = tt.clientID
				}
				if tt.willTopic != "" {
					c.WillMessage = &paho.WillMessage{Topic: tt.willTopic, Payload: []byte("7"), QoS: 1}
				}
			})
			require.Error(t, err)
			require.NotNil(t, ca, "want a CONNACK saying why")
			assert.Equal(t, tt.wantV5, ca.ReasonCode)
			assert.Equal(t, before+1, b.Stats().Rejects[tt.wantReason])
		})
	}
	// No Will was ever delivered: the next message the watcher sees is this one.
	require.NoError(t, b.Publish(payload.Topic(station, LeafStatus), []byte("{}"), false, 0))
	assert.Equal(t, payload.Topic(station, LeafStatus), watcher.next(t).Topic)
	sink.none(t)
	assert.Equal(t, int64(1), b.Stats().ClientsConnected, "only the watcher is connected")
}

func TestConnectAllowed(t *testing.T) {
	t.Run("anonymous device when allowed", func(t *testing.T) {
		b, sink := startBroker(t, func(o *Options) { o.AllowAnonymous = true })
		c := mustConnectV3(t, b, "", "")
		require.NoError(t, waitToken(t, c.Publish(phTopic, 1, false, phBody)))
		assert.Equal(t, wantPH(), storedBeforeAck(t, sink))
		assert.Equal(t, byte(0x80), subscribeV3(t, c, "#"), "anonymous is only a device")
	})
	t.Run("will on a granted topic", func(t *testing.T) {
		b, _ := startBroker(t, nil)
		watcher := mustConnectV5(t, b, "gateway", "gwpass")
		_, err := watcher.subscribe(t, "devices/#", 0)
		require.NoError(t, err)
		conn, _, err := connectV5(t, b, "gateway", "gwpass", func(c *paho.Connect) {
			c.WillMessage = &paho.WillMessage{Topic: "devices/gateway/status", Payload: []byte("offline")}
		})
		require.NoError(t, err)
		conn.TerminateConnectionForTest() // goes away without DISCONNECT: the Will is sent
		p := watcher.next(t)
		assert.Equal(t, "devices/gateway/status", p.Topic)
		assert.Equal(t, "offline", string(p.Payload))
	})
}

func TestPublishDenied(t *testing.T) {
	b, sink := startBroker(t, nil)
	device := mustConnectV5(t, b, "device1", "devpass")
	viewer := mustConnectV5(t, b, "viewer1", "viewpass")
	admin := mustConnectV5(t, b, "admin", "adminpass")
	tests := []struct {
		name   string
		client *v5client
		topic  string
	}{
		{"device to another station", device, payload.Topic("OTHER", "ph")},
		{"device to the WQI output", device, payload.Topic(station, LeafWQI)},
		{"device to the errors output", device, payload.Topic(station, LeafErrors)},
		{"device outside purehealth", device, "devices/x"},
		{"viewer to a reading topic", viewer, phTopic},
		{"admin to the alerts output", admin, payload.Topic(station, LeafAlerts)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.Stats().Rejects[ReasonACL]
			resp, _ := tt.client.publish(t, tt.topic, 1, phBody)
			require.NotNil(t, resp, "want a PUBACK")
			assert.Equal(t, byte(0x87), resp.ReasonCode)
			assert.Equal(t, before+1, b.Stats().Rejects[ReasonACL])
		})
	}
	t.Run("admin elsewhere is passed on, not stored", func(t *testing.T) {
		resp, err := admin.publish(t, payload.Topic("OTHER", "ph"), 1, phBody)
		require.NoError(t, err)
		assert.Equal(t, byte(0), resp.ReasonCode)
	})
	t.Run("mqtt3 device to another station is acknowledged and dropped", func(t *testing.T) {
		before := b.Stats().Rejects[ReasonACL]
		c := mustConnectV3(t, b, "device1", "devpass")
		require.NoError(t, waitToken(t, c.Publish(payload.Topic("OTHER", "ph"), 1, false, phBody)))
		assert.True(t, c.IsConnectionOpen(), "MQTT 3.1.1 has no way to refuse a publish but closing")
		assert.Equal(t, before+1, b.Stats().Rejects[ReasonACL])
	})
	_, err := device.publish(t, phTopic, 1, phBody)
	require.NoError(t, err)
	assert.Equal(t, wantPH(), storedBeforeAck(t, sink), "only the allowed publish was stored")
}

func TestSubscribeDenied(t *testing.T) {
	b, _ := startBroker(t, nil)
	device := mustConnectV5(t, b, "device1", "devpass")
	v3 := mustConnectV3(t, b, "device1", "devpass")
	for _, filter := range []string{"#", "purehealth/#", "purehealth/+/ph", payload.Topic("OTHER", "#"),
		"$SYS/#", "$share/g/#"} {
		t.Run(filter, func(t *testing.T) {
			sa, err := device.subscribe(t, filter, 1)
			require.Error(t, err)
			require.NotNil(t, sa)
			assert.Equal(t, []byte{0x87}, sa.Reasons, "MQTT 5 SUBACK")

			assert.Equal(t, byte(0x80), subscribeV3(t, v3, filter), "MQTT 3.1.1 SUBACK")
		})
	}
	sa, err := device.subscribe(t, payload.Topic(station, "#"), 1)
	require.NoError(t, err)
	assert.Equal(t, []byte{1}, sa.Reasons)
}

// Taking over a session inherits its subscriptions: another user must not be able to.
func TestSessionTakeover(t *testing.T) {
	b, _ := startBroker(t, nil)
	persistent := func(o *pahov3.ClientOptions) { o.SetClientID("console").SetCleanSession(false) }
	admin := mustConnectV3(t, b, "admin", "adminpass", persistent)
	require.NoError(t, waitToken(t, admin.Subscribe("#", 1, nil)))

	_, code, err := connectV3(t, b, "device1", "devpass", persistent)
	require.Error(t, err)
	assert.Equal(t, byte(2), code, "identifier rejected")
	assert.True(t, admin.IsConnectionOpen(), "the admin session is untouched")

	again := mustConnectV3(t, b, "admin", "adminpass", persistent)
	assert.True(t, again.IsConnectionOpen(), "the same user may resume its session")
}

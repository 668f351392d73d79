// Package broker is the station agent's embedded MQTT broker (mochi-mqtt): the MQTT ingest
// path for devices and the place where the agent publishes its outputs.
//
// A publish on purehealth/<station>/<param> or purehealth/<station>/readings is decoded
// (package payload) and handed to a Sink before the broker acknowledges it, so a PUBACK
// (QoS 1) or PUBREC (QoS 2) means the readings are durable. What the sender hears otherwise:
//
//   - a payload that does not decode, or whose readings the sink refuses all of: MQTT 5 QoS
//     1/2 gets the reason code (0x99 payload format invalid, 0x90 topic name invalid for an
//     unknown parameter named by the topic, 0x83 otherwise) with a reason string; MQTT 3.1.1
//     and QoS 0 get a normal acknowledgement, and the message is not passed on to
//     subscribers. Either way one message per problem goes to purehealth/<station>/errors.
//   - some readings of an array refused: the rest are stored and acknowledged normally; one
//     error message per refused item.
//   - the sink fails: no acknowledgement at all, at any QoS and protocol version, so the
//     client sends it again; the failure is counted, logged and reported on the errors topic.
//
// Access is denied by default: users log in with bcrypt-hashed passwords, anonymous clients
// (if allowed) are devices, and roles decide publish and subscribe rights (see RoleDevice,
// RoleViewer, RoleAdmin). Nobody but the agent publishes on its outputs (LeafWQI, LeafAlerts,
// LeafStatus, LeafErrors).
//
// Caveats, all about mochi v2.7.9 and how this package works around them:
//   - mochi publishes a client's Will without checking the ACL, so a Will is checked at
//     CONNECT; a Will on a reading topic is refused too, since it would bypass the store.
//   - mochi sends no CONNACK when the OnConnect hook fails: the hook writes its own.
//   - mochi checks the ACL before resolving topic aliases: aliases are disabled.
//   - mochi lets a new connection take over a session, subscriptions included, by client id
//     alone: only the same user may do so.
//   - mochi's TCP listener dies on the first Accept error and reads CONNECT without a
//     deadline: this package has its own listener with a connect timeout and a cap on sockets.
//   - mochi expires retained messages after the message expiry: republish retained outputs
//     more often than Options.MessageExpiry.
//   - mochi processes a client's packets one at a time. A QoS 1 publish of readings is
//     queued in the client's lane instead, which stores everything the client sent
//     meanwhile in one Sink call and then hands each publish back to mochi in order, with
//     its verdict, for mochi to acknowledge and deliver as from its sender (No Local
//     holds); any other publish waits for the lane to be answered first. A slow Sink
//     slows only the clients waiting on it, and a lane full (64 publishes or a packet's
//     worth of payload) stops the broker reading from its client.
package broker

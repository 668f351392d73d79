// Package mqttsim simulates a station's sensors publishing readings to an MQTT broker, on
// the contract topics and payloads (design §4), as a demo source and as a load generator.
//
// Each simulated sensor has its own connection (client id <station>-sim-<i>) and publishes
// at a set rate, or as fast as acknowledgements allow, the values of a device.Model of the
// station's river. Every publish is accounted for exactly once: acknowledged, rejected or
// failed (see Report). MQTT 3.1.1 uses eclipse/paho.mqtt.golang, MQTT 5 eclipse/paho.golang.
//
// Payloads are encoded here from the contract, not with the agent's code, so that a bug
// shared by an encoder and a decoder cannot hide.
package mqttsim

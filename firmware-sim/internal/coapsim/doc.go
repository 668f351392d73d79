// Package coapsim simulates river water-quality probes that serve their readings as CoAP
// resources (RFC 7252) over UDP: one resource per parameter at coap://ADDR/<param>, read
// with GET or observed (RFC 7641), the way a CoAP-speaking sonde on a station's network
// does.
//
// Values come from a device.Model of the station's river, so they follow its diurnal
// cycle, monsoon and pollution events, and are reproducible with the seed. A device fault
// (noise, drift, stuck, dropout, garbage, spike) makes the probe misbehave as in the other
// simulators; the transport fault FaultError answers a share of requests and notifications
// with 5.00 Internal Server Error instead.
//
// Payloads are the station contract's single reading, {"value": 6.8, "unit": "mg/L",
// "timestamp": "2025-11-13T06:30:00.000Z"} with content-format application/json (50), or
// with FormatText the plain number as text/plain (0). They are written here from the
// contract, not with the agent's code, so that a bug shared by an encoder and a decoder
// cannot hide.
//
// # Observe
//
// A GET with Observe 0 registers the client; it then gets a notification every Interval
// with the Max-Age option set to the interval (rounded up to a second), until it
// deregisters (GET with Observe 1), stops acknowledging, or its connection ends.
// Notifications are confirmable, so a client that went away is noticed (no acknowledgement
// after the retransmissions) and dropped, and its acknowledgements keep the connection from
// counting as inactive. A 5.00 notification ends the observation, as RFC 7641 says a
// non-2.xx notification does; the client must register again.
//
// # Limits
//
// The server bounds what a flood of datagrams can cost: datagrams over 2 KiB are dropped,
// each peer may send PeerRate requests per second (more are dropped unanswered), at most
// MaxPeers peers and MaxObservers observations are kept, and a peer that sends nothing for
// a while is forgotten. Malformed datagrams are dropped by the CoAP library.
//
// A Server serves once: create it with New, call Serve, which returns after ctx ends and
// every goroutine it started has stopped. Stats is safe for concurrent use.
package coapsim

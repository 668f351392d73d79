// Package httpsim simulates river water-quality probes that serve their readings over HTTP:
// GET http://ADDR/<param> returns the station contract's single reading, {"value": 6.8,
// "unit": "mg/L", "timestamp": "2025-11-13T06:30:00.000Z"} as application/json (or with
// FormatText the plain number as text/plain), the way a small HTTP-speaking sensor on a
// station's network does.
//
// Values come from a device.Model of the station's river and are reproducible with the
// seed. Device faults (noise, drift, stuck, dropout, garbage, spike) misbehave as in the
// other simulators; a dropout closes the connection without an answer. The transport faults
// hit a share of requests (Config.FaultRate): FaultError answers 500, FaultSlow answers
// only after SlowDelay, FaultOversized sends a 1 MiB document.
//
// Bodies are written here from the contract, not with the agent's code, so that a bug
// shared by an encoder and a decoder cannot hide.
//
// A Server serves once: create it with New, call Serve, which returns after ctx ends and
// its connections are closed. Handler and Stats are safe for concurrent use.
package httpsim

// Package payload decodes the station telemetry contract: the topic layout
// "purehealth/<station>/<param>" and the JSON bodies devices publish there (an object with a
// value, a bare number, or a "readings" array). The MQTT broker uses it, and so do the CoAP
// and HTTP probes, which receive the same bodies over other transports.
//
// Decoding is pure: no I/O, no clock (a missing timestamp stays zero for the caller to fill
// in), no globals. Everything is safe for concurrent use.
//
// Caveats: parameters and units come out as the device spelled them. Normalizing them and
// refusing unknown ones is the ingest pipeline's job, so that every transport refuses the
// same things with the same words. Errors name the field and, in a readings array, the item
// ("readings[3].value: missing"); device text quoted in them is cut to 64 bytes.
package payload

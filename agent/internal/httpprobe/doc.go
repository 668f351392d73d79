// Package httpprobe reads a water-quality probe that serves its measurement over HTTP: a
// GET at the configured interval returns the station contract's single reading, a JSON
// object {"value", "unit", "timestamp"} or a bare number (package payload decodes both).
//
// A Probe owns one goroutine, the one that calls Run; each reading goes to the Sink (the
// agent's pipeline) from it, so a slow durable write delays the next poll rather than
// queueing. Status and Test are safe to call from other goroutines while Run runs.
//
// Every request is bounded: by the timeout (connecting, waiting for headers and reading
// the body alike), and by the body size (64 KiB; a larger body is refused unread). One
// keep-alive connection is reused from poll to poll; it is closed when Run returns.
//
// What goes wrong is counted through Health by kind: "timeout" (no complete answer in
// time), "connect" (the connection failed or broke), "http_<code>" for a non-2xx status,
// "decode" for a body that is not a reading (including one over the size limit). Readings
// the pipeline refuses (an unknown unit, say) are counted by the pipeline itself, not again
// here; a reading already received is stored even while Run is ending (package
// probestatus). The first answer after the device could not be reached counts as a
// reconnect.
// After a failure the next poll waits longer, up to 30 s when the interval is shorter, with
// jitter, so a dead device is not hammered.
package httpprobe

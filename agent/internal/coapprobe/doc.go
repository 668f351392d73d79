// Package coapprobe reads a water-quality probe that serves its measurement as a CoAP
// resource (RFC 7252) over UDP: by polling it with GET at the configured interval, or by
// observing it (RFC 7641) so that the probe pushes each new value.
//
// A Probe owns one goroutine, the one that calls Run; the CoAP library adds its own per
// connection (reader, periodic checks), and Run returns only after they have stopped. Every
// reading goes to the Sink (the agent's pipeline) from that goroutine, one at a time, so a
// slow durable write slows the probe, never queues without bound. Status and Test are safe to
// call from other goroutines while Run runs.
//
// Payloads are the station contract's single reading: a JSON object {"value", "unit",
// "timestamp"} or a bare number (package payload decodes them), or a plain decimal number as
// text. The CoAP content-format chooses: application/json (50), text/plain (0); with none the
// payload is sniffed.
//
// What goes wrong is counted through Health by kind: "timeout" (no response in time),
// "bad_code" (a 4.xx or 5.xx response), "decode" (a payload that is not a reading),
// "connect" (the connection failed or the library dropped it). Readings the pipeline refuses
// (an unknown unit, say) are counted by the pipeline itself, not again here; a reading
// already received is stored even while Run is ending (package probestatus). Each new
// connection after the first, and each re-registration of an observation, is counted as a
// reconnect.
//
// Failures slow the probe down instead of spinning: after a poll that brought no reading
// the next waits longer (doubling from 0.5 s up to 30 s, jittered, never less than the
// interval); after three polls in a row without any response, or when the connection
// drops, a new connection follows after the same kind of backoff.
//
// # Observe supervision
//
// An observation can die silently: the probe rebooted and forgot its observers, a NAT
// mapping expired, a malformed datagram made the library drop the connection, or the
// registration itself hangs until its context ends. So every registration has a deadline,
// and a watchdog re-registers when no notification arrived within the freshness the probe
// promised (its Max-Age option, or three intervals without one) plus some slack. A
// re-registration always uses a fresh connection, so no state of the old one (tokens,
// message ids, a half-dead observation) can leak into the new one. A server that answers
// the registration without the Observe option does not support observation; the probe
// then polls that connection instead.
//
// # Bounded memory
//
// Each connection is a connected UDP socket, so the kernel discards datagrams from anyone
// but the server. What the server sends is screened before the library sees it: requests
// and messages carrying a token the probe never issued are dropped, so that garbage cannot
// fill the library's table of acknowledgements it remembers per message id. Messages over
// 16 KiB are refused, at most 16 notifications wait for the Run goroutine (more are dropped
// and counted), and a connection nothing arrives on for four intervals (at least two
// minutes) is closed.
//
// # Caveats
//
// coaps:// (DTLS) is not supported: New refuses such a URL. A response over 16 KiB, after
// blockwise reassembly, never arrives and counts as a timeout; a reading is a few dozen
// bytes.
package coapprobe

package mqttsim

import (
	"fmt"
	"math"
	"strings"
)

// Report is the outcome of a run (the JSON shape is what `ph-sim mqtt --report json`
// prints as its last line).
//
// For QoS ≥ 1, Sent = Acked + Failed exactly: a publish counts as acked only when its
// PUBACK (QoS 1) or PUBCOMP (QoS 2) came back with a success code; everything else —
// rejected by the broker, a write error, the connection lost, no acknowledgement before the
// grace period ended — is failed. For QoS 0 nothing is acknowledged: Acked is 0 and
// Failed counts the publishes that could not be written.
type Report struct {
	Station  string `json:"station"`
	Protocol int    `json:"protocol"` // 4 (MQTT 3.1.1) or 5
	QoS      int    `json:"qos"`
	Sensors  int    `json:"sensors"`
	Batch    bool   `json:"batch"`

	Sent     int64 `json:"sent"`     // PUBLISH packets handed to the client
	Acked    int64 `json:"acked"`    // acknowledged with success (QoS ≥ 1)
	Failed   int64 `json:"failed"`   // not acknowledged (QoS ≥ 1) or not written (QoS 0)
	Rejected int64 `json:"rejected"` // of Failed: acknowledged with an error reason code (MQTT 5)
	Readings int64 `json:"readings"` // readings in the sent messages, garbage excluded
	Garbage  int64 `json:"garbage"`  // of Sent: deliberately invalid payloads (--fault garbage)
	Dropouts int64 `json:"dropouts"` // ticks on which a probe produced nothing (--fault dropout)

	Reconnects int64 `json:"reconnects"` // connections re-established after a loss

	// Seconds runs from the first publish to the last outcome.
	Seconds float64 `json:"seconds"`
	// RatePerS is completed publishes per second: acked ones for QoS ≥ 1, written ones for
	// QoS 0.
	RatePerS float64 `json:"rate_per_s"`
	// LatencyMS is from handing a publish to the client to its PUBACK/PUBCOMP; null for
	// QoS 0 or when nothing was acknowledged.
	LatencyMS *Latency `json:"latency_ms"`
	// FirstError is the first reason a publish failed, if any did.
	FirstError string `json:"first_error,omitempty"`
}

// Latency summarises acknowledgement latencies, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// String is the human summary: one line.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d sensor(s), MQTT %s QoS %d: sent %d, acked %d, failed %d",
		r.Station, r.Sensors, protocolName(r.Protocol), r.QoS, r.Sent, r.Acked, r.Failed)
	if r.Rejected > 0 {
		fmt.Fprintf(&b, " (%d rejected)", r.Rejected)
	}
	if r.Garbage > 0 {
		fmt.Fprintf(&b, ", garbage %d", r.Garbage)
	}
	if r.Dropouts > 0 {
		fmt.Fprintf(&b, ", dropouts %d", r.Dropouts)
	}
	if r.Reconnects > 0 {
		fmt.Fprintf(&b, ", reconnects %d", r.Reconnects)
	}
	fmt.Fprintf(&b, " in %.2fs (%.1f/s)", r.Seconds, r.RatePerS)
	if l := r.LatencyMS; l != nil {
		fmt.Fprintf(&b, "; ack latency p50 %.3fms p90 %.3fms p99 %.3fms max %.3fms",
			l.P50, l.P90, l.P99, l.Max)
	}
	if r.FirstError != "" {
		fmt.Fprintf(&b, "; first error: %s", r.FirstError)
	}
	return b.String()
}

func protocolName(p int) string {
	if p == MQTT5 {
		return "5"
	}
	return "3.1.1"
}

// round keeps d decimals, for a report that reads well.
func round(v float64, d int) float64 {
	s := math.Pow10(d)
	return math.Round(v*s) / s
}

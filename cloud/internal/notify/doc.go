// Package notify sends alert transitions, the stations' and the cloud's own, to the
// people who need them: webhooks (into a chat or an incident tool) and e-mail.
//
// # Channels
//
// A Channel mirrors one entry of the configuration's notify list (design §5a):
//
//	notify:
//	  - name: ops-chat
//	    kind: webhook
//	    url: "https://hooks.example.org/ph"
//	    secret: "..."
//	    stations: ["*"]                  # or station ids
//	    severities: [critical, warning]  # info, warning, critical
//	    on: [opened, resolved]           # opened, acknowledged, escalated, resolved
//	  - name: ops-mail
//	    kind: email
//	    smtp: {host: mail.example.org, port: 587, username: ph, password: "...", from: "Pure Health <ph@example.org>"}
//	    to: ["river-ops@example.org"]
//
// A webhook is a POST of JSON: the alert after the transition, exactly as the live
// stream's alert event carries it ({"id","origin","station","rule","key","param",...,
// "transition"}), signed in X-PH-Signature: "sha256=" and the hex HMAC-SHA256 of the exact
// body under the channel's secret (Sign). A message of several transitions (see Grouping)
// is the newest one's alert JSON with one more member, "group": all of the message's
// transitions, oldest first, each as its own alert JSON. Any 2xx answer means delivered;
// anything else, a redirect included, is a failed attempt, and a Retry-After is honoured
// (up to an hour).
//
// An e-mail is plain text (quoted-printable UTF-8) listing the transitions, sent with
// net/smtp: TLS from the first byte on port 465, otherwise STARTTLS whenever the server
// offers it (smtp.tls says otherwise), AUTH PLAIN only over TLS. A recipient refused
// fails the message before any of it is sent.
//
// Both carry X-PH-Delivery, the same on every attempt of one message (the e-mail's
// Message-ID is made from it), so a receiver can drop a message it has taken before.
//
// # Delivery
//
// The transaction that stores an alert transition also queues it in the database's
// outbox (see cloud/internal/store, notify.go): nothing stored is missed, and a
// transition received twice is queued once. A Dispatcher routes each queued transition
// to the channels whose filters it passes, and then sends, per channel and station (a
// stream), one message at a time under the stream's row lock, taken with SKIP LOCKED:
// replicas share the work and never send the same stream at once. What a message holds is
// fixed at its first attempt; it is marked delivered in the transaction that held the
// lock. So each transition reaches each channel once, across restarts and replicas — but
// for one case: when the database connection fails between a delivery and its record,
// the message goes again, with the same X-PH-Delivery.
//
// A failed attempt is retried after a jittered, doubling wait (10s up to 30 min by
// default) stored with the stream, so retries survive restarts. After FailingAfter
// failures in a row the stream opens a notify_failing cloud alert on its station (key
// notify_failing/<channel>; other channels are told of it, the failing one is not), which
// is resolved by the stream's next delivery. Transitions not delivered within MaxAge are
// given up and counted; records are deleted after Retention.
//
// # Grouping
//
// A stream sends at most one message per Group (a minute by default): the first
// transition of a quiet station goes at once, and what follows within the minute goes
// together, at most MaxPerMessage transitions to a message.
//
// # Goroutines
//
// New starts nothing. Run owns every goroutine: a loop that routes on every tick
// (Interval) and whenever a transaction that queued transitions commits (LISTEN
// ph_notify), Workers senders (each holds one pooled connection while it sends), and the
// listener; it returns once they have stopped. Stats, Failing and Collector are safe for
// concurrent use and read no database.
//
// # Caveats
//
// Routing follows the channels of the replica that routes: replicas should share one
// notify configuration, and a channel added later gets only transitions queued after a
// replica that knows it routed them. Deliveries to a channel removed from the
// configuration wait until they expire.
package notify

/*
Package uplink forwards the station's buffer to the cloud: store-and-forward over HTTP(S),
exactly once in the cloud, whatever is retried.

# Batches and acknowledgements

A batch is a wire.Batch, gzip JSON, POSTed to <url>/v1/ingest with the station's bearer
token. The cloud answers 200 with a wire.Ack naming, per stream, the highest seq of the
batch that it now stores. Only that answer moves anything: a record is confirmed when a
batch holding it was acknowledged, and a stream's persisted cursor (spool.Ack) moves over
the confirmed records that follow it without a hole. An answer that does not acknowledge
exactly what was sent (garbage, a lower or higher seq, a stream missing) moves nothing.
The cloud stores each (station, stream, seq) once, so a batch whose answer was lost is
simply sent again.

# Two lanes

Each pass (at start, every Interval while nothing fails, after a backoff, or on Flush)
first sends the live lane: every unsent alert event, the newest WQI record, and the newest
LiveReadings unsent readings, so an operator sees the station's current state within
seconds of the link coming back. Then the backlog lane drains WQI history and readings
from the cursors in seq order, batch after batch with no wait between them, skipping what
the live lane sent.

The live lane stays open while the backlog drains. Before every backlog batch it is looked
at again: an alert event or a new WQI record goes next, in a batch of its own. Readings
stored since the previous batch was built ride in the next backlog batch, above the
backlog's own readings: the newest of them, at most LiveReadings and half the batch (the
older ones are left to the backlog, which reaches them in order). So a reading that
arrives during a long drain reaches the cloud one batch later, not after the backlog, and
the drain sends no extra requests for it.

Three backlog batches travel at once (Options.InFlight): while the cloud stores two, the
next is read, encoded and decoded by the cloud, and the oldest batch's answer is taken in
before a fourth is built. The readings that would ride in a backlog batch then go just
ahead of it in a batch of their own: a reading inside a full batch would wait for all of
its rows. A batch behind others in flight reads on from where they end and
stops short of the newest readings they carry, so it covers only records whose fate its
own answer decides; answers are taken in the order the batches were sent. When the batch
ahead fails, what the cloud confirmed of the one behind it waits above the cursor like the
live lane's readings. With a daily byte budget batches go one at a time, each weighed
against what is left.

Readings confirmed through the live lane sit above the cursor. They are remembered in
memory as seq ranges, the backlog skips them, and the cursor jumps over them once the
backlog reaches them. A batch holding both lanes is confirmed lane by lane (the seqs
between the backlog's readings and the newest ones were not sent), also when it is split.
After a restart that memory is gone and they are sent again (the cloud drops the
duplicates): the cursor alone is persisted.

# Failures

No answer (connection refused, reset, cut, timeout), 5xx, 429 or a bad acknowledgement:
the pass ends and the next one starts after an exponential backoff with full jitter,
from BackoffMin doubling up to BackoffMax, never shorter than a Retry-After the cloud sent
(capped at an hour). A success resets it, and the next pass drains at once.

400 about records: a batch is never retried whole. When the cloud names a record
(field readings[3].param), that record is sent alone and the records around it go on;
when it names none, the batch is bisected (after an empty batch has shown that the cloud
takes this station's batches at all). A single record the cloud refuses is set aside:
confirmed for the cursor's sake, counted (Status.Rejected, persisted), logged with the
cloud's message, and one uplink_rejected alert is raised, so one poison record can never
block the queue. A stored record that cannot even be encoded is set aside the same way.
A 400 about the batch itself (its version or station) sets nothing aside: the pass fails
and the alert says why.

413: the batch is halved, and so is the batch size from then on (it doubles back after a
run of successes). 401 and 403: the token is read again (Options.Token) and, if it
changed, the batch is retried at once; otherwise the uplink is in the auth-failed state,
waits about BackoffMax between attempts (reading the token again each time), and raises
an uplink_auth alert that resolves with the next success.

# Byte budget

With Options.DailyBytes set, the bytes on the wire (counted on the connections: TLS,
headers and retries included) per UTC day are kept in the store, so a restart does not
reset them. When the next backlog batch would exceed what is left, the backlog waits for
the next day (state "budget exhausted"), and the live lane keeps sending alert events and
the latest WQI, without readings. A backlog batch is weighed with the new readings riding
in it, which stop with it. A live batch may overshoot the budget by its own size.

# Health record

With Options.Health set, the station's health record (wire.Health: version, uptime, clock,
buffer and hours of autonomy, backlog, probes, calibration due dates, broker) goes with the
live lane every HealthInterval: after a pass's first batch, or alone when nothing else
waits. It travels in a batch of its own with no records, so a cloud that refuses it
refuses nothing else: a 400 or 413 is logged and counted (Status.HealthRefused) and the
next record goes an interval later; no answer, 429 or 5xx fail the pass as any batch does.
It is a snapshot: taken when it goes, never stored, never resent as it was.

# Shutdown

When Run's context ends no new batch starts; the one in flight gets Options.Grace to be
answered and its acknowledgement recorded. The store must stay open until Run has
returned.

# Caveats

The cursor of a stream cannot pass a record that is neither confirmed nor set aside, so a
cloud that keeps failing one batch for a reason other than 400/413 holds the backlog (the
live lane still goes). The byte budget is checked before a batch is sent: a batch that
fails still costs its bytes.
*/
package uplink

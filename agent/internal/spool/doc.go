/*
Package spool is the station agent's durable, bounded buffer: every reading, alert event
and WQI result the agent accepts is written here before anything acknowledges it, and
stays here until the cloud has confirmed it and the policy below lets it go. It is one
bbolt file, normally <data_dir>/agent.db.

# Streams, sequences and the cursor

The spool holds three append-only logs (Stream): Readings, Alerts and WQI. Each has its
own sequence: AppendReadings and AppendRecord assign seqs that strictly increase, are
never reused (the next seq is persisted, so it survives the deletion of every record and
a restart) and give the order in which the cloud receives data, whatever the wall clock
said. Each stream also has a forward cursor: ReadingsAfter/RecordsAfter read after it,
Ack moves it once the cloud has confirmed. Records at or below the cursor are
"forwarded"; the others are the backlog.

# Durability

An append returns only after the transaction holding it is committed and fsynced. One
writer goroutine owns every write transaction: it takes every request already queued (up
to Options.MaxBatch records), writes them in one transaction, commits once and then
answers each caller (group commit). A commit costs two fsyncs, so durable throughput
comes from the size of the groups, not from the disk's fsync rate. Before it takes the
queue the writer yields the processor once, so that callers ready to run (those it has
just answered, about to append again) join the group; on an idle station that costs
nothing. When fewer requests are queued than the last commit held, it waits for the rest
for at most a quarter of that commit's duration, so that on a slow disk the callers do
not split into two groups taking turns. DB.Batch is not used: it may run a function twice.

A failed commit stores nothing of its group and consumes no seq. A kill -9 or a power
cut at any instant leaves the last committed state: bbolt never overwrites live pages.

# The file

Open creates a missing file atomically (built and synced under a temporary name, then
linked into place and the directory synced), so a power cut at first start cannot leave a
half-written database. Every Open runs bbolt's integrity check over the whole file, on a
read-only handle. A file that is not a bbolt database, fails the check, or makes bbolt
panic is renamed to <path>.corrupt-<UTC time> (kept for forensics, logged at error level,
reported by Quarantined) and a fresh file takes its place: a damaged SD card costs the
data in the file, never the station's uptime. A file locked by a running agent is not
corrupt: Open returns ErrLocked after Options.OpenTimeout.

# Format and upgrades

The file records the version of its layout (Format: buckets, meta keys, the reading
encoding) and the version of the last agent that opened it. Open upgrades a file of an
older format in the same transaction that opens it, one format at a time, so a power cut
during an upgrade leaves the old format whole. A file of a newer format (an agent was
downgraded) is refused with ErrSchema, naming both versions, and left byte for byte as it
was: not quarantined, not rewritten, ready for the newer agent again. testdata/ keeps a
file written by the code of every released format, and the tests open each of them.

# Bound and eviction policy

The file never grows beyond Options.MaxBytes: bbolt's MaxSize is set to it and refuses
any growth past it. The file grows by a step of MaxBytes/32 (64 KiB to 16 MiB), so all
but one step of MaxBytes is usable. bbolt files
never shrink; deleted pages are reused. UsedBytes is the pages in use (the high-water
mark minus free and pending pages). After every commit the writer compares UsedBytes
with the bound: above 90% of MaxBytes it runs an eviction pass until UsedBytes is below
80%, in this order, each step oldest first (by seq) and only when the step before it
has nothing left:

 1. Forwarded records past Options.Retention, all streams. This step always runs to the
    end; it also runs at Open and every hour without the bound being reached (and when
    Expire is called).
 2. Forwarded readings, then forwarded WQI records, inside the retention: they are safe
    in the cloud.
 3. Unforwarded raw readings are downsampled to hourly means. The oldest chunk (up to
    20 000 raw readings) is grouped by station, sensor, parameter, unit, source and UTC
    hour; each group of two or more readings becomes one reading with the smallest seq
    of the group (so order and uniqueness hold), the start of the hour as its time, the
    mean of the group's usable (good or suspect) values, quality good if every reading
    was good and suspect otherwise, and the union of the flags plus
    telemetry.FlagDownsampled. Bad readings are left out of the mean and counted
    (DownsampledBad); a group of only bad readings becomes one bad reading holding their
    mean, so the fault stays on record. Means are never downsampled again; chunks
    continue until the target is met or no raw reading is left.
 4. Unforwarded readings are dropped outright (means first, being the oldest), then
    unforwarded WQI records.

Alert events are never dropped unforwarded (they are tiny), and the key-value state
(Put) is never evicted. Every pass that removed anything adds to the persisted counters
(Stats.Evicted) and calls Options.OnEvict once with what that pass did, so the agent can
raise one buffer_overflow alert (Eviction.Full, Evicted.Unforwarded). The passes run in
small transactions (at most 10 000 deletions, or 20 000 readings examined when
downsampling), alternating with group commits, so appends keep flowing during a pass.

An append never fails because the buffer is full: when a group would not fit below the
file's limit, the writer first evicts (same order) to make room for it. Only when
everything the policy may drop is gone does a write fail, with ErrFull.

Retention is measured on the spool's clock at the time a record was stored, not on the
measurement time of a reading (which comes from devices). The writer notes the store
time of the first commit of every minute per stream; a forwarded record expires when the
minute it was stored in is older than Retention, so it goes at most a minute late.

# Encoding

Readings are stored in a compact, versioned binary encoding (about 40 bytes; see
codec.go), not JSON: SD cards are small and slow. Keys are 8-byte big-endian seqs.
Decoding never trusts the bytes: a value that does not decode is skipped, logged and
counted (Stats.CorruptSkipped) instead of stalling the uplink.

# Caveats

Open reads the whole file to check it (and bbolt reads it again to rebuild its
freelist, which it does not write on every commit to spare the SD card). On a Raspberry
Pi with a full 512 MiB buffer on an SD card this takes seconds.

The file is memory-mapped at its full bound at Open. On 32-bit systems (armv6/armv7)
MaxBytes is capped at MaxBytes32 (512 MiB) because the mapping fails near 1 GiB there;
Open logs a warning when it lowers the bound.

Lowering MaxBytes below the size of an existing file does not shrink the file: the
spool evicts until UsedBytes is below the new watermarks and stops growing it.

Options.NoSync disables fsync and with it every durability promise above. It exists for
benchmarks only.

Retention relies on the clock moving forward. If the clock is set back, the records
stored before the jump expire late, never early; unforwarded records never expire.

The ext4 fast_commit feature of some 5.10-5.17 kernels has corrupted bbolt files: the
quarantine keeps the station running, but such kernels should be avoided.

A page damaged after Open (a failing SD card) makes reads return ErrCorrupt; if the
writer meets it, bbolt panics and the process ends. Either way the next Open
quarantines the file, so the agent should exit on ErrCorrupt and be restarted.

Byte slices from bbolt are valid only inside their transaction; every method here
returns copies, and Scan calls its function after the transaction has ended.
*/
package spool

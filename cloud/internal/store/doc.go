// Package store is ph-cloud's PostgreSQL storage: stations and their tokens, readings, WQI
// history and alerts, with versioned migrations and two layouts of the time series.
//
// # Layouts
//
// Migrate chooses the layout once, at its first run, and records it in schema_meta:
//
//   - timescaledb, when the server preloads the extension: hypertables with 1-day chunks,
//     continuous aggregates measurements_hourly and measurements_daily, compression after 7
//     days and retention policies. The aggregates are real-time above their watermark;
//     readings that arrive below it (an agent's backlog after days offline) reach them
//     at the next refresh, within 15 minutes for hourly and an hour for daily buckets.
//   - plain PostgreSQL: measurements and wqi_readings partitioned by UTC day, partitions made
//     ahead and on demand for any day a batch touches and dropped past retention (Maintain),
//     and rollup tables measurements_hourly and measurements_daily kept by the ingest
//     transaction: each bucket holds the sum, count, minimum and maximum of its usable
//     readings (avg is sum / count), to which a batch adds the aggregates of the rows it
//     inserted, so no bucket is ever recomputed from raw rows.
//
// Both have the same table names and columns, and the queries here return the same results
// on either.
//
// # Exactly once
//
// Ingest writes a whole batch in one transaction. The station's row (station_ingest)
// keeps its committed readings seqs as a few ranges (readings_committed). A reading whose
// seq lies outside them is new for certain: the batch's such readings go by one binary
// COPY straight into measurements, with no staging and no conflict check, which is nearly
// all of them in normal operation. The readings go in first, without a lock, so that two
// batches of a station store their rows at once; the row lock on station_ingest then
// makes the rest of a station's batches (ranges, latest values, rollups, alerts, WQI,
// events) run one after another. Ranges read before the lock may miss a batch committed
// meanwhile: a reading of it copied again breaks the unique key, and the batch is stored
// again with every reading checked. The others (a
// batch sent twice, an overlap, a replay after a lost answer, an agent that lost its
// buffer and counts from 1 again) go through a staging table and INSERT ... ON CONFLICT
// DO NOTHING on the unique key (station_id, seq, time): replays add nothing, and the
// restarted agent's readings, at other times, are stored. The ranges then take in the
// batch's seqs. They may cover seqs that were never stored (past 32 ranges the lowest
// holes close), which only sends those down the checked path; they never miss one that
// was. Latest values and (plain layout) rollups are updated from the batch's new readings,
// aggregated in Go, with a few rows per batch. WQI results and alert transitions, a few
// per batch, always take the checked path.
//
// After a connection error (a PostgreSQL restart) the pool drops its connections and the
// whole transaction is retried once; when the database stays unreachable, the error
// matches ErrUnavailable and nothing of the batch is stored. The staging tables are
// per-connection temporary tables (ON COMMIT DELETE ROWS) made when the pool connects, so
// a batch changes no catalogs.
//
// # Live events
//
// Every new reading, WQI result and alert transition is an event of the events table, the
// source of the WebSocket fan-out. A batch's live readings are one row (type readings,
// span n) that takes n consecutive ids, one per reading, and holds their data as a JSON
// array written in Go (appendReadingJSON: what encoding/json makes of the query API's
// Reading, byte for byte); Events expands it into reading events, so readers see one event
// per reading with its own id. WQI and alert events are built by PostgreSQL from the rows
// their INSERT ... ON CONFLICT DO NOTHING returned, so only what was actually stored is
// published, and once compacted as the fan-out sends it, the JSON is what encoding/json
// makes of the query API's structs, byte for byte but for the digits of rare numbers
// (sqlJSONNumber). The rows wait in a staging table until the end of the transaction.
// Then one INSERT into events, sent together with the COMMIT, takes the events lock (see
// 0003_events.sql), draws their ids and commits: ids follow commit order, and the lock
// covers that statement and the commit alone.
//
// # Notifications
//
// Every alert transition that gets a live event, a station's or the cloud's own, is also
// queued in notify_outbox by the same transaction (notify.go); cloud/internal/notify
// sends them. RouteNotifications, DeliverNotification, NotificationStats and
// PruneNotifications are its side: replicas share the work through row locks taken with
// SKIP LOCKED, and a channel's stream that keeps failing opens a notify_failing cloud
// alert on its station.
//
// # Readings from outside the stations
//
// Lab samples posted to the cloud and what government programmes and satellites publish
// live in external_readings, beside the stations' own measurements: such data arrives
// months or years after the time it describes, and in measurements the raw-readings
// retention (TimescaleDB drops chunks by their time range) would remove it on arrival.
// Each row is one revision of an observation (origin, station, parameter, and time or a
// lab's sample id): a republished value with another number adds a revision and makes it
// current, keeping the old one; an unchanged one adds nothing (upstream.Classify). Their
// retention is per origin (Options.SourceRetention, Retention.External), applied by
// Maintain on both layouts. Readings lists both tables merged, current revisions only
// unless asked for all; LatestValues and the fused WQI (fused_wqi, StoreFusedWQI) take
// both into account. A station's own lab samples (source manual, forwarded by its agent)
// stay in measurements, with their sample id, lab and method.
//
// # Analytics
//
// Stations may be placed on a river (River, SetRiver) for the anomaly detection. The
// analytics jobs read weeks of history cheaply (AnalysisSeries: the hourly rollup, then
// the recent readings themselves), run one round at a time across replicas
// (RunExclusive), and keep forecasts (StoreForecasts: a row per forecast issued or per
// reason there is none, stored only when it changed, each new forecast also a
// "prediction" event; partitioned by day like measurements, or a hypertable, dropped past
// Retention.Forecasts). The cloud's own rules reconcile their alerts through one path,
// SyncCloudAlerts: the alerts a rule wants open, with their evidence, against those open;
// every transition is an alert event and a notification, as for every cloud alert.
//
// # Tokens
//
// Stations keep their token's hash in stations; people and tools (roles lab, viewer,
// operator) in api_tokens, hashed the same way. AuthenticateToken maps any of them to a
// Principal.
//
// # Concurrency
//
// A *Store is safe for concurrent use. It owns a pgx pool and starts no goroutines of its
// own besides the pool's; Close releases it. Every method bounds its work with a deadline
// (Options.QueryTimeout, Options.IngestTimeout) on top of the caller's context.
package store

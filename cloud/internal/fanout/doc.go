// Package fanout streams ph-cloud's live events (new readings, WQI results, alert
// transitions, predictions and station status changes) to WebSocket clients such as the
// dashboard, from every replica of the service alike.
//
// # Endpoints
//
//	GET /ws                 subscribe with messages (below)
//	GET /ws/station/{id}    subscribed to one station from the start (404 for an unknown
//	                        station); ?since= resumes as in a subscribe message
//
// Before the upgrade a request may be refused: 401 without a valid viewer token when
// tokens are configured (give it as ?token= or "Authorization: Bearer"; browsers can only
// use ?token=), 403 for an Origin that is neither the same origin nor an allowed pattern,
// 503 with Retry-After when the replica has as many clients as it allows or is not ready.
// Compression is not negotiated.
//
// # Client messages
//
// Text frames of JSON, at most 16 KiB (configurable) each; a larger frame closes the
// connection with 1009 (message too big). At most a few messages a second (burst 20);
// beyond that the connection is closed with 1008.
//
//	{"type":"subscribe","stations":["MH-PUNE-001","MH-NAS-002"]}
//	{"type":"subscribe","stations":["*"]}                      every station
//	{"type":"subscribe","stations":[...],"since":"12345"}      resume after event 12345
//	{"type":"subscribe","stations":[...],"since":"2025-11-13T12:00:00Z"}
//	{"type":"unsubscribe","stations":["MH-NAS-002"]}
//
// Subscriptions add up; "*" is kept apart from named stations (unsubscribing "*" leaves
// the named ones). A connection may name at most 1000 stations. "since" (a string or a
// number) is accepted in the first subscribe of a connection only.
//
// # Server messages
//
//	{"type":"reading|wqi|alert|prediction|status","id":123,"station":"ID",
//	 "time":"2025-11-13T12:00:00Z","data":{...}}
//
// "time" is when the event happened (RFC 3339, UTC): a reading's own time. "data" is, per
// type:
//
//   - reading: the query API's reading: {"seq","time","param","value","unit","quality",
//     "source","sensor"} and "flags" when there are any, and a lab sample's "sample_id",
//     "lab", "method". Only readings younger than websocket.live_max_age when they arrive
//     are sent one by one; see backfill below.
//   - wqi: the query API's WQI point: {"seq","time","wqi","class","category","partial",
//     "missing","sub_indices","do_saturation_pct"}; or, with "source": "fused", the WQI
//     the cloud computed from every source (fusion.WQI: "time","source","wqi","class",
//     ..., "inputs" with each parameter's value, source, time and age).
//   - alert: the query API's alert after the transition plus the transition: {"id",
//     "origin" ("agent" or "cloud": separate id spaces), "station","rule","key","param",
//     "sensor","severity","state","opened_at","acknowledged_at","resolved_at","message",
//     "value","limit","updated_at","transition" (opened, acknowledged, escalated,
//     resolved; a cloud alert whose message or evidence changed: updated)}, and a cloud
//     rule's "evidence" (forecast_breach, pollution_event, suspect_sensor, local_event).
//   - status with a station: the station went offline or came back:
//     {"state":"online|offline","online":bool,"last_seen":time,"since":time,
//     "offline_since":time (when it is back)}.
//   - status with a station and "backfill": a batch brought readings older than
//     websocket.live_max_age (a backlog after an outage); they are stored and queryable
//     but not sent one by one: {"backfill":{"readings":N,"from":time,"to":time}}.
//   - status with a station and "health": the station's agent sent a health record (about
//     once a minute); the data is its fleet entry as GET /v1/fleet lists it:
//     {"health":{"id","last_seen","version","uptime_s","clock_synced","buffer",
//     "backlog","probes","calibration_due",...}}.
//   - prediction: a new forecast of one of the station's parameters or of its WQI, as
//     GET /v1/stations/{id}/forecast serves it: {"station","param","issued_at","model",
//     "skill":{"mase","coverage80","coverage95","backtest_points"},"points":[{"time",
//     "value","lo80","hi80","lo95","hi95"}]} (design §5a). Sent when a forecast round
//     computes a forecast that differs from the series' last one.
//
// Messages without "station" are about the connection; their type is "status":
//
//	{"type":"status","id":N,"time":...,"data":{"subscribed":["A","B"],"replayed":12}}
//	    after every subscribe and unsubscribe, once it is in effect ("replayed" counts
//	    the events a resume sent before it);
//	{"type":"status","id":N,"time":...,"data":{"resync":true,"reason":"..."}}
//	    a resume could not be served: reload state from the JSON API, then use this id
//	    as the next since;
//	{"type":"status","id":N,"time":...,"data":{"error":"..."}}
//	    a client message was refused (the connection stays).
//
// # Ids and resuming
//
// Event ids grow in commit order across the whole service, and a connection receives
// events in strictly increasing id order, each at most once. The "id" of every message
// is the connection's resume point: every event of the subscribed stations up to that id
// has been sent. A client keeps the last id it received and, after a disconnect, sends it
// as "since" in the first subscribe of a new connection (to any replica): the server first
// sends the events after it from its memory or from the database, then the live stream,
// with no gap and no duplicate. A time as "since" means the events stored at or after that
// time (approximate to the clock; a client may see an event it already had). The gap is
// bounded: more than 10 000 events for the subscription, a first missing event older than
// 24 h, or a since that the retention has passed (events are kept 7 days) gives a resync
// message instead.
//
// # Flow control
//
// Events are published in chunks (what one read from the database returned), shared by
// every client that wants some of them; each client has a bounded queue. A batch's
// readings arrive as one row (store.EventReadings) and stay one frame in the hub: its
// messages are made once, the first time a client that wants its station writes it, and
// shared; a station no client watches costs the hub one frame per batch. Queues and the
// memory of recent events count events, not frames. Publishing never
// waits: a client with more than 4096 events (configurable) waiting is evicted, closed with
// 1008 "slow consumer" when the close frame can still be written within a second, at once
// otherwise, and counted; other clients are not slowed down. A write that takes longer than
// the write timeout (10 s) closes the connection too (a watchdog looks at the writes in
// progress, so that a write costs no timer). The server pings every 30 s; a client
// that does not answer within the write timeout is closed. On shutdown every connection is
// closed with 1001.
//
// # Where the events come from
//
// The Hub publishes, subscribes and evicts; a Source brings it the events (Follow) and
// serves the resumes its memory of recent events cannot (IDBefore, Replay). The rules a
// resume must pass are ReplayQuery.Check, the same for every Source.
//
// # Replicas
//
// The ingest transaction writes its events last into the events table; a trigger takes a
// transaction-level lock before the ids are drawn, so that id order is commit order, and
// NOTIFY ph_events announces the highest new id at commit. Every replica's StoreSource
// holds one LISTEN connection and, on a notification (and every poll interval, after a
// reconnect), reads the events after the last id it delivered from the database, and the
// hub fans them out. The local replica takes the same path, so all replicas send the same
// stream in the same order.
//
// # Concurrency
//
// A *Hub is safe for concurrent use. Run owns the watchdog and runs the Source's Follow,
// whose goroutine publishes; each connection's handler goroutine writes to it and owns one
// reader goroutine, and returns after the reader exited. Run returns after every
// connection has closed.
package fanout

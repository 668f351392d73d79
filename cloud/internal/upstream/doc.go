// Package upstream collects what services outside the station network publish about our
// stations — government open data (the data.gov.in OGD API, CWC, IMD) and satellite
// estimates — and hands it to storage as readings with their provenance.
//
// A Source fetches one round: everything published since a cursor, normalized into
// Readings, with what it could not use counted by kind (a missing value, a value below
// the detection limit, a station we do not map). A Collector runs rounds for one source:
// it reads the cursor, fetches, drops duplicate keys, grades each reading against its
// parameter's ranges, hands the rest to a Sink and advances the cursor only when the sink
// has them. Its Status (last success, last error, counts, lag) is what /stats shows.
//
// # Revisions
//
// A government programme republishes corrected values: the same station, parameter and
// time with another number. A reading's Key (source, station, parameter, time) names the
// observation; Classify tells a storage layer whether a delivered reading is new, a
// revision of the value it holds, or unchanged. The Origin's RecordID names the upstream
// record for the audit trail.
//
// # Concurrency
//
// A Collector runs one round at a time (Collect serializes callers) and starts no
// goroutines; the caller's scheduler owns the loop. Status is safe for concurrent use.
package upstream

// Package e2e holds the system tests of store-and-forward; it has no code of its own.
//
// Each test runs the real programs: ph-agent and ph-cloud built once per run from this
// module (with the race detector when the tests have it, their logs then checked for
// reports), a real PostgreSQL (internal/pgtest: a throwaway server, or a private one for
// the test that crashes it), and real MQTT publishers (Eclipse Paho, QoS 1). A test sets
// the cloud up as an operator would — `ph-cloud migrate`, `ph-cloud station add` for the
// token, `ph-cloud serve` — starts an agent whose uplink points at it, publishes readings
// with unique values, and then compares three records: the values that got a PUBACK, what
// the agent stored (`ph-agent readings|alerts|queue --json`), and the cloud's tables
// (measurements, alert_events, alerts, wqi_readings, read with pgx).
//
// What they establish, each ending with every stream drained and the cloud holding the
// agent's records once each:
//
//   - readings published at a running agent arrive once, and the queue ends empty with
//     its cursor on the last seq (forward_test.go);
//   - with the cloud down for the whole publish, everything arrives once it is up,
//     including an alert opened and resolved meanwhile, with the times it had at the
//     station, and the WQI history (forward_test.go);
//   - ph-cloud killed with SIGKILL mid-stream, repeatedly (faults_test.go);
//   - PostgreSQL crashed (pg_ctl stop -m immediate) mid-stream and restarted under a
//     running ph-cloud, whose /health goes to 503 and back to 200 without a restart
//     (faults_test.go);
//   - a link that delays, cuts and resets connections in both directions, including
//     answers lost after the cloud stored the batch and answers that never come
//     (faults_test.go, proxy_test.go);
//   - ph-agent killed with SIGKILL while it forwards a backlog: it resumes from its
//     cursor and what it sends again adds no rows (faults_test.go);
//   - after an outage with a large backlog, the newest reading and the latest alert reach
//     the database before the backlog has drained (livelane_test.go);
//   - power cut at random instants under the agent's buffer (on internal/lazyfs, which
//     drops what was not fsynced) while devices publish and the agent forwards: every
//     acknowledged reading and cursor survives and bbolt's check passes, cut after cut
//     (powerloss_test.go; 3 cuts here, `make powerloss` runs 100);
//   - the fleet (fleet_test.go): a real agent's health record and other stations' reach the
//     Fleet page in headless Chromium through GET /v1/fleet and the WebSocket; the page
//     sorts, highlights a station with under a day of autonomy or an older agent, and
//     follows new records live; `ph-cloud fleet` prints the same;
//   - a compressed week (soak_test.go): probes publish a river's week with explicit
//     timestamps while their clocks step by an hour, the agent loses and regains its clock
//     sync, the cloud is down for hours, PostgreSQL restarts and the agent is restarted
//     and killed, and the cloud's upstream sources (`ph-sim ogd` and `ph-sim stats`)
//     rate-limit, fail, time out, serve garbage, stay away and republish a corrected value;
//     then every acknowledged reading, WQI point and alert transition is in the cloud
//     exactly once, and so is every government value and satellite estimate the
//     simulators served, with each source's failures in /stats (`make soak` runs the
//     week at a reading a minute per probe).
//
// Every wait is a poll with a deadline that only turns a hang into a failure; no test
// asserts how fast anything happens. -short runs smaller volumes and fewer faults. Random
// choices (kill instants, fault offsets) log their seed.
//
// Without PostgreSQL's binaries the tests skip, unless PH_REQUIRE_TOOLS=1, when they fail;
// so does the power-loss test without FUSE.
package e2e

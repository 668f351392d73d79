// Command phbench runs the benchmarks of `make bench` (design §9) against the built
// programs in bin/ and prints one BENCH line per comparison, each peer measured in the same
// run on the same machine:
//
//   - durable_qos1_vs_fsync: readings per second a real ph-agent acknowledges at QoS 1
//     (stored durably first), against the disk's rate of 4 KiB write + fdatasync in the
//     agent's data_dir;
//   - durable_qos1_vs_nofsync: the same load against the agent with
//     buffer.unsafe_no_fsync: what durability costs;
//   - broker_vs_mosquitto: the same load against Debian's mosquitto without persistence;
//   - durable_qos1_slowdisk_vs_fsync: the same load against the durable agent with its
//     data_dir on a FUSE mount (internal/lazyfs) whose every fsync takes 5 ms, like an SD
//     card's, against that mount's own rate of 4 KiB write + fdatasync (--only slowdisk);
//   - agent_rss_<N>_sensors: the agent's peak resident memory with N sensors publishing
//     5 messages per second each, against the 50 MB budget;
//   - cloud_ingest_vs_psql_copy and cloud_copyfrom_vs_psql_copy: readings per second the
//     cloud's POST /v1/ingest commits, and pgx's CopyFrom alone, against psql's \copy of
//     the same rows into the same table of a throwaway PostgreSQL (fsync on);
//   - backlog_drain_vs_psql_copy: readings per second a real agent drains to the cloud
//     after an outage, against psql's \copy of the same rows;
//   - live_lane_latency_during_drain: publish → committed-row latency (p99) of a reading
//     published during that drain (once the agent's first batch is stored, past its retry
//     wait), against the same with nothing buffered;
//   - readings_query_p99_vs_psql: p99 latency of GET /v1/stations/{id}/readings with
//     bucket=1h and 1d over 30 days and a year of one station's readings (loaded by COPY),
//     against the SQL the API runs for them, prepared and executed by psql (--only query);
//   - fanout_delivery_p99_vs_gorilla, fanout_rss_per_conn_vs_gorilla and
//     fanout_cpu_per_mframe_vs_gorilla: ph-cloud's live WebSocket fan-out to thousands of
//     clients (p99 delivery latency, resident memory a connection, CPU per million
//     frames) against a minimal gorilla/websocket hub with the same logic, run as
//     `phbench fanout-peer` (--only fanout);
//   - sensor_to_ws_p99_vs_floor: p99 latency of 1000 readings a second from their MQTT
//     publish at a real ph-agent to a WebSocket client of a real ph-cloud (uplink on a
//     short interval), against the floor of that path measured in the same run: the
//     agent's fdatasync, the cloud's commit, the MQTT and HTTP loopback round trips, the
//     fan-out's read and the uplink interval, plus 20 ms (--only latency);
//   - forecast_mase_vs_seasonal_naive, forecast_coverage80_distance,
//     forecast_round_1000x8_vs_interval, detection_precision, detection_recall,
//     detection_plume_both_stations and detection_drift_suspect_sensor: the forecaster and
//     the anomaly detector scored on simulated station histories with their ground truth
//     (`ph-sim history`), by the Go benchmarks of cloud/internal/forecast and
//     cloud/internal/anomaly, which need the go command ($GO or go) (--only analytics).
//
// Every program it starts is stopped on every path, including SIGINT and SIGTERM. It exits
// 0 when every run passed its sanity checks (whatever the goals say), 1 when a run failed
// or a check did not hold, and 2 on a usage error. See `phbench -h` for the settings.
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if len(os.Args) > 1 && os.Args[1] == peerCommand {
		err = runPeer(ctx, os.Args[2:], os.Stderr) // the fan-out comparison's reference hub
	} else {
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(exitCode(err))
}

// errUsage marks a command-line mistake.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	return 1
}

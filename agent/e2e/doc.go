// Package e2e holds the station agent's end-to-end tests; it has no code of its own.
//
// The tests drive real parts only: a ph-agent process built once per run from this module
// (and built with the race detector when the tests are), real MQTT clients (Eclipse Paho
// for MQTT 3.1.1, Mosquitto's command-line clients), the agent's own CLI talking to its
// admin socket, and the agent's database file on disk. One test runs the daemon inside
// the test process instead, to inject commit failures into its buffer and to check that
// it leaves no goroutine behind.
//
// What they establish:
//
//   - a kill -9 at a random instant, repeated, loses no acknowledged reading and leaves a
//     database that passes bbolt's integrity check (durability_test.go);
//   - a full buffer evicts by its policy, stays within buffer.max_bytes, raises one
//     buffer_overflow alert and keeps acknowledging (fullbuffer_test.go);
//   - a failing store acknowledges nothing, while local alerting goes on
//     (storefailure_test.go);
//   - the CLI's commands and --json shapes against a running agent, and its one-line error
//     when no agent runs (cli_test.go);
//   - Mosquitto's clients publish to and subscribe from the agent (interop_test.go);
//   - SIGHUP reloads the class, hooks and probes under QoS 1 load: every acknowledged
//     reading is stored, no MQTT session drops, the new threshold and hook act, and a key
//     that needs a restart is named (reload_test.go);
//   - the agent's /metrics, scraped and read by Prometheus' own text parser
//     (metrics_test.go).
//
// Tests that need Mosquitto's clients skip without them, unless PH_REQUIRE_TOOLS=1, when
// they fail. The kill test runs 20 kill cycles, 3 with -short, or PH_E2E_KILL_CYCLES for a
// longer soak.
//
// Caveat: a kill -9 loses what the process holds, not what the kernel holds. These tests
// show that nothing is acknowledged before it is committed and that a commit cut short
// leaves a readable file; that the commit itself survives a power cut is shown by the
// power-loss test in e2e/ (powerloss_test.go), which drops unsynced writes under the agent.
package e2e

// Package cross runs the agent builds for the stations' ARM gateways (`make cross`:
// linux/arm64, and linux/arm for ARMv7 and ARMv6) under Debian's qemu-user-static, each on
// the oldest core of its kind (Cortex-A53, Cortex-A7, ARM1176), so CI knows the binaries
// the packages and images ship do run: --version, config check, a broker that takes QoS 1
// publishes, kill -9 and restart with every acknowledged reading still there, and the
// WQI calculator agreeing with this machine's build.
//
// The test runs when PH_CROSS_DIR names the directory of the builds (`make cross-smoke`
// sets it); without it, it is skipped.
package cross

// Package harness starts, queries and stops the programs a benchmark measures: the station
// agent (bin/ph-agent run, queried through `ph-agent status --json` and `queue --json` like
// a technician would), the cloud (bin/ph-cloud, migrated and given stations through its
// CLI, watched through /health), a throwaway PostgreSQL, Mosquitto as a reference broker,
// and the MQTT load generator (bin/ph-sim mqtt), whose JSON report it reads; Publish sends
// bulk MQTT messages of its own making.
//
// Every started program is a *Proc owned by the caller, who must call Stop (idempotent) on
// every path; on Linux the programs are also killed if the benchmark process dies, so no
// agent outlives a crashed run. Each program writes its output to a log file in the
// directory it was given, for the post-mortem of a failed run.
package harness

import (
	"bytes"
	"syscall"
	"time"

	"github.com/purehealth/purehealth/internal/testproc"
)

// StopGrace is how long Stop waits after SIGTERM before it kills the process.
const StopGrace = 15 * time.Second

// Proc is a started program (testproc's Logged), stopped with SIGTERM. Its methods are
// safe for concurrent use.
type Proc struct {
	*testproc.Logged
}

// start runs name with args, its stdout and stderr going to logPath.
func start(name, logPath string, args ...string) (*Proc, error) {
	l, err := testproc.StartLogged(name, logPath, nil, args...)
	if err != nil {
		return nil, err
	}
	return &Proc{l}, nil
}

// Stop sends SIGTERM, waits up to StopGrace for the process to exit, then kills it. It
// returns how the process ended: nil for exit status 0 after SIGTERM (a graceful
// shutdown), an error for anything else, including a process that had already died.
// Calling it again returns the same result.
func (p *Proc) Stop() error { return p.Logged.Stop(syscall.SIGTERM, StopGrace) }

// lastLine returns the last non-empty line of b.
func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, "\r\n ")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return bytes.TrimSpace(b)
}

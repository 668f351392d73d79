package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// AgentConfig is what a benchmark varies in the agent's configuration; everything else is
// the agent's default. Dir must exist; the agent's admin socket, configuration file, log
// and (unless Data says otherwise) data_dir all go in it.
type AgentConfig struct {
	Dir string
	// Data is data_dir; "" = <Dir>/data. A benchmark may put the buffer on a filesystem of
	// its own; the admin socket stays in Dir.
	Data    string
	Station string // station.id: the load generator must publish under the same id
	Listen  string // mqtt.listen, host:port
	// MaxBytes is buffer.max_bytes; 0 = 256 MiB, far more than a benchmark run stores, so
	// that eviction never runs during one.
	MaxBytes int64
	// UnsafeNoFsync sets buffer.unsafe_no_fsync, the benchmark-only switch that shows what
	// durability costs.
	UnsafeNoFsync bool
	LogLevel      string // log.level; "" = info, the agent's default
}

// DataDir is the agent's data_dir, where its buffer file lives.
func (c AgentConfig) DataDir() string {
	if c.Data != "" {
		return c.Data
	}
	return filepath.Join(c.Dir, "data")
}

// SocketPath is the agent's admin socket.
func (c AgentConfig) SocketPath() string { return filepath.Join(c.Dir, "admin.sock") }

// ConfigPath is where StartAgent writes the configuration.
func (c AgentConfig) ConfigPath() string { return filepath.Join(c.Dir, "agent.yaml") }

// YAML is the configuration file. Anonymous MQTT is allowed because the broker listens on
// the loopback interface of a benchmark machine; the wall clock is trusted as it is.
func (c AgentConfig) YAML() []byte {
	maxBytes := c.MaxBytes
	if maxBytes == 0 {
		maxBytes = 256 << 20
	}
	level := c.LogLevel
	if level == "" {
		level = "info"
	}
	return fmt.Appendf(nil, `# Written by the benchmark harness.
station: {id: %s, name: "benchmark", timezone: Asia/Kolkata, class: B}
data_dir: %s
admin_socket: %s
mqtt: {listen: %s, allow_anonymous: true}
buffer: {max_bytes: %d, unsafe_no_fsync: %t}
clock: {sync_check: none}
log: {level: %s}
`, strconv.Quote(c.Station), strconv.Quote(c.DataDir()), strconv.Quote(c.SocketPath()), strconv.Quote(c.Listen), maxBytes,
		c.UnsafeNoFsync, level)
}

// Agent is a running bin/ph-agent.
type Agent struct {
	*Proc
	bin    string
	config string
}

// StartAgent writes cfg's configuration and starts `bin run` with it, and returns once the
// agent answers `status` (it has opened its buffer and started its broker), or with an
// error holding the end of the agent's log. The caller must Stop the agent.
func StartAgent(ctx context.Context, bin string, cfg AgentConfig) (*Agent, error) {
	if err := os.MkdirAll(cfg.DataDir(), 0o750); err != nil {
		return nil, fmt.Errorf("agent data dir: %w", err)
	}
	if err := os.WriteFile(cfg.ConfigPath(), cfg.YAML(), 0o640); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	p, err := start(bin, filepath.Join(cfg.Dir, "agent.log"), "run", "--config", cfg.ConfigPath())
	if err != nil {
		return nil, err
	}
	a := &Agent{Proc: p, bin: bin, config: cfg.ConfigPath()}
	if err := a.waitReady(ctx, 30*time.Second); err != nil {
		return nil, errors.Join(err, a.Stop())
	}
	return a, nil
}

func (a *Agent) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		_, err := a.Status(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-a.Done():
			_, why := a.Exited()
			return fmt.Errorf("agent exited during start-up (%v); its log ends:\n%s", why, a.LogTail(15))
		case <-ctx.Done():
			return fmt.Errorf("agent not ready after %s (last status error: %w); its log ends:\n%s", limit, err, a.LogTail(15))
		case <-t.C:
		}
	}
}

// Status runs `ph-agent status --config FILE --json` against the running agent.
func (a *Agent) Status(ctx context.Context) (Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.bin, "status", "--config", a.config, "--json")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return Status{}, fmt.Errorf("ph-agent status: %w: %s", err, lastLine(ee.Stderr))
		}
		return Status{}, fmt.Errorf("ph-agent status: %w", err)
	}
	return ParseStatus(out)
}

// Status is the part of `ph-agent status --json` (design §4) a benchmark checks.
type Status struct {
	Version string            `json:"version"`
	Broker  BrokerStatus      `json:"broker"`
	Buffer  BufferStatus      `json:"buffer"`
	Ingest  IngestStatus      `json:"ingest"`
	Alerts  []json.RawMessage `json:"active_alerts"`
}

// BrokerStatus counts the embedded broker's traffic.
type BrokerStatus struct {
	Clients          int64            `json:"clients"`
	MessagesReceived int64            `json:"messages_received"`
	Rejects          map[string]int64 `json:"rejects"`
}

// BufferStatus describes the durable buffer.
type BufferStatus struct {
	UsedBytes   int64            `json:"used_bytes"`
	FileBytes   int64            `json:"file_bytes"`
	Readings    int64            `json:"readings"` // stored now
	Unforwarded int64            `json:"unforwarded"`
	Evicted     map[string]int64 `json:"evicted"`
	// Commits is the number of write transactions, when the agent reports it; readings per
	// commit is the group-commit factor that multiplies the disk's fsync rate.
	Commits *int64 `json:"commits,omitempty"`
}

// IngestStatus counts what the agent's pipeline did.
type IngestStatus struct {
	Accepted      int64 `json:"accepted"`
	Rejected      int64 `json:"rejected"`
	Bad           int64 `json:"bad"`
	Suspect       int64 `json:"suspect"`
	StoreFailures int64 `json:"store_failures"`
	StoreFailing  bool  `json:"store_failing"`
}

// ParseStatus reads the output of `ph-agent status --json`.
func ParseStatus(b []byte) (Status, error) {
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return Status{}, fmt.Errorf("read agent status: %w", err)
	}
	if s.Version == "" {
		return Status{}, errors.New("read agent status: no version: not the output of ph-agent status --json")
	}
	return s, nil
}

package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Uplink is the uplink section of a forwarding agent's configuration. Zero fields take
// the agent's defaults.
type Uplink struct {
	URL       string // the cloud's base URL
	TokenFile string
	// BackoffMax caps the wait between failed attempts: a benchmark that brings the cloud
	// up sets it low so that the agent notices at once.
	BackoffMax   time.Duration
	Interval     time.Duration
	BatchMax     int
	LiveReadings int
}

// YAML is the uplink section.
func (u Uplink) YAML() []byte {
	parts := []string{"url: " + strconv.Quote(u.URL), "token_file: " + strconv.Quote(u.TokenFile)}
	if u.BackoffMax > 0 {
		parts = append(parts, "backoff_max: "+u.BackoffMax.String())
	}
	if u.Interval > 0 {
		parts = append(parts, "interval: "+u.Interval.String())
	}
	if u.BatchMax > 0 {
		parts = append(parts, "batch_max: "+strconv.Itoa(u.BatchMax))
	}
	if u.LiveReadings > 0 {
		parts = append(parts, "live_readings: "+strconv.Itoa(u.LiveReadings))
	}
	return fmt.Appendf(nil, "uplink: {%s}\n", strings.Join(parts, ", "))
}

// StartForwardingAgent is StartAgent for an agent that forwards to a cloud through up. The
// cloud need not be running: the agent keeps what it receives until it is.
func StartForwardingAgent(ctx context.Context, bin string, cfg AgentConfig, up Uplink) (*Agent, error) {
	if err := os.MkdirAll(cfg.DataDir(), 0o750); err != nil {
		return nil, fmt.Errorf("agent data dir: %w", err)
	}
	conf := append(cfg.YAML(), up.YAML()...)
	if err := os.WriteFile(cfg.ConfigPath(), conf, 0o640); err != nil {
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

// Queue runs `ph-agent queue --config FILE --json` against the running agent.
func (a *Agent) Queue(ctx context.Context) (Queue, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, a.bin, "queue", "--config", a.config, "--json")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Queue{}, fmt.Errorf("ph-agent queue: %w: %s", err, lastLine(stderr.Bytes()))
	}
	return ParseQueue(out)
}

// Queue is the part of `ph-agent queue --json` (design §4) a benchmark reads.
type Queue struct {
	State        string `json:"state"`
	Backlog      int64  `json:"backlog"` // readings not yet in the cloud
	LastAckedSeq uint64 `json:"last_acked_seq"`
	LastError    string `json:"last_error"`
	Rejected     uint64 `json:"rejected"`
	BatchLimit   int    `json:"batch_limit"`
	Lanes        []Lane `json:"lanes"`
}

// Lane is one forwarded stream of the queue.
type Lane struct {
	Stream     string `json:"stream"`
	Backlog    int64  `json:"backlog"`
	Live       int64  `json:"live"`
	AckedAhead uint64 `json:"acked_ahead"`
	Cursor     uint64 `json:"cursor"`
	LastSeq    uint64 `json:"last_seq"`
}

// Lane returns the lane of stream, or false.
func (q Queue) Lane(stream string) (Lane, bool) {
	for _, l := range q.Lanes {
		if l.Stream == stream {
			return l, true
		}
	}
	return Lane{}, false
}

// ParseQueue reads the output of `ph-agent queue --json`.
func ParseQueue(b []byte) (Queue, error) {
	var q Queue
	if err := json.Unmarshal(b, &q); err != nil {
		return Queue{}, fmt.Errorf("read agent queue: %w", err)
	}
	if q.State == "" {
		return Queue{}, fmt.Errorf("read agent queue %q: no state: not the output of ph-agent queue --json", cut(bytes.TrimSpace(b), 200))
	}
	if q.Backlog < 0 {
		return Queue{}, fmt.Errorf("read agent queue: negative backlog %d", q.Backlog)
	}
	for _, l := range q.Lanes {
		if l.Backlog < 0 || l.Live < 0 || l.Cursor > l.LastSeq {
			return Queue{}, fmt.Errorf("read agent queue: lane %q is inconsistent (backlog %d, live %d, cursor %d past last seq %d)",
				l.Stream, l.Backlog, l.Live, l.Cursor, l.LastSeq)
		}
	}
	return q, nil
}

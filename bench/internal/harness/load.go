package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/purehealth/purehealth/internal/testproc"
)

// Load is one run of the MQTT load generator, `ph-sim mqtt`: Sensors connections (one
// simulated sensor each, MQTT 3.1.1), each publishing Count messages of one JSON reading on
// purehealth/<Station>/<param>, at Rate messages per second per sensor (0: as fast as the
// acknowledgements allow, with up to Inflight unacknowledged publishes per connection).
type Load struct {
	Broker   string // host:port
	Station  string
	Sensors  int
	Rate     float64
	Count    int // per sensor; must be positive, so the run ends by itself
	QoS      int
	Inflight int // 0 = ph-sim's default
	Seed     int64
}

// Args is the ph-sim command line.
func (l Load) Args() []string {
	args := []string{"mqtt", "--broker", l.Broker, "--station", l.Station,
		"--sensors", strconv.Itoa(l.Sensors), "--rate", strconv.FormatFloat(l.Rate, 'f', -1, 64),
		"--count", strconv.Itoa(l.Count), "--qos", strconv.Itoa(l.QoS), "--report", "json"}
	if l.Inflight > 0 {
		args = append(args, "--inflight", strconv.Itoa(l.Inflight))
	}
	if l.Seed != 0 {
		args = append(args, "--seed", strconv.FormatInt(l.Seed, 10))
	}
	return args
}

// Report is the JSON report ph-sim prints as the last line of its output. For QoS ≥ 1,
// Sent = Acked + Failed.
type Report struct {
	Station    string   `json:"station"`
	Protocol   int      `json:"protocol"`
	QoS        int      `json:"qos"`
	Sensors    int      `json:"sensors"`
	Sent       int64    `json:"sent"`
	Acked      int64    `json:"acked"`
	Failed     int64    `json:"failed"`
	Rejected   int64    `json:"rejected"`
	Readings   int64    `json:"readings"`
	Reconnects int64    `json:"reconnects"`
	Seconds    float64  `json:"seconds"`    // first publish to last outcome
	RatePerS   float64  `json:"rate_per_s"` // acknowledged publishes per second (QoS ≥ 1)
	LatencyMS  *Latency `json:"latency_ms"`
	FirstError string   `json:"first_error"`
}

// Latency is publish-to-acknowledgement time, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// ParseReport reads the report from ph-sim's standard output: its last non-empty line.
func ParseReport(stdout []byte) (Report, error) {
	line := lastLine(stdout)
	if len(line) == 0 {
		return Report{}, errors.New("read ph-sim report: no output")
	}
	var r Report
	if err := json.Unmarshal(line, &r); err != nil {
		return Report{}, fmt.Errorf("read ph-sim report %q: %w", cut(line, 200), err)
	}
	if r.Sensors <= 0 || r.Sent < 0 || r.Acked < 0 || r.Failed < 0 || r.Seconds < 0 {
		return Report{}, fmt.Errorf("read ph-sim report %q: not a report (no sensors, or negative counts)", cut(line, 200))
	}
	return r, nil
}

func cut(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// LoadResult is a finished load run.
type LoadResult struct {
	Report Report
	CPU    time.Duration // user + system time ph-sim used
	Wall   time.Duration // from start to exit, connections included
}

// RunLoad runs `bin` (ph-sim) with l to the end and returns its report; its standard error
// goes to logPath. When ctx ends first, ph-sim gets SIGINT (it stops publishing, waits
// briefly for acknowledgements and prints its report) and RunLoad returns ctx's error.
func RunLoad(ctx context.Context, bin string, l Load, logPath string) (res LoadResult, err error) {
	if l.Count <= 0 {
		return LoadResult{}, fmt.Errorf("load: count %d must be positive", l.Count)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return LoadResult{}, fmt.Errorf("create ph-sim log: %w", err)
	}
	defer func() {
		if cerr := logf.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("ph-sim log: %w", cerr)
		}
	}()
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, l.Args()...)
	cmd.Stdout, cmd.Stderr = &stdout, logf
	testproc.DieWithParent(cmd)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 30 * time.Second
	start := time.Now()
	runErr := cmd.Run()
	res.Wall = time.Since(start)
	if cmd.ProcessState != nil {
		res.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if runErr != nil {
		return res, fmt.Errorf("ph-sim %v: %w; its log ends:\n%s", l.Args(), runErr, testproc.Tail(logPath, 10))
	}
	res.Report, err = ParseReport(stdout.Bytes())
	return res, err
}

package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/testproc"
)

// station is the id every test registers in the cloud and runs its agent as.
const station = "MH-PUNE-001"

// testDir returns a private directory for the test's files. It comes from os.MkdirTemp
// rather than t.TempDir: a unix socket path must stay under about 100 bytes, and t.TempDir
// embeds the test's name.
func testDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "phs")
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// writeTemplate fills testdata/name with data into path.
func writeTemplate(t *testing.T, name, path string, data any) {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join("testdata", name))
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, tmpl.Execute(&buf, data))
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
}

// cloud is a ph-cloud installation: a migrated database with the test station registered
// and a configuration; serve runs it.
type cloud struct {
	Listen      string
	DatabaseURL string
	Config      string     // path of the configuration file
	Token       string     // the station's token, as `station add` printed it
	TokenFile   string     // the token, in a file for the agent's uplink.token_file
	Sources     *upstreams // the upstream sources it reads, if any (readFrom)
	serve       *testproc.Daemon
}

// newCloud writes a configuration for a ph-cloud on a free port over the database at
// dbURL, migrates the database and registers the station with the CLI, as an operator
// would. It does not start the service.
func newCloud(t *testing.T, dbURL string) *cloud {
	t.Helper()
	dir := testDir(t)
	c := &cloud{
		Listen: testproc.FreeAddr(t, "tcp"), DatabaseURL: dbURL,
		Config: filepath.Join(dir, "cloud.yaml"), TokenFile: filepath.Join(dir, "token"),
	}
	writeTemplate(t, "cloud.yaml.tmpl", c.Config, c)
	out := mustCmd(t, cloudBin(t), "migrate", "--config", c.Config)
	require.Contains(t, out, "schema:", "ph-cloud migrate printed no schema line")
	out = mustCmd(t, cloudBin(t), "station", "add", station, "--name", "Mula-Mutha at Sangam",
		"--class", "B", "--config", c.Config)
	c.Token = strings.TrimSpace(out)
	require.NotEmpty(t, c.Token, "ph-cloud station add printed no token")
	require.NotContains(t, c.Token, "\n", "ph-cloud station add must print the token alone")
	require.NoError(t, os.WriteFile(c.TokenFile, []byte(c.Token+"\n"), 0o600))
	c.serve = testproc.NewDaemon(t, testproc.DaemonOptions{
		Name: "ph-cloud", Path: cloudBin(t), Args: []string{"serve", "--config", c.Config},
		Log: filepath.Join(dir, "cloud.log"), Guard: guard,
		Ready: func(ctx context.Context) error {
			code, body, err := c.health(ctx)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("/health answered %d: %s", code, body)
			}
			return err
		},
	})
	return c
}

// URL is the service's base URL.
func (c *cloud) URL() string { return "http://" + c.Listen }

// health asks GET /health.
func (c *cloud) health(ctx context.Context) (code int, body string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL()+"/health", nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// ingestStats is the ingest part of /health: what this ph-cloud process did since it
// started.
type ingestStats struct {
	Batches     int64            `json:"batches"`
	NewReadings int64            `json:"new_readings"`
	Duplicates  int64            `json:"duplicates"`
	Refused     map[string]int64 `json:"refused"`
}

// stats reads the service's ingest counters from /health.
func (c *cloud) stats(t *testing.T) ingestStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	code, body, err := c.health(ctx)
	require.NoError(t, err, "GET /health")
	require.Equal(t, http.StatusOK, code, "GET /health: %s", body)
	var h struct {
		Ingest ingestStats `json:"ingest"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &h), "/health body %s", body)
	return h.Ingest
}

// waitHealth polls /health until it answers want.
func (c *cloud) waitHealth(t *testing.T, want int, within time.Duration) {
	t.Helper()
	var (
		code int
		body string
		err  error
	)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		code, body, err = c.health(ctx)
		cancel()
		if err == nil && code == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("ph-cloud /health: want %d within %v, last answer %d %s (err %v)", want, within, code, body, err)
}

// agent is one ph-agent daemon with its configuration and files.
type agent struct {
	Station        string
	DataDir        string
	Socket         string
	Listen         string // MQTT, host:port
	UplinkURL      string
	TokenFile      string
	BatchMax       int
	RequestTimeout string
	SyncFile       string
	Horizon        string
	HealthInterval string
	Config         string
	bin            string // ph-agent
	*testproc.Daemon
}

// agentOptions vary an agent's uplink and where it keeps its buffer.
type agentOptions struct {
	BatchMax       int           // uplink.batch_max, default 500
	RequestTimeout time.Duration // uplink.request_timeout, default 30s
	DataDir        string        // data_dir, default a directory of the agent's own
	// SyncFile, when set, makes the agent trust its clock only while this file exists
	// (clock.sync_check: file), as systemd-timesyncd's marker says NTP has synced.
	SyncFile string
	// Horizon, when set, is how old a reading's own timestamp may be and still count as
	// current: validation.max_past and the WQI freshness of every index parameter. A test
	// whose devices send times days in the past sets it, or those readings are graded
	// suspect and never feed the index.
	Horizon time.Duration
	// HealthInterval, when set, is uplink.health_interval (default a minute).
	HealthInterval time.Duration
}

// newAgent writes the configuration of an agent forwarding to uplinkURL with the token in
// tokenFile. It does not start it.
func newAgent(t *testing.T, uplinkURL, tokenFile string, o agentOptions) *agent {
	t.Helper()
	dir := testDir(t)
	a := &agent{
		Station: station, DataDir: cmp.Or(o.DataDir, filepath.Join(dir, "data")), Socket: filepath.Join(dir, "admin.sock"),
		Listen: testproc.FreeAddr(t, "tcp"), UplinkURL: uplinkURL, TokenFile: tokenFile,
		BatchMax: cmp.Or(o.BatchMax, 500), RequestTimeout: cmp.Or(o.RequestTimeout, 30*time.Second).String(),
		SyncFile: o.SyncFile, Config: filepath.Join(dir, "agent.yaml"), bin: agentBin(t),
	}
	if o.Horizon > 0 {
		a.Horizon = o.Horizon.String()
	}
	if o.HealthInterval > 0 {
		a.HealthInterval = o.HealthInterval.String()
	}
	writeTemplate(t, "agent.yaml.tmpl", a.Config, a)
	a.Daemon = testproc.NewDaemon(t, testproc.DaemonOptions{
		Name: "ph-agent", Path: a.bin, Args: []string{"run", "--config", a.Config},
		Log: filepath.Join(dir, "agent.log"), Guard: guard, Ready: a.ready,
	})
	return a
}

// ready: the admin API answers (through the CLI, as a technician would ask) and the
// broker accepts connections.
func (a *agent) ready(ctx context.Context) error {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", a.Listen)
	if err != nil {
		return err
	}
	c.Close()
	res, err := a.cli(ctx, "status", "--json")
	if err != nil {
		return err
	}
	if res.Code != 0 {
		return fmt.Errorf("ph-agent status exited %d: %s", res.Code, res.Stderr)
	}
	return nil
}

// cli runs a ph-agent command against this agent without failing the test, for polls.
func (a *agent) cli(ctx context.Context, args ...string) (testproc.Result, error) {
	return testproc.Exec(ctx, a.bin, append(args, "--config", a.Config)...)
}

// Topic is purehealth/<station>/<leaf>.
func (a *agent) Topic(leaf string) string { return "purehealth/" + a.Station + "/" + leaf }

// queue is `ph-agent queue --json`.
type queue struct {
	State               string `json:"state"`
	Backlog             int    `json:"backlog"`
	LastAckedSeq        uint64 `json:"last_acked_seq"`
	LastError           string `json:"last_error"`
	ConsecutiveFailures int    `json:"consecutive_failures"`
	Rejected            uint64 `json:"rejected"`
	Lanes               []struct {
		Stream     string `json:"stream"`
		Backlog    int    `json:"backlog"`
		Live       int    `json:"live"`
		AckedAhead uint64 `json:"acked_ahead"`
		Cursor     uint64 `json:"cursor"`
		LastSeq    uint64 `json:"last_seq"`
	} `json:"lanes"`
}

// lastSeq is the newest seq the agent stored in stream.
func (q queue) lastSeq(stream string) uint64 {
	for _, l := range q.Lanes {
		if l.Stream == stream {
			return l.LastSeq
		}
	}
	return 0
}

// drained: nothing waits in any stream and every cursor stands at its stream's end.
func (q queue) drained() bool {
	if q.Backlog != 0 || len(q.Lanes) == 0 {
		return false
	}
	for _, l := range q.Lanes {
		if l.Backlog != 0 || l.Cursor != l.LastSeq {
			return false
		}
	}
	return true
}

func (q queue) String() string {
	b, _ := json.Marshal(q)
	return string(b)
}

// queue asks the running agent for its queue.
func (a *agent) queue(t *testing.T) queue {
	t.Helper()
	var q queue
	require.NoError(t, json.Unmarshal([]byte(mustCmd(t, a.bin, "queue", "--json", "--config", a.Config)), &q))
	return q
}

// waitDrained polls `ph-agent queue --json` until everything the agent stored has been
// acknowledged by the cloud, and returns the final queue. On failure the message includes
// what cloudState says about the cloud's side.
func (a *agent) waitDrained(t *testing.T, cloudState func() string) queue {
	t.Helper()
	deadline := time.Now().Add(drainGuard)
	var q queue
	for {
		q = a.queue(t)
		if q.drained() && q.LastAckedSeq == q.lastSeq("readings") {
			return q
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's queue did not drain within %v: want every lane at backlog 0 with its cursor at its last seq; last `ph-agent queue --json`: %s; cloud: %s",
				drainGuard, q, cloudState())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// agentReading is one entry of `ph-agent readings --json`.
type agentReading struct {
	Seq   uint64    `json:"seq"`
	Time  time.Time `json:"time"`
	Param string    `json:"param"`
	Value float64   `json:"value"`
}

// readings returns every reading the agent holds, newest first.
func (a *agent) readings(t *testing.T) []agentReading {
	t.Helper()
	var out struct {
		Readings []agentReading `json:"readings"`
	}
	require.NoError(t, json.Unmarshal([]byte(mustCmd(t, a.bin, "readings", "--limit", "100000", "--json",
		"--config", a.Config)), &out))
	return out.Readings
}

// agentAlert is one entry of `ph-agent alerts --all --json`.
type agentAlert struct {
	ID             uint64     `json:"id"`
	Rule           string     `json:"rule"`
	Param          string     `json:"param"`
	State          string     `json:"state"`
	AcknowledgedBy string     `json:"acknowledged_by"`
	OpenedAt       time.Time  `json:"opened_at"`
	ResolvedAt     *time.Time `json:"resolved_at"`
}

// alerts returns every alert the agent knows, resolved ones included.
func (a *agent) alerts(t *testing.T) []agentAlert {
	t.Helper()
	var out struct {
		Alerts []agentAlert `json:"alerts"`
	}
	require.NoError(t, json.Unmarshal([]byte(mustCmd(t, a.bin, "alerts", "--all", "--json", "--config", a.Config)), &out))
	return out.Alerts
}

// waitQueue polls `ph-agent queue --json` until ok accepts it, and returns it.
func (a *agent) waitQueue(t *testing.T, what string, ok func(queue) bool) queue {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		q := a.queue(t)
		if ok(q) {
			return q
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent queue: want %s within %v; last `ph-agent queue --json`: %s", what, guard, q)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

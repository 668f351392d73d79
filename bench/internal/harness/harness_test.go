package harness

import (
	"cmp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/testproc"
)

const reportLine = `{"station":"MH-PUNE-001","protocol":4,"qos":1,"sensors":200,"batch":false,"sent":20000,"acked":19990,"failed":10,"rejected":0,"readings":20000,"garbage":0,"dropouts":0,"reconnects":1,"seconds":3.92,"rate_per_s":5101.6,"latency_ms":{"p50":1523.712,"p90":2523.136,"p99":3112.96,"max":3756.038},"first_error":"connection lost before Publish completed"}`

// parseCase is one input of a parser and what it must give: want, or an error.
type parseCase[T any] struct {
	name    string // the subtest's name; the input itself when empty
	in      string
	want    T
	wantErr bool
}

// checkParse runs parse on the input of each case, as a subtest.
func checkParse[T any](t *testing.T, tests []parseCase[T], parse func(string) (T, error)) {
	t.Helper()
	for _, tt := range tests {
		t.Run(cmp.Or(tt.name, tt.in), func(t *testing.T) {
			got, err := parse(tt.in)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseReport(t *testing.T) {
	tests := []parseCase[Report]{
		{
			name: "last line after other output",
			in:   "connected\n" + reportLine + "\n\n",
			want: Report{Station: "MH-PUNE-001", Protocol: 4, QoS: 1, Sensors: 200, Sent: 20000, Acked: 19990,
				Failed: 10, Readings: 20000, Reconnects: 1, Seconds: 3.92, RatePerS: 5101.6,
				LatencyMS:  &Latency{P50: 1523.712, P90: 2523.136, P99: 3112.96, Max: 3756.038},
				FirstError: "connection lost before Publish completed"},
		},
		{
			name: "QoS 0 has no latency",
			in:   `{"sensors":1,"qos":0,"sent":5,"acked":0,"failed":0,"seconds":1,"rate_per_s":5,"latency_ms":null}`,
			want: Report{Sensors: 1, Sent: 5, Seconds: 1, RatePerS: 5},
		},
		{name: "no output", in: "\n", wantErr: true},
		{name: "text report", in: "MH-PUNE-001: 1 sensor(s), MQTT 3.1.1 QoS 1: sent 5, acked 5", wantErr: true},
		{name: "JSON that is not a report", in: `{"readings":[]}`, wantErr: true},
		{name: "negative count", in: `{"sensors":1,"sent":-1}`, wantErr: true},
	}
	checkParse(t, tests, func(s string) (Report, error) { return ParseReport([]byte(s)) })
}

func FuzzParseReport(f *testing.F) {
	f.Add(reportLine)
	f.Add("x\n{\"sensors\":1}\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReport([]byte(s))
		if err != nil {
			return
		}
		assert.Positive(t, r.Sensors)
		assert.GreaterOrEqual(t, r.Sent, int64(0))
	})
}

const statusJSON = `{"station":"MH-PUNE-001","version":"8cdbde1","broker":{"listen":"127.0.0.1:18999","clients":0,"messages_received":20000,"rejects":{"acl":0}},
"buffer":{"path":"/x/agent.db","used_bytes":12288,"file_bytes":8413184,"max_bytes":268435456,"readings":20000,"unforwarded":20000,"autonomy_hours":null,"evicted":{"forwarded":0}},
"ingest":{"accepted":20000,"rejected":0,"bad":0,"suspect":5,"store_failures":0,"store_failing":false,"rate_per_s":319.8},
"clock":{"synced":true},"wqi":null,"active_alerts":[{"id":1},{"id":2}]}`

func TestParseStatus(t *testing.T) {
	s, err := ParseStatus([]byte(statusJSON))
	require.NoError(t, err)
	assert.Equal(t, "8cdbde1", s.Version)
	assert.Equal(t, int64(20000), s.Broker.MessagesReceived)
	assert.Equal(t, int64(20000), s.Buffer.Readings)
	assert.Equal(t, int64(8413184), s.Buffer.FileBytes)
	assert.Nil(t, s.Buffer.Commits, "this agent does not report commits")
	assert.Equal(t, int64(20000), s.Ingest.Accepted)
	assert.Equal(t, int64(5), s.Ingest.Suspect)
	assert.Len(t, s.Alerts, 2)

	withCommits := strings.Replace(statusJSON, `"readings":20000,`, `"readings":20000,"commits":500,`, 1)
	s, err = ParseStatus([]byte(withCommits))
	require.NoError(t, err)
	require.NotNil(t, s.Buffer.Commits)
	assert.Equal(t, int64(500), *s.Buffer.Commits)

	for _, bad := range []string{"", "agent not running", `{"station":"x"}`, `[1]`} {
		_, err := ParseStatus([]byte(bad))
		assert.Error(t, err, "input %q", bad)
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add(statusJSON)
	f.Add(`{"version":"v"}`)
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseStatus([]byte(s))
		if err == nil {
			assert.NotEmpty(t, st.Version)
		}
	})
}

func TestLoadArgs(t *testing.T) {
	tests := []struct {
		name string
		load Load
		want []string
	}{
		{
			name: "as fast as acks allow",
			load: Load{Broker: "127.0.0.1:1883", Station: "MH-PUNE-001", Sensors: 200, Rate: 0, Count: 100, QoS: 1, Inflight: 16, Seed: 1},
			want: []string{"mqtt", "--broker", "127.0.0.1:1883", "--station", "MH-PUNE-001", "--sensors", "200",
				"--rate", "0", "--count", "100", "--qos", "1", "--report", "json", "--inflight", "16", "--seed", "1"},
		},
		{
			name: "paced, defaults left out",
			load: Load{Broker: "h:1", Station: "S", Sensors: 2, Rate: 0.5, Count: 3, QoS: 2},
			want: []string{"mqtt", "--broker", "h:1", "--station", "S", "--sensors", "2",
				"--rate", "0.5", "--count", "3", "--qos", "2", "--report", "json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.load.Args())
		})
	}
}

// binDir is the repository's bin/, where `make build` puts the programs.
func binDir(t *testing.T, names ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real programs")
	}
	dir, err := filepath.Abs("../../../bin")
	require.NoError(t, err)
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Skipf("%s not built (make build): %v", n, err)
		}
	}
	return dir
}

func TestAgentConfigIsValid(t *testing.T) {
	bin := binDir(t, "ph-agent")
	for _, noFsync := range []bool{false, true} {
		cfg := AgentConfig{Dir: t.TempDir(), Station: "MH-PUNE-001", Listen: "127.0.0.1:1", UnsafeNoFsync: noFsync}
		require.NoError(t, os.WriteFile(cfg.ConfigPath(), cfg.YAML(), 0o600))
		out, err := exec.Command(filepath.Join(bin, "ph-agent"), "config", "check", cfg.ConfigPath()).CombinedOutput()
		assert.NoError(t, err, "ph-agent config check says:\n%s", out)
	}
}

// TestAgentUnderLoad runs the real agent and load generator briefly and checks that the
// agent's own counters agree with the load generator's report.
func TestAgentUnderLoad(t *testing.T) {
	bin := binDir(t, "ph-agent", "ph-sim")
	addr, err := testproc.FreePort("tcp")
	require.NoError(t, err)
	cfg := AgentConfig{Dir: t.TempDir(), Station: "MH-PUNE-001", Listen: addr}
	agent, err := StartAgent(t.Context(), filepath.Join(bin, "ph-agent"), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, agent.Stop(), "the agent stops gracefully") })

	load := Load{Broker: addr, Station: cfg.Station, Sensors: 3, Rate: 0, Count: 7, QoS: 1, Inflight: 2}
	res, err := RunLoad(t.Context(), filepath.Join(bin, "ph-sim"), load, filepath.Join(cfg.Dir, "sim.log"))
	require.NoError(t, err)
	assert.Equal(t, int64(21), res.Report.Sent)
	assert.Equal(t, int64(21), res.Report.Acked)
	assert.Zero(t, res.Report.Failed)
	assert.Positive(t, res.CPU)

	st, err := agent.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, int64(21), st.Buffer.Readings, "every acknowledged reading is stored")
	assert.Equal(t, int64(21), st.Ingest.Accepted)
	assert.Equal(t, int64(21), st.Broker.MessagesReceived)
}

func TestStartAgentFailure(t *testing.T) {
	bin := binDir(t, "ph-agent")
	cfg := AgentConfig{Dir: t.TempDir(), Station: "bad station id!", Listen: "127.0.0.1:1"}
	_, err := StartAgent(t.Context(), filepath.Join(bin, "ph-agent"), cfg)
	require.Error(t, err)
	assert.ErrorContains(t, err, "station.id", "the error shows the agent's own complaint")
}

func TestMosquitto(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real programs")
	}
	const bin = "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		t.Skip("mosquitto not installed")
	}
	v, err := MosquittoVersion(t.Context(), bin)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(v, "mosquitto version "), "got %q", v)

	m, err := StartMosquitto(t.Context(), bin, t.TempDir())
	require.NoError(t, err)
	assert.NotEmpty(t, m.Addr)
	assert.NoError(t, m.Stop(), "mosquitto exits 0 on SIGTERM")

	_, err = MosquittoVersion(t.Context(), "/nonexistent/mosquitto")
	assert.Error(t, err)
}

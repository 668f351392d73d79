package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/firmware-sim/internal/brokertest"
)

// runCLI runs ph-sim in-process and returns its stdout, stderr and error.
func runCLI(ctx context.Context, args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	err := Run(ctx, args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestHelpListsCommands(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, _, err := runCLI(t.Context(), args...)
			require.NoError(t, err)
			assert.Contains(t, out, "mqtt ")
			assert.Contains(t, out, "version ")
			assert.NotContains(t, out, "completion", "no shell-completion command")
		})
	}
	t.Run("mqtt --help", func(t *testing.T) {
		out, _, err := runCLI(t.Context(), "mqtt", "--help")
		require.NoError(t, err)
		for _, flag := range []string{"--broker", "--station", "--sensors", "--rate", "--count",
			"--qos", "--username", "--password", "--protocol", "--params", "--batch", "--fault",
			"--seed", "--report", "--inflight", "--grace"} {
			assert.Contains(t, out, flag)
		}
	})
}

func TestVersion(t *testing.T) {
	out, _, err := runCLI(t.Context(), "version")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "ph-sim "), out)
}

func TestBadCommandLines(t *testing.T) {
	with := func(extra ...string) []string {
		return append([]string{"mqtt", "--broker", "127.0.0.1:1883", "--station", "MH-PUNE-001"}, extra...)
	}
	tests := []struct {
		name string
		args []string
		want []string // substrings of the error
	}{
		{"unknown command", []string{"serial-port"}, []string{`unknown command "serial-port" for "ph-sim"`, "(see 'ph-sim --help')"}},
		{"unknown flag", with("--bogus"), []string{"unknown flag: --bogus", "(see 'ph-sim mqtt --help')"}},
		{"not a number", with("--rate", "fast"), []string{`invalid argument "fast" for "--rate" flag`}},
		{"stray argument", with("extra"), []string{`unknown command "extra" for "ph-sim mqtt"`}},
		{"missing broker and station", []string{"mqtt"}, []string{"broker is required", "station is required"}},
		{"all problems at once", with("--qos", "3", "--sensors", "0", "--rate", "-1", "--params", "ph,salinity,ph",
			"--fault", "unplug", "--report", "xml", "--protocol", "3", "--count", "-2"), []string{
			"invalid qos 3: must be 0, 1 or 2", "invalid sensors 0: must be at least 1",
			"invalid rate -1", `invalid params: unknown parameter: "salinity"`, "invalid params: ph listed twice",
			`invalid fault: unknown fault "unplug"`, `invalid report "xml": want text or json`,
			"invalid protocol 3", "invalid count -2"}},
		{"broker scheme", []string{"mqtt", "--broker", "ssl://h:8883", "--station", "S"}, []string{
			`broker "ssl://h:8883": scheme ssl is not supported`}},
		{"log level", append([]string{"--log-level", "loud"}, with()...), []string{`invalid --log-level "loud"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runCLI(t.Context(), tt.args...)
			require.Error(t, err)
			assert.Equal(t, ExitUsage, ExitCode(err), "usage errors exit 2: %v", err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "\n", "one line")
			assert.Empty(t, out, "nothing on stdout")
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	for _, protocol := range []string{"4", "5"} {
		t.Run("protocol "+protocol, func(t *testing.T) {
			out, _, err := runCLI(t.Context(), "mqtt", "--broker", addr, "--station", "MH-PUNE-001",
				"--protocol", protocol, "--count", "1")
			require.Error(t, err)
			assert.EqualError(t, err, "connect "+addr+": connection refused")
			assert.Equal(t, ExitConnect, ExitCode(err))
			assert.Empty(t, out)
		})
	}
}

// The command against a real broker: topics, payloads, counts and the JSON report.
func TestMQTTEndToEnd(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		messages int
		check    func(t *testing.T, m brokertest.Message)
	}{
		{"per parameter", []string{"--sensors", "3", "--count", "4", "--qos", "1", "--params", "ph,DO,temperature"}, 12,
			func(t *testing.T, m brokertest.Message) {
				assert.Contains(t, []string{"purehealth/MH-PUNE-001/ph", "purehealth/MH-PUNE-001/do",
					"purehealth/MH-PUNE-001/temp"}, m.Topic)
				assert.Equal(t, byte(1), m.QoS)
				var p map[string]any
				require.NoError(t, json.Unmarshal(m.Payload, &p))
				assert.ElementsMatch(t, []string{"value", "unit", "timestamp", "sensor"}, keys(p))
			}},
		{"batch over MQTT 5 at QoS 2", []string{"--sensors", "2", "--count", "3", "--qos", "2", "--batch", "--protocol", "5"}, 6,
			func(t *testing.T, m brokertest.Message) {
				assert.Equal(t, "purehealth/MH-PUNE-001/readings", m.Topic)
				assert.Equal(t, byte(2), m.QoS)
				assert.Equal(t, byte(5), m.Protocol)
				var arr []map[string]any
				require.NoError(t, json.Unmarshal(m.Payload, &arr))
				assert.Len(t, arr, 8, "all eight default parameters")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := brokertest.Start(t, brokertest.Options{})
			args := append([]string{"mqtt", "--broker", b.Addr, "--station", "MH-PUNE-001",
				"--rate", "0", "--report", "json", "--log-level", "warn"}, tt.args...)
			out, stderr, err := runCLI(t.Context(), args...)
			require.NoError(t, err, "stderr: %s", stderr)

			lines := strings.Split(strings.TrimSpace(out), "\n")
			var rep struct {
				Sent, Acked, Failed int64
				Seconds             *float64
				RatePerS            *float64 `json:"rate_per_s"`
				LatencyMS           *struct {
					P50, P90, P99 *float64
				} `json:"latency_ms"`
			}
			dec := json.NewDecoder(strings.NewReader(lines[len(lines)-1]))
			require.NoError(t, dec.Decode(&rep), "last line is the JSON report: %s", out)
			assert.Equal(t, int64(tt.messages), rep.Sent)
			assert.Equal(t, int64(tt.messages), rep.Acked)
			assert.Zero(t, rep.Failed)
			require.NotNil(t, rep.Seconds)
			require.NotNil(t, rep.RatePerS)
			require.NotNil(t, rep.LatencyMS)
			require.NotNil(t, rep.LatencyMS.P50)
			require.NotNil(t, rep.LatencyMS.P90)
			require.NotNil(t, rep.LatencyMS.P99)

			msgs := b.Messages()
			require.Len(t, msgs, tt.messages)
			for _, m := range msgs {
				tt.check(t, m)
			}
		})
	}
}

func TestTextReport(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	out, _, err := runCLI(t.Context(), "mqtt", "--broker", b.Addr, "--station", "MH-SANGLI-001",
		"--count", "2", "--rate", "0", "--log-level", "error")
	require.NoError(t, err)
	assert.Regexp(t, `^MH-SANGLI-001: 1 sensor\(s\), MQTT 3\.1\.1 QoS 1: sent 2, acked 2, failed 0 in [0-9.]+s \([0-9.]+/s\); ack latency p50 `, out)
}

// An interrupt (SIGINT/SIGTERM in main) ends an endless run normally, with the report.
func TestInterruptIsACleanStop(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		out string
		err error
		wg  sync.WaitGroup
	)
	wg.Go(func() {
		out, _, err = runCLI(ctx, "mqtt", "--broker", b.Addr, "--station", "MH-PUNE-001",
			"--sensors", "2", "--rate", "0", "--report", "json", "--log-level", "error")
	})
	wait, stop := context.WithTimeout(t.Context(), 20*time.Second)
	defer stop()
	require.NoError(t, b.WaitFor(wait, 100))
	cancel()
	wg.Wait()
	require.NoError(t, err)
	assert.Equal(t, ExitOK, ExitCode(err))
	var rep struct{ Sent, Acked, Failed int64 }
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(out)), &rep), out)
	assert.GreaterOrEqual(t, rep.Sent, int64(100))
	assert.Equal(t, rep.Sent, rep.Acked+rep.Failed)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

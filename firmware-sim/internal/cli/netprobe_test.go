package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startServing runs a serving command in-process and returns the URLs it printed; the
// command is stopped through its context when the test ends and must return nil.
func startServing(t *testing.T, n int, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		err := Run(ctx, args, pw, &stderr)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	var urls []string
	for len(urls) < n && sc.Scan() {
		urls = append(urls, sc.Text())
	}
	require.Len(t, urls, n, "URLs on stdout; stderr: %s", stderr.String())
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, pr.Close()) // nothing more is read: a late write fails instead of blocking
		assert.NoError(t, <-done, "a stop through the context is not an error")
	})
	return urls
}

func TestCoAPCommandServes(t *testing.T) {
	urls := startServing(t, 2, "coap", "--listen", "127.0.0.1:0", "--params", "do,Temperature", "--log-level", "error")
	require.True(t, strings.HasPrefix(urls[0], "coap://127.0.0.1:"), urls[0])
	require.True(t, strings.HasSuffix(urls[1], "/temp"), "canonical names in the URLs: %s", urls[1])

	stop := make(chan struct{})
	defer close(stop)
	addr := strings.TrimSuffix(strings.TrimPrefix(urls[0], "coap://"), "/do")
	cc, err := udp.Dial(addr, options.WithPeriodicRunner(periodic.New(stop, 100*time.Millisecond)),
		options.WithErrors(func(error) {}))
	require.NoError(t, err)
	defer func() {
		assert.NoError(t, cc.Close())
		<-cc.Done()
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := cc.Get(ctx, "/do")
	require.NoError(t, err)
	defer cc.ReleaseMessage(resp)
	assert.Equal(t, codes.Content, resp.Code())
	body, err := resp.ReadBody()
	require.NoError(t, err)
	var r struct{ Unit string }
	require.NoError(t, json.Unmarshal(body, &r), "%q", body)
	assert.Equal(t, "mg/L", r.Unit)
}

func TestHTTPCommandServes(t *testing.T) {
	urls := startServing(t, 1, "http", "--listen", "127.0.0.1:0", "--params", "turbidity", "--format", "text",
		"--log-level", "error")
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, urls[0], nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
}

func TestNetworkProbeCommandLines(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
		code int
	}{
		{"coap: every problem at once", []string{"coap", "--params", "do,salinity", "--format", "xml",
			"--fault", "slow", "--fault-rate", "2", "--interval", "1ms", "--listen", "nope"}, []string{
			`invalid params: unknown parameter: "salinity"`, `invalid format "xml": want json or text`,
			`invalid fault: unknown fault "slow"`, "invalid fault-rate 2", "invalid interval 1ms",
			`invalid listen "nope": want host:port`, "(see 'ph-sim coap --help')"}, ExitUsage},
		{"http: faults and slow", []string{"http", "--fault", "unplug", "--slow", "-1s"}, []string{
			`invalid fault: unknown fault "unplug"`, "invalid slow -1s: must not be negative",
			"(see 'ph-sim http --help')"}, ExitUsage},
		{"coap: stray argument", []string{"coap", "extra"}, []string{`unknown command "extra" for "ph-sim coap"`}, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCLI(t.Context(), tt.args...)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Equal(t, tt.code, ExitCode(err))
		})
	}
}

func TestListenFailureIsReported(t *testing.T) {
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer busy.Close()
	_, _, err = runCLI(t.Context(), "coap", "--listen", busy.LocalAddr().String(), "--log-level", "error")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listen: ")
	assert.Contains(t, err.Error(), "address already in use")
	assert.Equal(t, ExitFailure, ExitCode(err))
}

func TestNetworkProbeHelp(t *testing.T) {
	out, _, err := runCLI(t.Context(), "--help")
	require.NoError(t, err)
	assert.Contains(t, out, "coap ")
	assert.Contains(t, out, "http ")
	for cmd, flags := range map[string][]string{
		"coap": {"--listen", "--params", "--station", "--seed", "--format", "--fault", "--fault-rate", "--interval"},
		"http": {"--listen", "--params", "--station", "--seed", "--format", "--fault", "--fault-rate", "--slow"},
	} {
		out, _, err := runCLI(t.Context(), cmd, "--help")
		require.NoError(t, err)
		for _, f := range flags {
			assert.Contains(t, out, f, "%s --help", cmd)
		}
	}
}

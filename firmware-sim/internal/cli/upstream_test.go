package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOGDCommandServes(t *testing.T) {
	urls := startServing(t, 1, "ogd", "--listen", "127.0.0.1:0", "--api-key", "k1", "--months", "2", "--log-level", "error")
	require.True(t, strings.HasPrefix(urls[0], "http://127.0.0.1:"), urls[0])
	require.Contains(t, urls[0], "/resource/")

	resp, err := http.Get(urls[0] + "?api-key=k1&format=json&limit=3")
	require.NoError(t, err)
	defer resp.Body.Close()
	var page struct {
		Status string
		Total  int
		Limit  string
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
	assert.Equal(t, "ok", page.Status)
	assert.Equal(t, "3", page.Limit)
	assert.Positive(t, page.Total)

	resp2, err := http.Get(urls[0] + "?api-key=nope")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp2.StatusCode)
	assert.JSONEq(t, `{"error": "Key not authorised"}`, string(b))
}

func TestStatsCommandServes(t *testing.T) {
	urls := startServing(t, 2, "stats", "--listen", "127.0.0.1:0", "--client-id", "c", "--client-secret", "s",
		"--log-level", "error")
	require.True(t, strings.HasSuffix(urls[1], "/oauth/token"), urls[1])
	resp, err := http.PostForm(urls[1], url.Values{"grant_type": {"client_credentials"}, "client_id": {"c"}, "client_secret": {"s"}})
	require.NoError(t, err)
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	assert.NotEmpty(t, tok.AccessToken)
	assert.Equal(t, 600, tok.ExpiresIn)
}

func TestUpstreamCommandLines(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"ogd", "--listen", "nowhere", "--fault", "teapot", "--fault-rate", "2"},
			[]string{`invalid listen "nowhere"`, `unknown fault "teapot"`, "invalid fault-rate 2"}},
		{[]string{"ogd", "--months", "0", "--revise-after", "0s"}, []string{"invalid months 0", "invalid revise-after 0"}},
		{[]string{"stats", "--client-id", "c"}, []string{"--client-id and --client-secret go together"}},
		{[]string{"stats", "--token-ttl", "10ms"}, []string{"invalid token-ttl 10ms"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := runCLI(t.Context(), tt.args...)
			require.Error(t, err)
			assert.Equal(t, ExitUsage, ExitCode(err))
			for _, w := range tt.want {
				assert.ErrorContains(t, err, w)
			}
		})
	}
	for _, cmd := range []string{"ogd", "stats"} {
		out, _, err := runCLI(t.Context(), cmd, "--help")
		require.NoError(t, err)
		assert.Contains(t, out, "/_sim/fault", "%s --help documents the fault control", cmd)
		assert.Contains(t, out, "--listen")
	}
}

package coapsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// coapClient finds libcoap's coap-client (Debian's libcoap3-bin installs it under the name
// of its TLS flavour). Without it the test is skipped, unless PH_REQUIRE_TOOLS=1.
func coapClient(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"coap-client", "coap-client-notls", "coap-client-openssl", "coap-client-gnutls"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("PH_REQUIRE_TOOLS") == "1" {
		require.FailNow(t, "coap-client not found (apt-get install libcoap3-bin)")
	}
	t.Skip("coap-client not found (apt-get install libcoap3-bin)")
	return ""
}

// readings decodes the concatenated JSON documents coap-client prints, one per response.
func readings(t *testing.T, out []byte) []reading {
	t.Helper()
	var rs []reading
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var r reading
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			return rs
		}
		require.NoError(t, err, "coap-client output %q", out)
		require.NotNil(t, r.Value, "a value in %q", out)
		rs = append(rs, r)
	}
}

// libcoap, an implementation we did not write, reads and observes the simulator.
func TestLibcoapClient(t *testing.T) {
	bin := coapClient(t)
	_, addr := serve(t, Config{Params: []telemetry.Param{telemetry.DO, telemetry.Temp}, Interval: 200 * time.Millisecond})

	t.Run("GET", func(t *testing.T) {
		out, err := exec.CommandContext(t.Context(), bin, "-m", "get", "-B", "5", "coap://"+addr+"/do").Output()
		require.NoError(t, err)
		rs := readings(t, out)
		require.Len(t, rs, 1)
		assert.Equal(t, "mg/L", rs[0].Unit)
		_, err = time.Parse(time.RFC3339Nano, rs[0].Timestamp)
		assert.NoError(t, err)
	})
	t.Run("Observe", func(t *testing.T) {
		out, err := exec.CommandContext(t.Context(), bin, "-m", "get", "-s", "2", "-B", "5", "coap://"+addr+"/temp").Output()
		require.NoError(t, err)
		rs := readings(t, out)
		assert.GreaterOrEqual(t, len(rs), 4, "the registration's response and notifications every 200ms for 2s")
		for _, r := range rs {
			assert.Equal(t, "degC", r.Unit)
		}
	})
	t.Run("text", func(t *testing.T) {
		_, addr := serve(t, Config{Params: []telemetry.Param{telemetry.PH}, Format: FormatText})
		out, err := exec.CommandContext(t.Context(), bin, "-m", "get", "-B", "5", "coap://"+addr+"/ph").Output()
		require.NoError(t, err)
		var v float64
		require.NoError(t, json.Unmarshal(bytes.TrimSpace(out), &v), "a number: %q", out)
		assert.True(t, v > 0 && v < 14, "pH %v", v)
	})
}

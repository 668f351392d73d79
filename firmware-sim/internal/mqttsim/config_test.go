package mqttsim

import (
	"encoding/json"
	"math"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

func TestParseBroker(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"127.0.0.1:1883", "127.0.0.1:1883", ""},
		{"localhost", "localhost:1883", ""},
		{"tcp://broker.local:11883", "broker.local:11883", ""},
		{"mqtt://broker.local", "broker.local:1883", ""},
		{"[::1]:1884", "[::1]:1884", ""},
		{"[::1]", "[::1]:1883", ""},
		{"tcp://[fe80::1]:1883/", "[fe80::1]:1883", ""},
		{"", "", "broker is required (host:port)"},
		{"::1", "", `broker "::1": want host:port`},
		{":1883", "", `broker ":1883": missing host`},
		{"host:0", "", `broker "host:0": port 0 out of range`},
		{"host:99999", "", `broker "host:99999": port 99999 out of range`},
		{"host:http", "", `broker "host:http": invalid port "http"`},
		{"ssl://host:8883", "", `broker "ssl://host:8883": scheme ssl is not supported (plain tcp only)`},
		{"ws://host/mqtt", "", `broker "ws://host/mqtt": scheme ws is not supported (plain tcp only)`},
		{"http://host", "", `broker "http://host": unknown scheme "http" (want tcp or mqtt)`},
		{"tcp://host:1883/path", "", `broker "tcp://host:1883/path": only scheme://host:port is allowed`},
		{"tcp://user:pw@host", "", `broker "tcp://user:pw@host": only scheme://host:port is allowed`},
		{"0]0", "", `broker "0]0": invalid host "0]0"`},
		{"[abc]:1", "", `broker "[abc]:1": invalid host "abc"`},
		{"[127.0.0.9]:1", "", `broker "[127.0.0.9]:1": invalid host "127.0.0.9": brackets are for IPv6 addresses only`},
		{"a b:1", "", `broker "a b:1": invalid host "a b"`},
		{"[fe80::1%eth0]:1883", "[fe80::1%eth0]:1883", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBroker(tt.in)
			if tt.wantErr != "" {
				assert.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func FuzzParseBroker(f *testing.F) {
	for _, s := range []string{"127.0.0.1:1883", "tcp://h", "mqtt://[::1]:1", "h:65536", "::", "tcp://%zz", "a b:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseBroker(s)
		if err != nil {
			assert.Empty(t, got)
			return
		}
		host, port, err := net.SplitHostPort(got)
		require.NoError(t, err, "result %q must be host:port", got)
		assert.NotEmpty(t, host)
		n, err := strconv.Atoi(port)
		require.NoError(t, err)
		assert.True(t, n >= 1 && n <= 65535)
		again, err := ParseBroker(got)
		require.NoError(t, err, "the result parses again")
		assert.Equal(t, got, again)
	})
}

func TestValidate(t *testing.T) {
	ok := Config{Broker: "127.0.0.1:1883", Station: "MH-PUNE-001"}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr []string
	}{
		{"minimal", func(*Config) {}, nil},
		{"everything set", func(c *Config) {
			c.Sensors, c.Rate, c.Count, c.QoS, c.Protocol = 10, 0.2, 5, 2, MQTT5
			c.Username, c.Password, c.Params = "u", "p", []telemetry.Param{telemetry.DO}
			c.Inflight, c.Grace = 65535, time.Second
		}, nil},
		{"load generator", func(c *Config) { c.Rate = 0 }, nil},
		{"missing", func(c *Config) { c.Broker, c.Station = "", "" }, []string{
			"broker is required (host:port)", "station is required"}},
		{"station with slash", func(c *Config) { c.Station = "MH/1" }, []string{
			`station "MH/1": must not contain '/', '+', '#' or NUL`}},
		{"station with wildcard", func(c *Config) { c.Station = "#" }, []string{`station "#"`}},
		{"numbers", func(c *Config) {
			c.Sensors, c.Rate, c.Count, c.QoS, c.Protocol, c.Inflight = -1, -2, -3, 3, 3, 70000
		}, []string{
			"invalid sensors -1", "invalid rate -2", "invalid count -3", "invalid qos 3",
			"invalid protocol 3: must be 4 (MQTT 3.1.1) or 5", "invalid inflight 70000",
		}},
		{"rate too small", func(c *Config) { c.Rate = 1e-6 }, []string{"invalid rate 1e-06"}},
		{"rate NaN", func(c *Config) { c.Rate = math.NaN() }, []string{"invalid rate NaN"}},
		{"rate infinite", func(c *Config) { c.Rate = math.Inf(1) }, []string{"invalid rate +Inf"}},
		{"params", func(c *Config) { c.Params = []telemetry.Param{"ph", "salinity", "ph"} }, []string{
			`invalid params: unknown parameter: "salinity"`, "invalid params: ph listed twice"}},
		{"fault", func(c *Config) { c.Fault = "unplug" }, []string{`unknown fault "unplug"`}},
		{"password alone", func(c *Config) { c.Password = "x" }, []string{"password given without a username"}},
		{"negative durations", func(c *Config) { c.Grace, c.AckTimeout = -1, -time.Second }, []string{
			"invalid grace -1ns", "invalid ack-timeout -1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tt.wantErr {
				assert.ErrorContains(t, err, want)
			}
		})
	}
}

func TestReportShape(t *testing.T) {
	r := Report{
		Station: "MH-PUNE-001", Protocol: 4, QoS: 1, Sensors: 2, Sent: 10, Acked: 9,
		Failed: 1, Readings: 10, Seconds: 1.5, RatePerS: 6,
		LatencyMS:  &Latency{P50: 0.2, P90: 0.4, P99: 1.1, Max: 2},
		FirstError: "connection lost before Publish completed",
	}
	b, err := json.Marshal(r)
	require.NoError(t, err)
	assert.JSONEq(t, `{"station":"MH-PUNE-001","protocol":4,"qos":1,"sensors":2,"batch":false,
		"sent":10,"acked":9,"failed":1,"rejected":0,"readings":10,"garbage":0,"dropouts":0,
		"reconnects":0,"seconds":1.5,"rate_per_s":6,
		"latency_ms":{"p50":0.2,"p90":0.4,"p99":1.1,"max":2},
		"first_error":"connection lost before Publish completed"}`, string(b))
	assert.Equal(t, "MH-PUNE-001: 2 sensor(s), MQTT 3.1.1 QoS 1: sent 10, acked 9, failed 1 in 1.50s "+
		"(6.0/s); ack latency p50 0.200ms p90 0.400ms p99 1.100ms max 2.000ms; "+
		"first error: connection lost before Publish completed", r.String())

	r = Report{Station: "S", Protocol: 5, QoS: 0, Sensors: 1, Sent: 3}
	b, err = json.Marshal(r)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"latency_ms":null`, "no latency without acknowledgements")
	assert.NotContains(t, string(b), "first_error")
}

func TestHistogram(t *testing.T) {
	t.Run("buckets cover every value once", func(t *testing.T) {
		prev := -1
		for _, us := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 20, 1<<20 + 12345, 1 << 40, histTop} {
			i := bucketOf(us)
			low, width := bucketRange(i)
			assert.True(t, low <= us && us < low+width, "%d in bucket %d [%d, %d)", us, i, low, low+width)
			assert.GreaterOrEqual(t, i, prev, "monotonic")
			prev = i
			if us >= histLinear {
				assert.LessOrEqual(t, float64(width)/float64(low), 1.0/31, "relative width")
			}
		}
		assert.Less(t, bucketOf(math.MaxUint64), histBuckets, "huge values are capped")
	})
	t.Run("quantiles", func(t *testing.T) {
		var h histogram
		assert.True(t, math.IsNaN(h.quantile(0.5)), "empty")
		for us := 1; us <= 1000; us++ {
			h.record(time.Duration(us) * time.Microsecond)
		}
		assert.InEpsilon(t, 0.5, h.quantile(0.5), 0.02)
		assert.InEpsilon(t, 0.9, h.quantile(0.9), 0.02)
		assert.InEpsilon(t, 0.99, h.quantile(0.99), 0.02)
		assert.InDelta(t, 1.0, h.quantile(1), 1e-9, "never above the maximum")
		assert.InDelta(t, 0.001, h.quantile(0.0001), 1e-9, "the smallest")
		assert.InDelta(t, 1.0, h.maxMS(), 1e-9)
	})
	t.Run("negative durations count as zero", func(t *testing.T) {
		var h histogram
		h.record(-time.Second)
		assert.Zero(t, h.quantile(0.5))
	})
}

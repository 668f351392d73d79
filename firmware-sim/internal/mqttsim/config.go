package mqttsim

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/purehealth/purehealth/firmware-sim/internal/device"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Protocol versions, as the MQTT CONNECT packet numbers them.
const (
	MQTT311 = 4 // MQTT 3.1.1
	MQTT5   = 5
)

// DefaultParams are the parameters a station's probes report unless told otherwise: the
// eight a river station measures (chlorophyll-a comes from satellites).
func DefaultParams() []telemetry.Param {
	return []telemetry.Param{telemetry.PH, telemetry.DO, telemetry.BOD, telemetry.FC,
		telemetry.TDS, telemetry.Temp, telemetry.Turbidity, telemetry.Conductivity}
}

// Config is what to simulate. The zero value is not usable: Broker and Station are required;
// zero numbers take the defaults documented on each field.
type Config struct {
	// Broker is the broker's address: host:port, or a tcp:// or mqtt:// URL (port 1883 if
	// none).
	Broker string
	// Station is the station id in the topics, e.g. MH-PUNE-001. A station we have a model
	// of gets its own river; any other id a generic one.
	Station string
	// Sensors is how many simulated sensors publish, each on its own connection (client id
	// <station>-sim-<i>). Default 1.
	Sensors int
	// Rate is how many messages each sensor publishes per second; fractions are fine (0.2 =
	// one every 5 s). 0 publishes as fast as acknowledgements allow: a load generator.
	Rate float64
	// Count is how many messages each sensor publishes before the run ends; 0 = until the
	// context ends. With FaultDropout, a tick on which the probe has nothing counts too.
	Count int
	// QoS is the MQTT quality of service of every publish: 0, 1 or 2.
	QoS byte
	// Protocol is MQTT311 (the zero value means it) or MQTT5.
	Protocol int
	// Username and Password, if Username is set, authenticate every connection.
	Username, Password string
	// Params lists the parameters: sensor i measures Params[i % len(Params)] (or all of them
	// in batch mode). Default DefaultParams.
	Params []telemetry.Param
	// Batch publishes one JSON array per tick on purehealth/<station>/readings with a
	// reading of every parameter (a multiparameter sonde) instead of one reading per message
	// on purehealth/<station>/<param>.
	Batch bool
	// Fault makes every probe misbehave this way (device.FaultNone if empty).
	Fault device.Fault
	// Seed selects the simulated river and probes; the same seed gives the same values for
	// the same times.
	Seed int64
	// Inflight caps the QoS ≥ 1 publishes awaiting acknowledgement per connection. 0 = the
	// client's limit: the broker's Receive Maximum on MQTT 5, 1024 on MQTT 3.1.1 (which
	// negotiates none; 1024 is mochi's and most brokers' default receive maximum, above
	// which they may disconnect a QoS 2 sender).
	Inflight int
	// ConnectTimeout bounds each connection attempt. Default 10s.
	ConnectTimeout time.Duration
	// AckTimeout is how long a connection may go without any acknowledgement while
	// publishes are waiting for one before it is treated as dead (its pending publishes
	// fail and it reconnects), and how long the end of a run waits for the last ones.
	// Default 30s.
	AckTimeout time.Duration
	// Grace is how long to wait for outstanding acknowledgements after the context ends
	// before disconnecting. Default 5s.
	Grace time.Duration
	// KeepAlive is the MQTT keep-alive interval. Default 30s.
	KeepAlive time.Duration
	// Origin is when faults set in (drift starts, stuck values freeze). Default: the start
	// of the run.
	Origin time.Time
	// Plumes are discharges upstream that the river carries past the station.
	Plumes []device.Plume
}

// The defaults.
const (
	defaultInflight311    = 1024
	defaultConnectTimeout = 10 * time.Second
	defaultAckTimeout     = 30 * time.Second
	defaultGrace          = 5 * time.Second
	defaultKeepAlive      = 30 * time.Second
	maxInflight           = 65535 // packet identifiers are 16 bits
	minRate               = 1e-4  // one message in under three hours
)

// withDefaults fills in the zero fields.
func (c Config) withDefaults() Config {
	if c.Sensors == 0 {
		c.Sensors = 1
	}
	if c.Protocol == 0 {
		c.Protocol = MQTT311
	}
	if len(c.Params) == 0 {
		c.Params = DefaultParams()
	}
	if c.Fault == "" {
		c.Fault = device.FaultNone
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = defaultConnectTimeout
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = defaultAckTimeout
	}
	if c.Grace == 0 {
		c.Grace = defaultGrace
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = defaultKeepAlive
	}
	return c
}

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if _, err := ParseBroker(c.Broker); err != nil {
		errs = append(errs, err)
	}
	if err := validStationID(c.Station); err != nil {
		errs = append(errs, err)
	}
	if c.Sensors < 0 {
		errs = append(errs, fmt.Errorf("invalid sensors %d: must be at least 1", c.Sensors))
	}
	if math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate < 0 || (c.Rate > 0 && c.Rate < minRate) {
		errs = append(errs, fmt.Errorf("invalid rate %v: must be 0 (as fast as possible) or at least %v", c.Rate, minRate))
	}
	if c.Count < 0 {
		errs = append(errs, fmt.Errorf("invalid count %d: must be 0 (no limit) or more", c.Count))
	}
	if c.QoS > 2 {
		errs = append(errs, fmt.Errorf("invalid qos %d: must be 0, 1 or 2", c.QoS))
	}
	if c.Protocol != 0 && c.Protocol != MQTT311 && c.Protocol != MQTT5 {
		errs = append(errs, fmt.Errorf("invalid protocol %d: must be 4 (MQTT 3.1.1) or 5", c.Protocol))
	}
	if c.Password != "" && c.Username == "" {
		errs = append(errs, errors.New("password given without a username"))
	}
	seen := map[telemetry.Param]bool{}
	for _, p := range c.Params {
		switch {
		case !p.Valid():
			errs = append(errs, fmt.Errorf("invalid params: %w: %q", telemetry.ErrUnknownParam, p))
		case seen[p]:
			errs = append(errs, fmt.Errorf("invalid params: %s listed twice", p))
		}
		seen[p] = true
	}
	if c.Fault != "" {
		if _, err := device.ParseFault(string(c.Fault)); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Inflight < 0 || c.Inflight > maxInflight {
		errs = append(errs, fmt.Errorf("invalid inflight %d: must be between 0 (the client's limit) and %d", c.Inflight, maxInflight))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"connect-timeout", c.ConnectTimeout}, {"ack-timeout", c.AckTimeout}, {"grace", c.Grace}, {"keep-alive", c.KeepAlive}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("invalid %s %v: must not be negative", d.name, d.v))
		}
	}
	if c.KeepAlive > 65535*time.Second {
		errs = append(errs, fmt.Errorf("invalid keep-alive %v: at most 65535s", c.KeepAlive))
	}
	return errors.Join(errs...)
}

// validStationID accepts what can be one level of an MQTT topic without surprises.
func validStationID(id string) error {
	switch {
	case id == "":
		return errors.New("station is required")
	case strings.ContainsAny(id, "/+#\x00"):
		return fmt.Errorf("station %q: must not contain '/', '+', '#' or NUL", id)
	case strings.TrimSpace(id) != id:
		return fmt.Errorf("station %q: leading or trailing space", id)
	}
	return nil
}

// ParseBroker turns a broker address (host:port, host, or a tcp:// or mqtt:// URL) into
// host:port, with port 1883 when none is given.
func ParseBroker(s string) (string, error) {
	if s == "" {
		return "", errors.New("broker is required (host:port)")
	}
	hostport := s
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("broker %q: %w", s, err)
		}
		switch u.Scheme {
		case "tcp", "mqtt":
		case "ssl", "tls", "mqtts", "ws", "wss":
			return "", fmt.Errorf("broker %q: scheme %s is not supported (plain tcp only)", s, u.Scheme)
		default:
			return "", fmt.Errorf("broker %q: unknown scheme %q (want tcp or mqtt)", s, u.Scheme)
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return "", fmt.Errorf("broker %q: only scheme://host:port is allowed", s)
		}
		hostport = u.Host
	}
	bracketed := strings.HasPrefix(hostport, "[")
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		switch {
		case bracketed && strings.HasSuffix(hostport, "]"):
			host = hostport[1 : len(hostport)-1]
		case strings.Contains(hostport, ":"):
			// A bare IPv6 address needs brackets to tell it from host:port.
			return "", fmt.Errorf("broker %q: want host:port", s)
		default:
			host = hostport
		}
		port = "1883"
	}
	if host == "" {
		return "", fmt.Errorf("broker %q: missing host", s)
	}
	if err := validHost(host, bracketed); err != nil {
		return "", fmt.Errorf("broker %q: %w", s, err)
	}
	n, err := parsePort(port)
	if err != nil {
		return "", fmt.Errorf("broker %q: %w", s, err)
	}
	return net.JoinHostPort(host, fmt.Sprint(n)), nil
}

// validHost accepts an IP address (IPv6 only in brackets) or a DNS name.
func validHost(host string, bracketed bool) error {
	if addr, err := netip.ParseAddr(host); err == nil {
		if bracketed != addr.Is6() {
			return fmt.Errorf("invalid host %q: brackets are for IPv6 addresses only", host)
		}
		return nil
	}
	if bracketed || len(host) > 253 {
		return fmt.Errorf("invalid host %q", host)
	}
	for _, r := range host {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '.' || r == '_') {
			return fmt.Errorf("invalid host %q", host)
		}
	}
	return nil
}

func parsePort(s string) (int, error) {
	if s == "" || len(s) > 5 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("invalid port %q", s)
		}
		n = n*10 + int(r-'0')
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range", n)
	}
	return n, nil
}

package config

import (
	"fmt"
	"net"
)

// Metrics serves the agent's Prometheus metrics over HTTP at /metrics.
type Metrics struct {
	// Listen is the host:port to serve on, such as "127.0.0.1:9464"; empty (the default)
	// serves nothing.
	Listen string `yaml:"listen"`
}

func (m Metrics) validate() error {
	if m.Listen == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(m.Listen); err != nil {
		return fmt.Errorf("metrics.listen: %q is not host:port", m.Listen)
	}
	return nil
}

package testproc

import (
	"fmt"
	"net"
	"testing"
)

// FreeAddr returns an address of 127.0.0.1 on network "tcp" or "udp" that was free a
// moment ago, for a process under test to listen on. Another program may take it in
// between; the tests accept that small risk for the sake of real ports.
func FreeAddr(t testing.TB, network string) string {
	t.Helper()
	addr, err := FreePort(network)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// FreePort is FreeAddr for a caller without a test (the benchmark driver).
func FreePort(network string) (string, error) {
	var (
		addr    string
		release func() error
	)
	switch network {
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("free TCP address: %w", err)
		}
		addr, release = l.Addr().String(), l.Close
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("free UDP address: %w", err)
		}
		addr, release = c.LocalAddr().String(), c.Close
	default:
		return "", fmt.Errorf("free address: network %q is neither tcp nor udp", network)
	}
	if err := release(); err != nil {
		return "", fmt.Errorf("free %s address: %w", network, err)
	}
	return addr, nil
}

package testproc

import (
	"net"
	"testing"
)

// FreeAddr returns an address of 127.0.0.1 on network "tcp" or "udp" that was free a
// moment ago, for a process under test to listen on. Another program may take it in
// between; the tests accept that small risk for the sake of real ports.
func FreeAddr(t testing.TB, network string) string {
	t.Helper()
	var (
		addr    string
		release func() error
	)
	switch network {
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free TCP address: %v", err)
		}
		addr, release = l.Addr().String(), l.Close
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free UDP address: %v", err)
		}
		addr, release = c.LocalAddr().String(), c.Close
	default:
		t.Fatalf("free address: network %q is neither tcp nor udp", network)
	}
	if err := release(); err != nil {
		t.Fatalf("free %s address: %v", network, err)
	}
	return addr
}

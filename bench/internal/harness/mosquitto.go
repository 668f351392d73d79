package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/purehealth/purehealth/internal/testproc"
)

// Mosquitto is a running mosquitto broker with the minimal configuration a benchmark
// compares against: one listener on the loopback interface, anonymous clients, no
// persistence, everything else the defaults.
type Mosquitto struct {
	*Proc
	Addr string // host:port of the listener
}

// StartMosquitto starts bin (normally /usr/sbin/mosquitto) on a free port, with its
// configuration and log in dir, and returns once it accepts connections. The caller must
// Stop it.
func StartMosquitto(ctx context.Context, bin, dir string) (*Mosquitto, error) {
	addr, err := testproc.FreePort("tcp")
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("listener %s %s\nallow_anonymous true\npersistence false\n", port, host)
	if err := os.WriteFile(conf, []byte(body), 0o640); err != nil {
		return nil, fmt.Errorf("mosquitto config: %w", err)
	}
	p, err := start(bin, filepath.Join(dir, "mosquitto.log"), "-c", conf)
	if err != nil {
		return nil, err
	}
	m := &Mosquitto{Proc: p, Addr: addr}
	if err := waitListening(ctx, p, addr, 10*time.Second); err != nil {
		return nil, errors.Join(err, m.Stop())
	}
	return m, nil
}

// waitListening returns once addr accepts a TCP connection.
func waitListening(ctx context.Context, p *Proc, addr string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-p.Done():
			_, why := p.Exited()
			return fmt.Errorf("%s exited during start-up (%v); its log ends:\n%s", "mosquitto", why, p.LogTail(10))
		case <-ctx.Done():
			return fmt.Errorf("%s not listening on %s after %s: %w", "mosquitto", addr, limit, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// MosquittoVersion returns what `mosquitto -h` says of itself, e.g. "mosquitto version
// 2.0.11", or an error when bin cannot be run.
func MosquittoVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// -h exits with a non-zero status after printing the usage: only the text matters.
	out, err := exec.CommandContext(ctx, bin, "-h").CombinedOutput()
	for line := range bytes.Lines(out) {
		if s := strings.TrimSpace(string(line)); strings.HasPrefix(s, "mosquitto version") {
			return s, nil
		}
	}
	if err == nil {
		err = errors.New("no version in its usage text")
	}
	return "", fmt.Errorf("%s -h: %w", bin, err)
}

package e2e

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fault is what the chaos proxy does to one connection.
type fault int

const (
	clean     fault = iota // forward everything, with small delays
	cutUp                  // close both sides partway through the agent's bytes (a request cut mid-body)
	cutDown                // close both sides partway through the cloud's bytes (an answer lost)
	resetUp                // reset the cloud's side partway through the agent's bytes
	resetDown              // reset the agent's side partway through the cloud's bytes
	stall                  // stop forwarding the cloud's bytes until the agent gives up
	numFaults
)

func (f fault) String() string {
	return [...]string{"clean", "cut-up", "cut-down", "reset-up", "reset-down", "stall"}[f]
}

// upstream reports whether f strikes the agent-to-cloud direction.
func (f fault) upstream() bool { return f == cutUp || f == resetUp }

// plan is one connection's fate: fault f after at bytes in its direction.
type plan struct {
	f  fault
	at int
}

// chaosProxy forwards TCP connections to the cloud and breaks them. The first maxFaults
// connections take the faults in turn (cut-up, cut-down, reset-up, reset-down, stall,
// cut-up, ...), each at a random byte offset in its direction, so every kind strikes; the
// connections after them are left alone, so that the test can end. Every chunk is delayed
// by up to 3 ms. It owns one goroutine for the listener and two per connection; Close
// stops them all and waits.
type chaosProxy struct {
	ln        net.Listener
	upstream  string
	maxFaults int

	mu     sync.Mutex
	rng    *rand.Rand
	conns  int
	struck [numFaults]int
	open   map[net.Conn]struct{}
	closed bool

	wg sync.WaitGroup
}

// startProxy listens on 127.0.0.1 and forwards to upstream; it is closed at the end of the
// test.
func startProxy(t *testing.T, upstream string, seed uint64, maxFaults int) *chaosProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &chaosProxy{
		ln: ln, upstream: upstream, maxFaults: maxFaults,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), open: map[net.Conn]struct{}{},
	}
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	return p
}

// URL is the proxy as an uplink URL.
func (p *chaosProxy) URL() string { return "http://" + p.ln.Addr().String() }

// Close stops accepting, breaks every open connection and waits for the goroutines. It is
// idempotent.
func (p *chaosProxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// Struck returns how many connections each fault has broken.
func (p *chaosProxy) Struck() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{"connections": p.conns}
	for f := cutUp; f < numFaults; f++ {
		out[f.String()] = p.struck[f]
	}
	return out
}

func (p *chaosProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// track registers conns so that Close can break them; false when the proxy is closing.
func (p *chaosProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range conns {
		p.open[c] = struct{}{}
	}
	return true
}

func (p *chaosProxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.open, c)
	}
}

// nextPlan decides the fate of a new connection.
func (p *chaosProxy) nextPlan() plan {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := cutUp + fault(p.conns%int(numFaults-cutUp))
	p.conns++
	if p.conns > p.maxFaults {
		f = clean
	}
	at := p.rng.IntN(400) // into an answer: its headers and JSON body
	if f.upstream() {
		at = p.rng.IntN(3000) // into a request: its headers and gzip batch (a few KB)
	}
	return plan{f: f, at: at}
}

func (p *chaosProxy) jitter() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Duration(p.rng.IntN(3000)) * time.Microsecond
}

func (p *chaosProxy) strike(f fault) {
	p.mu.Lock()
	p.struck[f]++
	p.mu.Unlock()
}

func (p *chaosProxy) serve(agentSide net.Conn) {
	cloudSide, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		agentSide.Close() // the cloud is down: the agent sees a closed connection
		return
	}
	if !p.track(agentSide, cloudSide) {
		agentSide.Close()
		cloudSide.Close()
		return
	}
	defer p.untrack(agentSide, cloudSide)
	pl := p.nextPlan()
	done := make(chan struct{})
	var once sync.Once
	// end closes both sides; with reset set, that side is closed with an RST.
	end := func(reset net.Conn) {
		once.Do(func() {
			if tc, ok := reset.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			agentSide.Close()
			cloudSide.Close()
			close(done)
		})
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(agentSide, cloudSide, pl, true, done, end) })
	wg.Go(func() { p.pipe(cloudSide, agentSide, pl, false, done, end) })
	wg.Wait()
}

// pipe copies src to dst until either side ends or the plan strikes this direction.
func (p *chaosProxy) pipe(src, dst net.Conn, pl plan, up bool, done <-chan struct{}, end func(reset net.Conn)) {
	armed := pl.f != clean && pl.f.upstream() == up
	buf := make([]byte, 512)
	sent := 0
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if armed && sent+n > pl.at {
				if _, werr := dst.Write(chunk[:pl.at-sent]); werr != nil {
					end(nil)
					return
				}
				p.strike(pl.f)
				switch pl.f {
				case cutUp, cutDown:
					end(nil)
				case resetUp, resetDown:
					end(dst)
				case stall:
					<-done // until the agent gives up and closes, or the proxy closes
				}
				return
			}
			time.Sleep(p.jitter())
			if _, werr := dst.Write(chunk); werr != nil {
				end(nil)
				return
			}
			sent += n
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				// A reset from either end: pass the breakage on.
				end(dst)
				return
			}
			end(nil)
			return
		}
	}
}

func (p *chaosProxy) String() string { return fmt.Sprint(p.Struck()) }

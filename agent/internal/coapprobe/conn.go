package coapprobe

import (
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
)

// ticker runs the CoAP library's periodic work for one connection (retransmissions,
// expiring exchanges, the inactivity monitor) on a goroutine the connection's owner stops
// and waits for, instead of the library's default one that outlives its connection by up to
// four seconds.
type ticker struct {
	every time.Duration
	stop  chan struct{}
	wg    sync.WaitGroup
}

// run is the library's periodic.Func: it calls f every tick until f returns false or the
// ticker is closed.
func (t *ticker) run(f func(now time.Time) bool) {
	t.wg.Go(func() {
		tk := time.NewTicker(t.every)
		defer tk.Stop()
		for {
			select {
			case <-t.stop:
				return
			case now := <-tk.C:
				if !f(now) {
					return
				}
			}
		}
	})
}

// close stops every loop started by run and waits for them.
func (t *ticker) close() {
	close(t.stop)
	t.wg.Wait()
}

// tokens issues the tokens of one connection's requests and remembers the latest few, so
// that messages carrying any other token can be told apart. Safe for concurrent use; the
// zero value is ready.
type tokens struct {
	mu     sync.Mutex
	recent [8]string // a poll needs the last one; an observation its registration's
	next   int
}

// issue is the library's GetToken.
func (t *tokens) issue() (message.Token, error) {
	tok, err := message.GetToken()
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.recent[t.next%len(t.recent)] = string(tok)
	t.next++
	t.mu.Unlock()
	return tok, nil
}

func (t *tokens) known(tok message.Token) bool {
	if len(tok) == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.recent {
		if r == string(tok) {
			return true
		}
	}
	return false
}

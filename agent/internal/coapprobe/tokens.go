package coapprobe

import (
	"sync"

	"github.com/plgd-dev/go-coap/v3/message"
)

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

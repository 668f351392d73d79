package broker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlineShares is how many contexts deadlines creates per timeout: calls starting
// within the same 1/deadlineShares of the timeout share one.
const deadlineShares = 8

// deadlines hands out the contexts that bound Sink.Ingest calls. A context with a timer of
// its own for every publish costs about as much as decoding the publish: a timer, a
// channel, and a registration with the parent under the parent's lock, which every client
// goroutine contends for. Calls that start within the same eighth of the timeout share one
// context instead, so each call gets between 7/8 of the timeout and all of it.
//
// A shared context ends by itself at its deadline, or with the parent, which releases its
// timer; stop ends the current one early. deadlines is safe for concurrent use.
type deadlines struct {
	parent  context.Context
	timeout time.Duration

	cur atomic.Pointer[deadline]
	mu  sync.Mutex // serializes renewals
}

type deadline struct {
	ctx     context.Context
	cancel  context.CancelFunc
	renewAt time.Time // calls starting from then on get a new context
}

func newDeadlines(parent context.Context, timeout time.Duration) *deadlines {
	return &deadlines{parent: parent, timeout: timeout}
}

// context returns a context that ends at most timeout after now, and no earlier than
// timeout·7/8 after now unless the parent ends first.
func (d *deadlines) context(now time.Time) context.Context {
	if c := d.cur.Load(); c != nil && now.Before(c.renewAt) {
		return c.ctx
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.cur.Load(); c != nil && now.Before(c.renewAt) {
		return c.ctx
	}
	// The context being replaced stays in use by the calls that took it; its own timer
	// ends it at its deadline.
	ctx, cancel := context.WithDeadline(d.parent, now.Add(d.timeout))
	d.cur.Store(&deadline{ctx: ctx, cancel: cancel, renewAt: now.Add(d.timeout / deadlineShares)})
	return ctx
}

// stop ends the current context; earlier ones have ended or end by their deadline. Calls
// to context after stop get new contexts: stop is for when the parent has ended anyway.
func (d *deadlines) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.cur.Swap(nil); c != nil {
		c.cancel()
	}
}

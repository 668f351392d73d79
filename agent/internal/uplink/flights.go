package uplink

import (
	"context"
	"net/http"

	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/shared/wire"
)

// flight is a backlog batch posted and not yet answered. Its goroutine only posts; the Run
// goroutine reads the answer (land) and does everything else, as for a batch sent alone.
type flight struct {
	b      *batch
	body   []byte
	ctx    context.Context // the batch's graceful context (see graceful)
	cancel context.CancelFunc
	done   chan struct{} // closed when a and err are set
	a      answer
	err    error
}

// flights are the backlog batches of a pass in flight, oldest first. Owned by the Run
// goroutine.
type flights []*flight

// after returns, per stream, the end of what the batches in flight cover: the next
// backlog batch reads on from there.
func (fl flights) after() (out [numStreams + 1]uint64) {
	for _, f := range fl {
		for _, st := range streams {
			out[st] = max(out[st], f.b.cover[st])
		}
	}
	return out
}

// below returns the lowest reading the batches in flight carry in the live lane (0 for
// none): the next backlog batch stops short of it, since it may not cover a reading whose
// batch can still fail.
func (fl flights) below() uint64 {
	var lo uint64
	for _, f := range fl {
		for _, it := range f.b.items {
			if it.st == spool.Readings && it.lane == liveLane && (lo == 0 || it.seq < lo) {
				lo = it.seq
			}
		}
	}
	return lo
}

// skipping returns ahead with the records of the batches in flight added: what the live
// lane must not offer again. Without flights it is ahead itself.
func (fl flights) skipping(ahead *[numStreams + 1]rangeSet) *[numStreams + 1]rangeSet {
	if len(fl) == 0 {
		return ahead
	}
	var out [numStreams + 1]rangeSet
	for _, st := range streams {
		out[st].rs = append([]seqRange(nil), ahead[st].rs...)
	}
	for _, f := range fl {
		for _, it := range f.b.items {
			out[it.st].add(it.seq, it.seq)
		}
	}
	return &out
}

// pipelined reports whether backlog batches may travel together. With a daily byte
// budget they go one at a time, each weighed against what is left before it is sent.
func (u *Uplink) pipelined() bool { return u.opts.DailyBytes == 0 && u.opts.InFlight > 1 }

// launch posts the backlog batch b without waiting for the answer. A batch that cannot be
// posted as it is (it does not encode, is too large for one request, or holds no records)
// is processed at once, after every batch in flight has landed.
func (u *Uplink) launch(ctx context.Context, fl *flights, b *batch) error {
	u.setAsideUnsendable(ctx, b)
	body := b.body
	if body == nil && len(b.items) > 0 {
		body, _ = u.encode(b.items) // deliver splits a batch that does not encode
	}
	if body == nil || len(body) > wire.MaxCompressedBytes {
		if err := u.land(fl, 0); err != nil {
			return err
		}
		return u.process(ctx, b)
	}
	f := &flight{b: b, body: body, done: make(chan struct{})}
	f.ctx, f.cancel = graceful(ctx, u.opts.Grace)
	token, now := u.token, u.opts.Now()
	go func() {
		defer close(f.done)
		f.a, f.err = u.client.post(f.ctx, body, token, u.opts.RequestTimeout, now)
		u.accountWire()
	}()
	*fl = append(*fl, f)
	return nil
}

// land waits for the oldest batches in flight until at most keep remain, and records each
// answer as process would. After the first failure the batches behind it are still
// waited for and their acknowledgements recorded, but nothing else is attempted for them:
// the next pass sends what is not confirmed. It returns the first failure. A request
// takes at most Options.RequestTimeout, and Grace once the pass's context has ended.
func (u *Uplink) land(fl *flights, keep int) error {
	var first error
	for len(*fl) > keep {
		f := (*fl)[0]
		*fl = (*fl)[1:]
		if err := u.landOne(f, first == nil); first == nil {
			first = err
		}
	}
	return first
}

// landOne waits for f's answer and acts on it; with act false, only an acknowledgement is
// recorded.
func (u *Uplink) landOne(f *flight, act bool) error {
	<-f.done
	defer f.cancel()
	ctx := f.ctx
	var err error
	switch {
	case f.err != nil:
		err = postError(f.err)
	case !act && f.a.status/100 != 2:
		err = refusedBy(ErrCloud, f.a)
	case f.a.status == http.StatusUnauthorized || f.a.status == http.StatusForbidden:
		// Sent again the way a batch alone is, which reads the token again.
		err = u.deliver(ctx, f.b.items, f.body, &probe{})
	default:
		err = u.answered(ctx, f.b.items, f.a, &probe{})
	}
	return u.settled(ctx, f.b, err)
}

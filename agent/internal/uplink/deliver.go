package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/shared/version"
	"github.com/purehealth/purehealth/shared/wire"
)

const (
	// growAfter successful batches at a reduced size (after a 413) double it again, up to
	// BatchMax: a cloud's limit may have been a passing one. A probe that fails costs one
	// refused request, so it is rare.
	growAfter = 64
	// rejectQuiet is how long without a record set aside before the uplink_rejected alert
	// resolves.
	rejectQuiet = 24 * time.Hour
)

// cloudError is an answer that is not an acknowledgement.
type cloudError struct {
	kind       error // ErrAuth, ErrRefused or ErrCloud
	status     int
	msg, field string
	retryAfter time.Duration
}

func (e *cloudError) Error() string {
	s := fmt.Sprintf("%v: HTTP %d: %s", e.kind, e.status, e.msg)
	if e.field != "" {
		s += " (field " + e.field + ")"
	}
	return s
}

func (e *cloudError) Unwrap() error { return e.kind }

func refusedBy(kind error, a answer) *cloudError {
	return &cloudError{kind: kind, status: a.status, msg: a.refusal.Error, field: a.refusal.Field,
		retryAfter: a.retryAfter}
}

// graceful returns a context that ends grace after ctx ends, or at cancel: the batch in
// flight at shutdown gets that long to be answered and recorded.
func graceful(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(gctx, func() { t.Stop() })
	})
	return gctx, func() {
		stop()
		cancel()
	}
}

// process sends b (splitting it when the cloud asks) and moves the cursors as far as the
// acknowledged records reach. Records acknowledged before a failure stay acknowledged.
func (u *Uplink) process(ctx context.Context, b *batch) error {
	gctx, cancel := graceful(ctx, u.opts.Grace)
	defer cancel()
	u.setAsideUnsendable(gctx, b)
	var err error
	if len(b.items) > 0 {
		err = u.deliver(gctx, b.items, b.body, &probe{})
	}
	return u.settled(gctx, b, err)
}

// setAsideUnsendable sets aside the records of b that could not be put in it.
func (u *Uplink) setAsideUnsendable(ctx context.Context, b *batch) {
	for _, s := range b.skip {
		u.setAside(ctx, s.st, s.seq, "cannot be sent: "+s.why)
	}
	b.skip = nil
}

// settled records the outcome of b's delivery (err nil: every item is acknowledged or set
// aside): the span the batch covers is done, and the cursors move over what is done
// without a hole. It returns err, or the cursors' failure.
func (u *Uplink) settled(ctx context.Context, b *batch, err error) error {
	if err == nil {
		u.mu.Lock()
		for _, st := range streams {
			if lo := max(u.queue.Cursor(st), b.from[st]); b.cover[st] > lo {
				u.ahead[st].add(lo+1, b.cover[st])
			}
		}
		if len(b.items) > 0 && u.limit < u.opts.BatchMax {
			if u.okStreak++; u.okStreak >= growAfter {
				u.limit, u.okStreak = min(u.opts.BatchMax, u.limit*2), 0
			}
		}
		u.mu.Unlock()
	}
	if cerr := u.commit(ctx); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// commit moves each cursor over the acknowledged prefix above it, and stores the counters
// if they changed. The writes are issued together, so the spool commits them as one group.
func (u *Uplink) commit(ctx context.Context) error {
	type ack struct {
		st  spool.Stream
		seq uint64
	}
	var acks []ack
	var state []byte
	u.mu.Lock()
	for _, st := range streams {
		cur := u.queue.Cursor(st)
		if to := u.ahead[st].prefix(cur); to > cur {
			acks = append(acks, ack{st, to})
		}
	}
	if u.dirty {
		var err error
		if state, err = json.Marshal(u.counters); err != nil {
			u.mu.Unlock()
			return fmt.Errorf("encode uplink state: %w", err)
		}
		u.dirty = false
	}
	u.mu.Unlock()
	if len(acks) == 0 && state == nil {
		return nil
	}

	errs := make([]error, len(acks)+1)
	var wg sync.WaitGroup
	for i, a := range acks {
		wg.Go(func() {
			if errs[i] = u.queue.Ack(ctx, a.st, a.seq); errs[i] != nil {
				errs[i] = fmt.Errorf("move %s cursor to %d: %w", a.st, a.seq, errs[i])
			}
		})
	}
	if state != nil {
		wg.Go(func() {
			if err := u.memo.Put(ctx, stateKey, state); err != nil {
				errs[len(acks)] = fmt.Errorf("store uplink state: %w", err)
			}
		})
	}
	wg.Wait()
	u.mu.Lock()
	defer u.mu.Unlock()
	for i, a := range acks {
		if errs[i] == nil {
			u.ahead[a.st].trim(a.seq)
		}
	}
	if errs[len(acks)] != nil {
		u.dirty = true // try again with the next commit
	}
	return errors.Join(errs...)
}

// probe remembers, for one batch being split, whether the cloud takes an empty batch.
type probe struct {
	done bool
	err  error
}

// deliver sends items; it returns nil once every one of them is acknowledged or set aside.
// A 400 about records splits the batch to find them, a 413 halves it (and the batch size
// from then on); body, when not nil, is items already encoded.
func (u *Uplink) deliver(ctx context.Context, items []item, body []byte, pr *probe) error {
	if body == nil {
		var err error
		if body, err = u.encode(items); err != nil {
			if len(items) == 1 {
				u.setAside(ctx, items[0].st, items[0].seq, "cannot be sent: "+err.Error())
				return nil
			}
			return u.pieces(ctx, pr, items[:len(items)/2], items[len(items)/2:])
		}
	}
	if len(body) > wire.MaxCompressedBytes && len(items) > 1 {
		return u.pieces(ctx, pr, items[:len(items)/2], items[len(items)/2:])
	}
	a, err := u.send(ctx, body)
	if err != nil {
		return err
	}
	return u.answered(ctx, items, a, pr)
}

// answered acts on the cloud's answer a to the batch of items, as deliver describes.
func (u *Uplink) answered(ctx context.Context, items []item, a answer, pr *probe) error {
	switch {
	case a.status/100 == 2:
		if a.ackErr != nil {
			return fmt.Errorf("%w: %w", ErrBadAck, a.ackErr)
		}
		_, top := toBatch("", time.Time{}, items)
		if err := confirm(a.ack, top); err != nil {
			return fmt.Errorf("%w: %w", ErrBadAck, err)
		}
		u.confirmed(items)
		if len(a.ack.Acks) > 0 && u.opts.Acks != nil {
			u.opts.Acks(ctx, a.ack.Acks)
		}
		return nil
	case a.status == http.StatusRequestEntityTooLarge:
		if len(items) == 1 {
			u.setAside(ctx, items[0].st, items[0].seq, "too large for the cloud (HTTP 413): "+a.refusal.Error)
			return nil
		}
		half := len(items) / 2
		u.mu.Lock()
		u.limit, u.okStreak = max(1, min(u.limit, half)), 0
		u.mu.Unlock()
		u.log.Info("the cloud found a batch too large; halving the batch size", "records", len(items), "now", half)
		return u.pieces(ctx, pr, items[:half], items[half:])
	case a.status == http.StatusBadRequest:
		return u.isolate(ctx, items, a, pr)
	case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden:
		return refusedBy(ErrAuth, a)
	}
	return refusedBy(ErrCloud, a)
}

// isolate handles a 400. When the cloud names a record (readings[3].param), that record is
// sent alone and set aside if refused again, and the records around it go on; when it
// names none, the batch is bisected, once an empty batch has shown that the cloud takes
// this station's batches at all; when it names the batch itself (v, station), nothing can
// be blamed on a record: the batch fails whole.
func (u *Uplink) isolate(ctx context.Context, items []item, a answer, pr *probe) error {
	kind, st, idx := classifyField(a.refusal.Field)
	if kind == fieldBatch {
		return refusedBy(ErrRefused, a)
	}
	if kind == fieldNamed {
		if len(items) == 1 {
			u.setAside(ctx, items[0].st, items[0].seq, refusalText(a))
			return nil
		}
		if pos := position(items, st, idx); pos >= 0 {
			return u.pieces(ctx, pr, items[:pos], items[pos:pos+1], items[pos+1:])
		}
	}
	if err := u.probe(ctx, pr); err != nil {
		return err
	}
	if len(items) == 1 {
		u.setAside(ctx, items[0].st, items[0].seq, refusalText(a))
		return nil
	}
	return u.pieces(ctx, pr, items[:len(items)/2], items[len(items)/2:])
}

func refusalText(a answer) string {
	s := "refused by the cloud (HTTP 400): " + a.refusal.Error
	if a.refusal.Field != "" {
		s += " (field " + a.refusal.Field + ")"
	}
	return s
}

// pieces delivers each non-empty piece in turn and stops at the first failure.
func (u *Uplink) pieces(ctx context.Context, pr *probe, ps ...[]item) error {
	for _, p := range ps {
		if len(p) == 0 {
			continue
		}
		if err := u.deliver(ctx, p, nil, pr); err != nil {
			return err
		}
	}
	return nil
}

// probe sends an empty batch once per split batch: if the cloud refuses even that, the
// 400 is about this station's batches as such (a version the cloud does not read), and no
// record may be set aside for it.
func (u *Uplink) probe(ctx context.Context, pr *probe) error {
	if pr.done {
		return pr.err
	}
	body, err := u.encode(nil)
	if err != nil {
		return err
	}
	a, err := u.send(ctx, body)
	if err != nil {
		return err // no answer: try the whole thing again later
	}
	pr.done = true
	switch {
	case a.status/100 == 2:
	case a.status == http.StatusBadRequest:
		a.refusal.Error = "an empty batch is refused too: " + a.refusal.Error
		pr.err = refusedBy(ErrRefused, a)
	case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden:
		pr.err = refusedBy(ErrAuth, a)
	default:
		pr.done = false
		return refusedBy(ErrCloud, a)
	}
	return pr.err
}

type fieldKind int

const (
	fieldUnnamed fieldKind = iota // about records, none named
	fieldNamed                    // about one record: stream and index
	fieldBatch                    // about the batch itself
)

// classifyField reads the field of a 400 answer: "readings[3].param" names a record.
func classifyField(field string) (fieldKind, spool.Stream, int) {
	if field == "" {
		return fieldUnnamed, 0, 0
	}
	for _, st := range streams {
		name := st.String()
		if field == name || strings.HasPrefix(field, name+".") {
			return fieldUnnamed, 0, 0
		}
		rest, ok := strings.CutPrefix(field, name+"[")
		if !ok {
			continue
		}
		if end := strings.IndexByte(rest, ']'); end > 0 {
			if i, err := strconv.Atoi(rest[:end]); err == nil && i >= 0 {
				return fieldNamed, st, i
			}
		}
		return fieldUnnamed, 0, 0
	}
	return fieldBatch, 0, 0
}

// position finds the idx-th record of st in items (as the batch lists them), or -1.
func position(items []item, st spool.Stream, idx int) int {
	n := 0
	for i, it := range items {
		if it.st != st {
			continue
		}
		if n == idx {
			return i
		}
		n++
	}
	return -1
}

// send posts one batch, reading the token again and retrying once if it was refused,
// and counts the bytes it cost.
func (u *Uplink) send(ctx context.Context, body []byte) (answer, error) {
	defer u.accountWire()
	a, err := u.client.post(ctx, body, u.token, u.opts.RequestTimeout, u.opts.Now())
	if err == nil && (a.status == http.StatusUnauthorized || a.status == http.StatusForbidden) {
		u.tokenStale = true
		tok, terr := u.opts.Token()
		switch {
		case terr != nil:
			a.refusal.Error += "; and the token could not be read again: " + terr.Error()
		case tok != u.token:
			u.log.Info("the cloud refused the token; retrying with the token read again")
			u.token, u.tokenStale = tok, false
			a, err = u.client.post(ctx, body, u.token, u.opts.RequestTimeout, u.opts.Now())
		}
	}
	if err != nil {
		return answer{}, postError(err)
	}
	return a, nil
}

// postError is the error of a POST that got no answer.
func postError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	return fmt.Errorf("post batch: %w", err)
}

// encode builds the wire batch of items and compresses it.
func (u *Uplink) encode(items []item) ([]byte, error) {
	b, _ := toBatch(u.opts.Station, u.opts.Now(), items)
	b.Agent = version.Version
	body, err := wire.Encode(b)
	if err != nil {
		return nil, err
	}
	return body, nil
}

// confirmed records items as safe in the cloud. Within one lane, the records of a stream
// that a batch holds leave no hole but seqs already confirmed, set aside with the batch, or
// no longer stored (each lane reads a run of the stream), so each lane's span from its
// lowest to its highest seq is confirmed. That stays true of any piece of a split batch.
// Between the two lanes lie records not sent: the spans are never joined.
func (u *Uplink) confirmed(items []item) {
	var lo, hi [liveLane + 1][numStreams + 1]uint64
	for _, it := range items {
		l := &lo[it.lane][it.st]
		if *l == 0 || it.seq < *l {
			*l = it.seq
		}
		hi[it.lane][it.st] = max(hi[it.lane][it.st], it.seq)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for ln := range hi {
		for _, st := range streams {
			if hi[ln][st] > 0 {
				u.ahead[st].add(lo[ln][st], hi[ln][st])
			}
		}
	}
	u.st.LastSuccessAt = u.opts.Now().UTC()
	u.st.Acked += uint64(len(items))
}

// setAside gives up on one record so that it cannot block the queue: it counts as done
// for the cursor, is counted and logged, and raises the uplink_rejected alert (one alert,
// however many records follow it).
func (u *Uplink) setAside(ctx context.Context, st spool.Stream, seq uint64, why string) {
	now := u.opts.Now().UTC()
	u.mu.Lock()
	u.ahead[st].add(seq, seq)
	u.counters.Rejected++
	u.counters.LastRejectedAt = now
	n := u.counters.Rejected
	u.dirty = true
	u.mu.Unlock()
	u.log.Warn("record set aside: it will not reach the cloud", "stream", st.String(), "seq", seq,
		"reason", why, "set_aside_total", n)
	u.rejectMaybeOpen = true
	if u.alerts != nil && !u.rejectRaised {
		u.rejectRaised = true
		u.alerts.Set(ctx, alerting.Condition{
			Key: "uplink:rejected", Rule: RuleRejected, Severity: alerting.Warning,
			Message: fmt.Sprintf("A %s record (seq %d) was set aside and will not reach the cloud: %s. "+
				"Later ones are counted in ph-agent queue", st, seq, why),
		}, true)
	}
}

// settle records a pass's outcome and returns how long to wait before the next one.
func (u *Uplink) settle(ctx context.Context, err error) time.Duration {
	now := u.opts.Now().UTC()
	if err == nil || errors.Is(err, ErrBudgetExhausted) {
		u.bo.Reset()
		u.mu.Lock()
		failures := u.st.ConsecutiveFailures
		u.st.ConsecutiveFailures, u.st.State, u.st.NextRetryAt = 0, Idle, time.Time{}
		if err != nil {
			u.st.State = BudgetExhausted
			y, m, d := now.Date()
			u.st.NextRetryAt = time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
		}
		quiet := now.Sub(u.counters.LastRejectedAt) >= rejectQuiet
		u.mu.Unlock()
		if failures > 0 {
			u.log.Info("forwarding works again", "after_failures", failures)
		}
		u.loggedFailure = ""
		if u.alerts != nil && u.authMaybeOpen {
			u.alerts.Set(ctx, alerting.Condition{Key: "uplink:auth", Rule: RuleAuth}, false)
		}
		u.authMaybeOpen, u.authRaised = false, false
		if u.alerts != nil && u.rejectMaybeOpen && quiet {
			u.alerts.Set(ctx, alerting.Condition{Key: "uplink:rejected", Rule: RuleRejected}, false)
			u.rejectMaybeOpen, u.rejectRaised = false, false
		}
		return u.opts.Interval
	}

	var wait time.Duration
	state := BackingOff
	if errors.Is(err, ErrAuth) {
		wait, state = u.bo.AtCap(), AuthFailed
		u.tokenStale = true
	} else {
		var hint time.Duration
		if ce, ok := errors.AsType[*cloudError](err); ok {
			hint = ce.retryAfter
		}
		wait = u.bo.NextAfter(hint)
	}
	u.mu.Lock()
	u.st.ConsecutiveFailures++
	u.st.Failures++
	failures := u.st.ConsecutiveFailures
	u.st.State, u.st.NextRetryAt = state, now.Add(wait)
	u.st.LastError, u.st.LastErrorAt = err.Error(), now
	u.mu.Unlock()

	if msg := err.Error(); msg != u.loggedFailure {
		u.loggedFailure = msg
		u.log.Warn("forwarding failed; data stays in the buffer and is retried", "err", err,
			"failures", failures, "retry_in", wait.Round(time.Millisecond))
	} else {
		u.log.Debug("forwarding failed again", "failures", failures, "retry_in", wait.Round(time.Millisecond))
	}
	if u.alerts == nil {
		return wait
	}
	switch {
	case errors.Is(err, ErrAuth) && !u.authRaised:
		u.authRaised, u.authMaybeOpen = true, true
		u.alerts.Set(ctx, alerting.Condition{
			Key: "uplink:auth", Rule: RuleAuth, Severity: alerting.Critical,
			Message: "The cloud refuses this station's token (" + err.Error() + "); nothing is forwarded " +
				"until uplink.token or the file uplink.token_file holds a valid one (the file is read again " +
				"on every attempt, no restart needed)",
		}, true)
	case errors.Is(err, ErrRefused) && !u.rejectRaised:
		u.rejectRaised, u.rejectMaybeOpen = true, true
		u.alerts.Set(ctx, alerting.Condition{
			Key: "uplink:rejected", Rule: RuleRejected, Severity: alerting.Warning,
			Message: "The cloud refuses this station's batches as a whole (" + err.Error() + "); nothing is forwarded",
		}, true)
	}
	return wait
}

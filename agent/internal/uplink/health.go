package uplink

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/purehealth/purehealth/shared/version"
	"github.com/purehealth/purehealth/shared/wire"
)

// DefaultHealthInterval is how often the health record goes (Options.HealthInterval).
const DefaultHealthInterval = time.Minute

// healthDue reports whether a health record is to go now. Only the Run goroutine calls it.
func (u *Uplink) healthDue() bool {
	return u.opts.Health != nil && (u.healthAt.IsZero() || u.opts.Now().Sub(u.healthAt) >= u.opts.HealthInterval)
}

// sendHealth sends the station's health record when one is due, in a batch of its own
// with no records: a cloud that cannot take it (one older than the record's fields, or
// one that finds a field wrong) refuses nothing else, and nothing waits for it. It goes
// with the live lane, past the daily byte budget as alerts do; it is about 1 KiB a
// minute.
//
// A refusal (400, 413) is logged once per distinct message and counted, and the next
// record goes an interval later; no answer, 5xx or 429 fail the pass like any batch,
// and the record is taken afresh on the next attempt: a health record is a snapshot,
// never stored and never resent as it was.
func (u *Uplink) sendHealth(ctx context.Context) error {
	if !u.healthDue() || ctx.Err() != nil {
		return nil
	}
	h := u.opts.Health()
	if h == nil {
		return nil
	}
	now := u.opts.Now()
	body, err := wire.Encode(&wire.Batch{V: wire.Version, Station: u.opts.Station, Agent: version.Version,
		SentAt: now.UTC(), Health: h})
	if err != nil {
		return fmt.Errorf("health record: %w", err)
	}
	gctx, cancel := graceful(ctx, u.opts.Grace)
	defer cancel()
	a, err := u.send(gctx, body)
	if err != nil {
		return err
	}
	switch {
	case a.status/100 == 2:
		if a.ackErr != nil {
			return fmt.Errorf("%w: %w", ErrBadAck, a.ackErr)
		}
		u.healthAt = now
		u.mu.Lock()
		u.st.HealthSentAt = now.UTC()
		u.mu.Unlock()
		return nil
	case a.status == http.StatusBadRequest || a.status == http.StatusRequestEntityTooLarge:
		u.healthAt = now
		u.mu.Lock()
		u.st.HealthRefused++
		u.mu.Unlock()
		if msg := refusalText(a); msg != u.loggedHealthRefusal {
			u.loggedHealthRefusal = msg
			u.log.Warn("the cloud refused the station's health record; records still go", "answer", msg)
		}
		return nil
	case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden:
		return refusedBy(ErrAuth, a)
	}
	return refusedBy(ErrCloud, a)
}

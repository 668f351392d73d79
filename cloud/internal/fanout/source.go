package fanout

import (
	"context"
	"errors"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/store"
)

// Source is where a Hub's events come from: Follow brings the new ones as they are
// stored, IDBefore and Replay serve the resumes the hub's memory of recent events cannot,
// and UnknownStations tells the stations of the service from other ids. The hub itself only
// publishes, subscribes and evicts. StoreSource (the database: LISTEN/NOTIFY, polls and
// queries) is the Source ph-cloud uses.
//
// The events a Source hands over are rows as stored: a batch's readings come as one event
// of type store.EventReadings standing for the ids First()..ID (store.Event.Span), which the
// hub expands into reading messages only for the clients that want them. Bounds (after,
// ReplayQuery's After and Upto) may fall inside such a row: the hub leaves out the ids
// outside them.
type Source interface {
	// Follow delivers events in id order until ctx ends, then returns nil. It first calls
	// start, once, with the newest stored events (at most recent, oldest first) and the id
	// they follow: the position the hub starts from. Then it calls publish with every later
	// event, in batches, in id order, as they are stored. Both are called from the
	// goroutine running Follow, never after Follow returned. While the events cannot be
	// read Follow retries; it returns an error only for what retrying cannot mend.
	Follow(ctx context.Context, recent int, start func(after int64, evs []store.Event), publish func(evs []store.Event)) error
	// IDBefore returns the id of the newest event stored before t, 0 when there is none.
	IDBefore(ctx context.Context, t time.Time) (int64, error)
	// Replay calls send with the stored events q selects, in id order, unless q.Check
	// refuses them: then it sends nothing and returns Check's error. It stops at the first
	// error send returns, and returns it. send may be nil when q selects nothing.
	Replay(ctx context.Context, q ReplayQuery, send func(store.Event) error) error
	// UnknownStations returns those of ids that are not stations of the service.
	UnknownStations(ctx context.Context, ids []string) ([]string, error)
}

// Why a resume cannot be served (a Replay's errors other than the source's trouble).
var (
	ErrUnknownID = errors.New("since is not an event id of this service")
	ErrNotKept   = errors.New("events after since are no longer kept")
	ErrTooMany   = errors.New("too many events to resume")
	ErrTooOld    = errors.New("since is older than the replay window")
)

// ReplayQuery selects the stored events a resume sends, those in (After, Upto] of
// Stations (every station when nil), and bounds them: at most Max events, the first of
// them stored at or after Oldest. A query with Upto ≤ After sends nothing and only checks
// After.
type ReplayQuery struct {
	After, Upto int64
	Stations    []string
	Max         int
	Oldest      time.Time
}

// Check is the rule every Source applies before it replays: first and last are the ids
// of the oldest and the newest event stored (0 when none is), gap what q selects (counted
// up to Max+1). After must be an id the service has reached (else ErrUnknownID) whose
// successors are all still kept (else ErrNotKept); the gap must hold at most Max events
// (else ErrTooMany) and start at or after Oldest (else ErrTooOld).
func (q ReplayQuery) Check(first, last int64, gap store.EventGap) error {
	switch {
	case q.After > last:
		return ErrUnknownID
	case q.After < first-1 || first == 0:
		return ErrNotKept
	case gap.Count > q.Max:
		return ErrTooMany
	case gap.Count > 0 && gap.FirstCreated.Before(q.Oldest):
		return ErrTooOld
	}
	return nil
}

// eventQuery is the part of q the store reads, at most limit events.
func (q ReplayQuery) eventQuery(limit int) store.EventQuery {
	return store.EventQuery{After: q.After, Upto: q.Upto, Stations: q.Stations, Limit: limit}
}

// Package fusedwqi keeps each station's fused WQI current in the database: it fuses the
// newest usable value of every parameter from every source (fusion.Fuse), computes the
// index from them (fusion.ComputeWQI) and stores it with a live event of type wqi when it
// says something new (store.StoreFusedWQI).
//
// Inputs change in two ways: new data arrives (a station's batch, a posted sample, an
// upstream round), and values age out of their source's maximum age while nothing
// arrives. The service calls UpdateStations after storing new data (Sink does it for
// upstream rounds) and UpdateAll from a periodic job for the second.
//
// An Updater is safe for concurrent use and starts no goroutines.
package fusedwqi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/fusion"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/upstream"
	"github.com/purehealth/purehealth/shared/wqi"
)

// DefaultInterval is how often the service should run UpdateAll. It bounds how late a
// fused index notices an input that aged out of its source's maximum age while nothing
// new arrived; the shortest default maximum age is two hours (sensor).
const DefaultInterval = 5 * time.Minute

// Store is what the Updater reads and writes.
type Store interface {
	LatestValues(ctx context.Context, station string) ([]store.Latest, error)
	StoreFusedWQI(ctx context.Context, station string, w fusion.WQI) (bool, error)
	FusionStations(ctx context.Context, since time.Time) ([]string, error)
}

// Options tune an Updater. Zero fields mean the defaults.
type Options struct {
	Policy   fusion.Policy    // default fusion.DefaultPolicy()
	DOMethod wqi.DOMethod     // default Benson & Krause
	Log      *slog.Logger     // default: discard
	Now      func() time.Time // default time.Now
}

// Updater computes and stores fused WQI results.
type Updater struct {
	st   Store
	opts Options
}

// New returns an Updater over st.
func New(st Store, opts Options) *Updater {
	if opts.Policy.Priority == nil {
		opts.Policy = fusion.DefaultPolicy()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Updater{st: st, opts: opts}
}

// Update computes the station's fused WQI now and stores it if it changed. It returns
// the result (nil when no index input is fresh) and whether it was stored.
func (u *Updater) Update(ctx context.Context, station string) (*fusion.WQI, bool, error) {
	latest, err := u.st.LatestValues(ctx, station)
	if err != nil {
		return nil, false, err
	}
	cands := make([]fusion.Candidate, len(latest))
	for i, l := range latest {
		cands[i] = fusion.Candidate{Param: l.Param, Source: l.Source, Time: l.Time, Value: l.Value,
			Unit: l.Unit, Quality: l.Quality, Sensor: l.Sensor, Origin: l.Origin}
	}
	now := u.opts.Now()
	w, err := fusion.ComputeWQI(fusion.Fuse(u.opts.Policy, now, cands), now, u.opts.DOMethod, 1)
	if errors.Is(err, wqi.ErrNoInputs) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("fused wqi of %s: %w", station, err)
	}
	stored, err := u.st.StoreFusedWQI(ctx, station, w)
	if err != nil {
		return nil, false, err
	}
	if stored {
		u.opts.Log.Debug("fused wqi", "station", station, "wqi", w.Result.WQI, "class", w.Result.Class,
			"partial", w.Result.Partial)
	}
	return &w, stored, nil
}

// UpdateStations updates each station, going on past failures; the error joins them.
func (u *Updater) UpdateStations(ctx context.Context, stations ...string) error {
	var errs []error
	for _, id := range stations {
		if _, _, err := u.Update(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// UpdateAll updates every station: the periodic job, for values that age out.
func (u *Updater) UpdateAll(ctx context.Context) error {
	ids, err := u.st.FusionStations(ctx, time.Time{})
	if err != nil {
		return err
	}
	return u.UpdateStations(ctx, ids...)
}

// UpstreamStore is the storage an upstream Sink writes to.
type UpstreamStore interface {
	StoreUpstreamReadings(ctx context.Context, rs []upstream.Reading) (store.StoreResult, error)
}

// Sink is an upstream.Sink that updates the fused WQI of the stations a round changed.
// A failed update is logged, not returned: the readings are stored, and the periodic job
// catches up.
type Sink struct {
	Store   UpstreamStore
	Updater *Updater
}

// StoreUpstream implements upstream.Sink.
func (s Sink) StoreUpstream(ctx context.Context, rs []upstream.Reading) (upstream.Stored, error) {
	res, err := s.Store.StoreUpstreamReadings(ctx, rs)
	if err != nil {
		return upstream.Stored{}, err
	}
	if err := s.Updater.UpdateStations(ctx, res.Stations...); err != nil {
		s.Updater.opts.Log.Warn("fused wqi after an upstream round", "err", err)
	}
	return res.Stored, nil
}

var _ upstream.Sink = Sink{}

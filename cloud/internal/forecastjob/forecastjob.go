// Package forecastjob is the cloud's forecast round: for every station it forecasts each
// parameter and the WQI for the next 24 hours (package forecast), stores what changed
// (one row per forecast issued, or per reason there is none; each new forecast is also a
// "prediction" live message), and keeps the station's early warnings current: a
// forecast_breach cloud alert per class limit that a forecast's 80 % interval crosses.
//
// # A round
//
// Round reads, per station, up to History (28 days) of its series: the hourly rollup
// before the last RawWindow (6 h), the good readings themselves after it (and the WQI
// alike), and calls forecast.Make on each series, issued at the round's time. Stations
// are done by at most Workers goroutines at once, each reading, computing and writing
// its own station, so that a round's database work is spread and its CPU bounded.
// Several replicas may run the job: RunExclusive lets one round run at a time across
// them, and a replica that finds one running skips its turn.
//
// Within an hour a series gives the same forecast (forecast.Make ignores the hour in
// progress), so most rounds store nothing new: store.StoreForecasts keeps a record only
// when its digest (model, reason, skill, points) differs from the newest of its series.
//
// # Early warnings
//
// For each forecast and each limit of the station's CPCB class on its parameter
// (shared/criteria), forecast.Check says whether the 80 % interval crosses it within the
// horizon. A crossing opens (or keeps) the alert of key forecast_breach/<param>/<min|max>
// with Breach.Message and the evidence (limit, the first and the worst hour, the
// forecast's model and skill); warning when the interval crosses, critical when the
// point forecast itself does (better than even odds). A forecast that moves updates the
// alert (escalated when it turns critical). The alert resolves with hysteresis: only once
// every hour's 80 % bound is back inside the limit by Deadband (2 % of the limit, as the
// station's own threshold alerts), or when the series has no forecast any more. The
// alerts go through store.SyncCloudAlerts, so their transitions reach the live stream
// and the notification channels like every cloud alert.
//
// # Caveats
//
// Hours older than RawWindow are hourly means of the rollup, which holds good and suspect
// readings alike (it excludes only bad ones): a suspect reading of an older hour weighs
// in its mean. Most are spikes among many good readings of the hour; an hour made only
// of suspect readings is an outlier hour that forecast's own Hampel filter drops.
package forecastjob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/purehealth/purehealth/cloud/internal/forecast"
	"github.com/purehealth/purehealth/cloud/internal/hourly"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/criteria"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Defaults of Options.
const (
	// DefaultInterval is how often a round runs (design §5: 15 minutes).
	DefaultInterval = 15 * time.Minute
	// DefaultHistory is what a forecast looks back on: forecast's own maximum.
	DefaultHistory = hourly.DefaultMaxHours * time.Hour
	// DefaultRawWindow is the recent span read reading by reading, good ones only: the
	// hours that set a forecast's level and the staleness check (forecast.DefaultMaxStale),
	// short enough that a round of a thousand stations reporting every minute reads a
	// few million rows, not tens of millions.
	DefaultRawWindow = 6 * time.Hour
	// DefaultDeadband is the hysteresis of an early warning, as a fraction of the limit:
	// the same margin as the station agents' threshold alerts.
	DefaultDeadband = 0.02
)

// DefaultWorkers is the number of stations done at once: half the processors, so that a
// round leaves room for ingest and the API.
func DefaultWorkers() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// Options tune a Runner. Zero fields mean the defaults.
type Options struct {
	History   time.Duration
	RawWindow time.Duration
	Workers   int
	// Location is the time zone of the hours early warnings name (default UTC).
	Location *time.Location
	Deadband float64
	Log      *slog.Logger
	Now      func() time.Time
}

func (o Options) withDefaults() Options {
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.RawWindow <= 0 {
		o.RawWindow = DefaultRawWindow
	}
	o.RawWindow = min(o.RawWindow, o.History)
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers()
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Deadband <= 0 {
		o.Deadband = DefaultDeadband
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Runner runs forecast rounds. It is safe for concurrent use; rounds of one Runner (and
// of every replica's) do not overlap.
type Runner struct {
	store *store.Store
	opts  Options
}

// New returns a Runner over st.
func New(st *store.Store, opts Options) *Runner {
	return &Runner{store: st, opts: opts.withDefaults()}
}

// LockName is the name of the round's lock across replicas (store.RunExclusive).
const LockName = "forecast round"

// Report says what a round did.
type Report struct {
	Stations   int
	Series     int
	Forecasts  int // series with a forecast
	NoForecast int // series without one (too little history, stale ...)
	Stored     int // records stored: new forecasts and new reasons
	Warnings   int // early warnings open after the round
	Changes    int // alert transitions made
	Failed     int // stations whose round failed (logged)
	Took       time.Duration
	Skipped    bool // another replica was running a round
}

// Round forecasts every station once (see the package comment). A station that fails
// is logged and counted, and the others go on; the error then says how many failed.
func (r *Runner) Round(ctx context.Context) (Report, error) {
	var rep Report
	start := time.Now()
	err := r.store.RunExclusive(ctx, LockName, func(ctx context.Context) error {
		var err error
		rep, err = r.round(ctx)
		return err
	})
	rep.Took = time.Since(start)
	if errors.Is(err, store.ErrBusy) {
		rep.Skipped = true
		return rep, nil
	}
	return rep, err
}

func (r *Runner) round(ctx context.Context) (Report, error) {
	// Whole seconds: the time of issue reads the same in the forecast, its row and its
	// live message (PostgreSQL keeps microseconds).
	now := r.opts.Now().UTC().Truncate(time.Second)
	var rep Report
	stations, err := allStations(ctx, r.store)
	if err != nil {
		return rep, err
	}
	rep.Stations = len(stations)
	var mu sync.Mutex
	var failed atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Workers)
	for _, st := range stations {
		g.Go(func() error {
			sr, err := r.station(gctx, st, now)
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				failed.Add(1)
				r.opts.Log.Error("forecast round: station failed", "station", st.ID, "err", err)
				return nil
			}
			mu.Lock()
			rep.Series += sr.Series
			rep.Forecasts += sr.Forecasts
			rep.NoForecast += sr.NoForecast
			rep.Stored += sr.Stored
			rep.Warnings += sr.Warnings
			rep.Changes += sr.Changes
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rep, err
	}
	rep.Failed = int(failed.Load())
	if rep.Failed > 0 {
		return rep, fmt.Errorf("forecast round: %d of %d stations failed (see the log)", rep.Failed, rep.Stations)
	}
	return rep, nil
}

// allStations pages through every station.
func allStations(ctx context.Context, st *store.Store) ([]store.Station, error) {
	const page = 1000
	var out []store.Station
	after := ""
	for {
		list, err := st.Stations(ctx, after, page)
		if err != nil {
			return nil, err
		}
		out = append(out, list...)
		if len(list) < page {
			return out, nil
		}
		after = list[len(list)-1].ID
	}
}

// Forecastable reports whether a series is forecast: a canonical parameter or the WQI.
func Forecastable(param string) bool {
	if param == store.WQISeries {
		return true
	}
	_, ok := telemetry.Info(telemetry.Param(param))
	return ok
}

// Readings turns a series of the store into forecast's input: its hours as one good
// reading each (the hourly mean, at the start of the hour), then its readings.
func Readings(sr store.Series) []forecast.Reading {
	out := make([]forecast.Reading, 0, len(sr.Hourly)+len(sr.Readings))
	for _, h := range sr.Hourly {
		out = append(out, forecast.Reading{Time: h.Hour, Value: h.Mean, Quality: telemetry.Good})
	}
	for _, p := range sr.Readings {
		out = append(out, forecast.Reading{Time: p.Time, Value: p.Value, Quality: p.Quality})
	}
	return out
}

// stationReport is one station's part of a Report.
type stationReport struct {
	Series, Forecasts, NoForecast, Stored, Warnings, Changes int
}

func (r *Runner) station(ctx context.Context, st store.Station, now time.Time) (stationReport, error) {
	var rep stationReport
	series, err := r.store.AnalysisSeries(ctx, store.SeriesQuery{
		Stations: []string{st.ID}, From: now.Add(-r.opts.History), RawFrom: now.Add(-r.opts.RawWindow), To: now,
		Qualities: []telemetry.Quality{telemetry.Good}, WQI: true,
	})
	if err != nil {
		return rep, err
	}
	// What is published already: a forecast that has not changed keeps the time it was
	// issued, in the warnings' evidence too.
	published, err := r.store.LatestForecasts(ctx, st.ID, now.Add(-r.opts.History))
	if err != nil {
		return rep, err
	}
	var recs []store.ForecastRecord
	var made []forecast.Forecast
	for _, sr := range series {
		if !Forecastable(sr.Param) {
			continue
		}
		rep.Series++
		rec, f, err := Make(st.ID, sr.Param, Readings(sr), now)
		if err != nil {
			return rep, err
		}
		if f == nil {
			rep.NoForecast++
		} else {
			rep.Forecasts++
			if p, ok := published[sr.Param]; ok && p.Digest == rec.Digest {
				f.IssuedAt = p.IssuedAt
			}
			made = append(made, *f)
		}
		recs = append(recs, rec)
	}
	stored, err := r.store.StoreForecasts(ctx, recs)
	if err != nil {
		return rep, err
	}
	rep.Stored = len(stored)
	warnings, changes, err := r.warn(ctx, st, made, now)
	rep.Warnings, rep.Changes = warnings, changes
	return rep, err
}

// Make forecasts one series issued at now and returns the record to store and the
// forecast (nil when there is none: the record says why). An error is a caller's
// mistake (forecast.ErrInvalid), never a lack of data.
func Make(station, param string, readings []forecast.Reading, now time.Time) (store.ForecastRecord, *forecast.Forecast, error) {
	res, err := forecast.Make(forecast.Input{Station: station, Param: param, Readings: readings, IssuedAt: now},
		forecast.Options{})
	rec := store.ForecastRecord{Station: station, Param: param, IssuedAt: now}
	switch {
	case errors.Is(err, forecast.ErrInvalid):
		return rec, nil, fmt.Errorf("forecast %s %s: %w", station, param, err)
	case err != nil:
		rec.Reason = err.Error()
		rec.Digest = digest("", rec.Reason, nil)
		return rec, nil, nil
	}
	f := res.Forecast
	data, err := json.Marshal(f)
	if err != nil {
		return rec, nil, fmt.Errorf("encode forecast of %s %s: %w", station, param, err)
	}
	rec.Model, rec.Data = f.Model, data
	rec.Digest = digest(f.Model, "", &f)
	return rec, &f, nil
}

// digest identifies a forecast's content or a reason, leaving out the time of issue.
func digest(model, reason string, f *forecast.Forecast) string {
	h := sha256.New()
	h.Write([]byte(model + "\x00" + reason + "\x00"))
	if f != nil {
		body, _ := json.Marshal(struct {
			Skill  forecast.Skill   `json:"skill"`
			Points []forecast.Point `json:"points"`
		}{f.Skill, f.Points}) // plain numbers and times: cannot fail
		h.Write(body)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// BreachKey is the key of the early warning of one limit.
func BreachKey(l criteria.Limit) string {
	return store.RuleForecastBreach + "/" + string(l.Param) + "/" + l.Bound.String()
}

// breachEvidence is the evidence of a forecast_breach alert.
type breachEvidence struct {
	Limit    limitJSON      `json:"limit"`
	First    forecast.Point `json:"first"`
	Worst    forecast.Point `json:"worst"`
	Likely   bool           `json:"likely"`
	Forecast forecastRef    `json:"forecast"`
}

type limitJSON struct {
	Set   string  `json:"set"`
	Param string  `json:"param"`
	Bound string  `json:"bound"`
	Value float64 `json:"value"`
	Label string  `json:"label"`
}

type forecastRef struct {
	IssuedAt time.Time      `json:"issued_at"`
	Model    string         `json:"model"`
	Skill    forecast.Skill `json:"skill"`
}

// Warning is the early warning of a breach: the cloud alert a forecast_breach sync wants.
func Warning(station string, f forecast.Forecast, b forecast.Breach, loc *time.Location) (store.CloudAlert, error) {
	l := b.Limit
	ev, err := json.Marshal(breachEvidence{
		Limit: limitJSON{Set: l.Set, Param: string(l.Param), Bound: l.Bound.String(), Value: l.Value, Label: l.Label},
		First: b.First, Worst: b.Worst, Likely: b.Likely,
		Forecast: forecastRef{IssuedAt: f.IssuedAt, Model: f.Model, Skill: f.Skill},
	})
	if err != nil {
		return store.CloudAlert{}, fmt.Errorf("encode evidence: %w", err)
	}
	value := b.First.Lo80
	if l.Bound == criteria.Max {
		value = b.First.Hi80
	}
	sev := alert.Warning
	if b.Likely {
		sev = alert.Critical
	}
	limit := l.Value
	return store.CloudAlert{Station: station, Rule: store.RuleForecastBreach, Key: BreachKey(l), Param: f.Param,
		Severity: sev, Message: b.Message(loc), Value: &value, Limit: &limit, Evidence: ev}, nil
}

// cleared reports whether every hour's 80 % bound of f is back inside l by deadband.
func cleared(f forecast.Forecast, l criteria.Limit, deadband float64) bool {
	for _, p := range f.Points {
		bound := p.Lo80
		if l.Bound == criteria.Max {
			bound = p.Hi80
		}
		if !l.Cleared(bound, deadband) {
			return false
		}
	}
	return true
}

// warn reconciles the station's early warnings with its forecasts and returns how many
// are open and how many transitions it made.
func (r *Runner) warn(ctx context.Context, st store.Station, made []forecast.Forecast, now time.Time) (int, int, error) {
	scope := store.CloudAlertScope{Rules: []string{store.RuleForecastBreach}, Stations: []string{st.ID}}
	known, err := r.store.CloudAlerts(ctx, scope, now)
	if err != nil {
		return 0, 0, err
	}
	open := map[string]store.Alert{}
	for _, a := range known {
		if a.State != alert.Resolved {
			open[a.Key] = a
		}
	}
	var limits []criteria.Limit
	if class, err := criteria.ParseClass(st.Class); err == nil {
		limits = criteria.DesignatedBestUse(class)
	}
	var want []store.CloudAlert
	for _, f := range made {
		for _, l := range limits {
			if string(l.Param) != f.Param {
				continue
			}
			if b, ok := forecast.Check(f, l); ok {
				w, err := Warning(st.ID, f, b, r.opts.Location)
				if err != nil {
					return 0, 0, err
				}
				want = append(want, w)
				continue
			}
			// Hysteresis: an open warning stays, as it is, until the forecast is clear of
			// the limit by the deadband.
			if a, ok := open[BreachKey(l)]; ok && !cleared(f, l, r.opts.Deadband) {
				want = append(want, store.CloudAlert{Station: st.ID, Rule: a.Rule, Key: a.Key, Param: a.Param,
					Severity: a.Severity, Message: a.Message, Value: a.Value, Limit: a.Limit, Evidence: a.Evidence})
			}
		}
	}
	if len(want) == 0 && len(open) == 0 {
		return 0, 0, nil
	}
	changes, err := r.store.SyncCloudAlerts(ctx, scope, want, now)
	if err != nil {
		return 0, 0, err
	}
	for _, c := range changes {
		r.opts.Log.Info("early warning", "station", st.ID, "transition", c.Transition, "key", c.Alert.Key,
			"severity", c.Alert.Severity, "message", strings.TrimSpace(c.Alert.Message))
	}
	return len(want), len(changes), nil
}

// Package anomalyjob is the cloud's cross-station anomaly detection round: for every river
// (the stations that share one, ordered by river_km) it runs the detector of package
// anomaly over the recent weeks of every station's parameters and keeps the river's
// cloud alerts in step with what it finds.
//
// # A round
//
// Round reads, per river, History (14 days) of each station's good and suspect readings:
// the hourly rollup (good and suspect readings, as it holds them) before the last
// RawWindow (24 h) and the readings themselves after it, so that spikes and stuck values
// are judged on readings and a round reads one row per hour of the older past however
// fast the probes report. A station on no river is a river of its own. Rivers are done by
// at most Workers goroutines at once; across replicas one round runs at a time
// (store.RunExclusive).
//
// # Alerts
//
// Each finding with a verdict worth an operator's attention is a cloud alert (rule =
// verdict) at the station where it was first seen, with the finding's explanation as its
// message and the finding itself as evidence (the episodes behind it, with the hours'
// values, baselines, normal ranges and scores):
//
//   - pollution_event (critical): seen at a station and then downstream with a plausible
//     delay; the message names where it was first seen and how it travelled;
//   - suspect_sensor (warning): one parameter at one station while its neighbours stay
//     normal, or a stuck or spiking probe;
//   - local_event (warning): several independent measurements changed together at one
//     station and at no other (yet). It is the water, not a sensor, and it did not (yet)
//     travel: a discharge between two stations or below the last one. It is raised as a
//     rule of its own rather than folded into pollution_event, whose contract is that the
//     change was seen travelling.
//
// pending and unconfirmed findings (one parameter at one station, with a neighbour still
// to see it or none able to) raise nothing: they become one of the above when the river
// says more.
//
// A finding that persists keeps its alert from round to round: a finding matches an alert
// of its rule at its station when their parameters overlap and their spans overlap
// (within the detector's Overlap), whatever the window of weeks now cuts off its start.
// A finding that grows (one more station reached, a higher peak) updates the alert; one
// that is over resolves it. A finding first seen when it is already over (a backlog that
// arrived late) is recorded as an alert opened and resolved at once. An open alert whose
// finding turned pending or unconfirmed stays as it is (hysteresis); one whose finding
// is gone resolves.
package anomalyjob

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/purehealth/purehealth/cloud/internal/anomaly"
	"github.com/purehealth/purehealth/cloud/internal/hourly"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// Defaults of Options.
const (
	// DefaultInterval is how often a round runs (design §5: 5 minutes).
	DefaultInterval = 5 * time.Minute
	// DefaultHistory is what the detector looks at: its own default span.
	DefaultHistory = 14 * 24 * time.Hour
	// DefaultRawWindow is the recent span read reading by reading: spike clusters need a
	// day, stuck values an hour or more.
	DefaultRawWindow = 24 * time.Hour
	// DefaultWorkers: rivers done at once.
	DefaultWorkers = 2
)

// Rules are the cloud alert rules this job owns.
var Rules = []string{store.RulePollutionEvent, store.RuleSuspectSensor, store.RuleLocalEvent}

// severities of the rules.
var severities = map[string]alert.Severity{
	store.RulePollutionEvent: alert.Critical,
	store.RuleSuspectSensor:  alert.Warning,
	store.RuleLocalEvent:     alert.Warning,
}

// Options tune a Runner. Zero fields mean the defaults.
type Options struct {
	History   time.Duration
	RawWindow time.Duration
	Workers   int
	Detector  anomaly.Options
	Log       *slog.Logger
	Now       func() time.Time
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
		o.Workers = DefaultWorkers
	}
	if o.Detector.MaxHours <= 0 {
		o.Detector.MaxHours = int(o.History / time.Hour)
	}
	if o.Detector.Overlap <= 0 {
		o.Detector.Overlap = 3 * time.Hour
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Runner runs detection rounds. It is safe for concurrent use; rounds (of every replica)
// do not overlap.
type Runner struct {
	store *store.Store
	opts  Options
}

// New returns a Runner over st.
func New(st *store.Store, opts Options) *Runner {
	return &Runner{store: st, opts: opts.withDefaults()}
}

// LockName is the name of the round's lock across replicas (store.RunExclusive).
const LockName = "anomaly round"

// Report says what a round did.
type Report struct {
	Rivers   int
	Stations int
	Series   int
	Findings map[anomaly.Verdict]int
	Open     int // alerts of the rules open after the round
	Changes  int // alert transitions made
	Failed   int // rivers whose round failed (logged)
	Took     time.Duration
	Skipped  bool // another replica was running a round
}

// Round runs the detector over every river once (see the package comment). A river that
// fails is logged and counted, and the others go on.
func (r *Runner) Round(ctx context.Context) (Report, error) {
	rep := Report{Findings: map[anomaly.Verdict]int{}}
	start := time.Now()
	err := r.store.RunExclusive(ctx, LockName, func(ctx context.Context) error {
		return r.round(ctx, &rep)
	})
	rep.Took = time.Since(start)
	if errors.Is(err, store.ErrBusy) {
		rep.Skipped = true
		return rep, nil
	}
	return rep, err
}

// Rivers groups stations by river; a station on none is a river of its own (named "").
func Rivers(stations []store.Station) []anomaly.River {
	byName := map[string]*anomaly.River{}
	var out []*anomaly.River
	for _, st := range stations {
		if st.River == nil {
			out = append(out, &anomaly.River{Stations: []anomaly.Station{{ID: st.ID}}})
			continue
		}
		rv := byName[*st.River]
		if rv == nil {
			rv = &anomaly.River{Name: *st.River}
			byName[*st.River] = rv
			out = append(out, rv)
		}
		rv.Stations = append(rv.Stations, anomaly.Station{ID: st.ID, Km: *st.RiverKm})
	}
	list := make([]anomaly.River, len(out))
	for i, rv := range out {
		list[i] = *rv
	}
	return list
}

func (r *Runner) round(ctx context.Context, rep *Report) error {
	now := r.opts.Now().UTC()
	var stations []store.Station
	after := ""
	for {
		page, err := r.store.Stations(ctx, after, 1000)
		if err != nil {
			return err
		}
		stations = append(stations, page...)
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].ID
	}
	rivers := Rivers(stations)
	rep.Rivers, rep.Stations = len(rivers), len(stations)
	var mu sync.Mutex
	var failed atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Workers)
	for _, rv := range rivers {
		g.Go(func() error {
			rr, err := r.river(gctx, rv, now)
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				failed.Add(1)
				r.opts.Log.Error("anomaly round: river failed", "river", rv.Name, "stations", len(rv.Stations), "err", err)
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Series += rr.series
			for v, n := range rr.findings {
				rep.Findings[v] += n
			}
			rep.Open += rr.open
			rep.Changes += rr.changes
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	rep.Failed = int(failed.Load())
	if rep.Failed > 0 {
		return fmt.Errorf("anomaly round: %d of %d rivers failed (see the log)", rep.Failed, rep.Rivers)
	}
	return nil
}

type riverReport struct {
	series, open, changes int
	findings              map[anomaly.Verdict]int
}

// SeriesOf turns the store's series into the detector's: readings as points, the rollup's
// hours as Hourly.
func SeriesOf(in []store.Series) []anomaly.Series {
	out := make([]anomaly.Series, 0, len(in))
	for _, sr := range in {
		if _, ok := telemetry.Info(telemetry.Param(sr.Param)); !ok {
			continue
		}
		s := anomaly.Series{Station: sr.Station, Param: sr.Param, Points: make([]hourly.Point, len(sr.Readings)),
			Hourly: make([]anomaly.HourValue, len(sr.Hourly))}
		for i, p := range sr.Readings {
			s.Points[i] = hourly.Point{Time: p.Time, Value: p.Value}
		}
		for i, h := range sr.Hourly {
			s.Hourly[i] = anomaly.HourValue{Time: h.Hour, Value: h.Mean, Count: int(h.Count)}
		}
		out = append(out, s)
	}
	return out
}

func (r *Runner) river(ctx context.Context, rv anomaly.River, now time.Time) (riverReport, error) {
	rep := riverReport{findings: map[anomaly.Verdict]int{}}
	ids := make([]string, len(rv.Stations))
	for i, s := range rv.Stations {
		ids[i] = s.ID
	}
	raw, err := r.store.AnalysisSeries(ctx, store.SeriesQuery{Stations: ids, From: now.Add(-r.opts.History),
		RawFrom: now.Add(-r.opts.RawWindow), To: now, Qualities: []telemetry.Quality{telemetry.Good, telemetry.Suspect}})
	if err != nil {
		return rep, err
	}
	series := SeriesOf(raw)
	rep.series = len(series)
	findings := anomaly.Analyze(rv, series, r.opts.Detector)
	for _, f := range findings {
		rep.findings[f.Verdict]++
	}
	scope := store.CloudAlertScope{Rules: Rules, Stations: ids}
	known, err := r.store.CloudAlerts(ctx, scope, now.Add(-r.opts.History))
	if err != nil {
		return rep, err
	}
	want, err := Want(findings, known, r.opts.Detector.Overlap)
	if err != nil {
		return rep, err
	}
	for _, w := range want {
		if !w.Over {
			rep.open++
		}
	}
	if len(want) == 0 && !slices.ContainsFunc(known, func(a store.Alert) bool { return a.State != alert.Resolved }) {
		return rep, nil
	}
	changes, err := r.store.SyncCloudAlerts(ctx, scope, want, now)
	if err != nil {
		return rep, err
	}
	rep.changes = len(changes)
	for _, c := range changes {
		r.opts.Log.Info("anomaly", "station", c.Alert.Station, "rule", c.Alert.Rule, "transition", c.Transition,
			"key", c.Alert.Key, "message", c.Alert.Message)
	}
	return rep, nil
}

// alerting reports whether a verdict raises an alert.
func alerting(v anomaly.Verdict) bool {
	_, ok := severities[string(v)]
	return ok
}

// span is what an alert's evidence says of its finding.
type span struct {
	station    string
	params     []string
	start, end time.Time
}

func spanOf(a store.Alert) (span, bool) {
	var f anomaly.Finding
	if len(a.Evidence) == 0 || json.Unmarshal(a.Evidence, &f) != nil || f.Start.IsZero() {
		return span{}, false
	}
	return span{station: a.Station, params: f.Params, start: f.Start, end: f.End}, true
}

func (s span) matches(f anomaly.Finding, slack time.Duration) bool {
	if s.station != f.Station || !slices.ContainsFunc(f.Params, func(p string) bool { return slices.Contains(s.params, p) }) {
		return false
	}
	return f.Start.Add(-slack).Before(s.end) && s.start.Before(f.End.Add(slack))
}

// Want turns a round's findings into the alerts the river should have, given the alerts of
// the rules known at its stations (open, and resolved within the detector's window): see
// the package comment.
func Want(findings []anomaly.Finding, known []store.Alert, slack time.Duration) ([]store.CloudAlert, error) {
	spans := make([]span, len(known))
	has := make([]bool, len(known))
	for i, a := range known {
		spans[i], has[i] = spanOf(a)
	}
	used := make([]bool, len(known))
	keys := map[[2]string]bool{}
	var want []store.CloudAlert
	// match finds the known alert of rule that f continues: an open one first.
	match := func(f anomaly.Finding, rule string) int {
		best := -1
		for i, a := range known {
			if used[i] || !has[i] || a.Rule != rule || !spans[i].matches(f, slack) {
				continue
			}
			if best < 0 || (a.State != alert.Resolved && known[best].State == alert.Resolved) {
				best = i
			}
		}
		return best
	}
	for _, f := range findings {
		if !alerting(f.Verdict) {
			continue
		}
		rule := string(f.Verdict)
		key := fmt.Sprintf("%s/%s/%s", rule, strings.Join(f.Params, "+"), f.Start.UTC().Format("20060102T15"))
		if i := match(f, rule); i >= 0 {
			used[i], key = true, known[i].Key
		}
		if keys[[2]string{f.Station, key}] {
			continue // two findings of one condition: the first speaks for it
		}
		keys[[2]string{f.Station, key}] = true
		w, err := cloudAlert(f, rule, key)
		if err != nil {
			return nil, err
		}
		want = append(want, w)
	}
	// Hysteresis: an open alert whose finding is now pending or unconfirmed stays.
	for i, a := range known {
		if used[i] || !has[i] || a.State == alert.Resolved || keys[[2]string{a.Station, a.Key}] {
			continue
		}
		for _, f := range findings {
			if !alerting(f.Verdict) && f.Ongoing && spans[i].matches(f, slack) {
				keys[[2]string{a.Station, a.Key}] = true
				want = append(want, store.CloudAlert{Station: a.Station, Rule: a.Rule, Key: a.Key, Param: a.Param,
					Severity: a.Severity, Message: a.Message, Value: a.Value, Limit: a.Limit, Evidence: a.Evidence})
				break
			}
		}
	}
	slices.SortStableFunc(want, func(x, y store.CloudAlert) int {
		return cmp.Or(cmp.Compare(x.Station, y.Station), cmp.Compare(x.Key, y.Key))
	})
	return want, nil
}

// maxEvidenceHours bounds the hours each episode of an alert's evidence keeps: the first
// and the last half of them.
const maxEvidenceHours = 24

// cloudAlert is the alert of a finding.
func cloudAlert(f anomaly.Finding, rule, key string) (store.CloudAlert, error) {
	ev := f
	ev.Evidence = slices.Clone(f.Evidence)
	for hours := maxEvidenceHours; ; hours /= 2 {
		for i := range ev.Evidence {
			ev.Evidence[i].Hours = trim(f.Evidence[i].Hours, hours)
		}
		data, err := json.Marshal(ev)
		if err != nil {
			return store.CloudAlert{}, fmt.Errorf("encode evidence: %w", err)
		}
		if len(data) <= store.MaxEvidence || hours == 0 {
			w := store.CloudAlert{Station: f.Station, Rule: rule, Key: key, Severity: severities[rule],
				Message: f.Explanation, Evidence: data, Over: !f.Ongoing}
			if len(f.Params) > 0 {
				w.Param = f.Params[0]
			}
			if len(f.Evidence) > 0 {
				v := f.Evidence[0].Peak.Value
				w.Value = &v
			}
			if len(data) > store.MaxEvidence {
				w.Evidence = nil // a finding of dozens of episodes: its explanation says it
			}
			return w, nil
		}
	}
}

// trim keeps the first and last n/2 of hs.
func trim(hs []anomaly.Evidence, n int) []anomaly.Evidence {
	if len(hs) <= n {
		return hs
	}
	out := slices.Clone(hs[:n/2])
	return append(out, hs[len(hs)-(n-n/2):]...)
}

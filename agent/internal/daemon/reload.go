package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/config"
	"github.com/purehealth/purehealth/agent/internal/taskset"
	"github.com/purehealth/purehealth/shared/criteria"
)

// Reloadable are the configuration keys a running agent applies (Reload), each with
// everything below it: the thresholds (the station's class, alerts.rule_sets, deadband,
// clear and bad counts, offline factor, calibration age), the alert hooks and the probes.
// A change to any other key takes effect at the next start.
var Reloadable = []string{"station.class", "alerts", "probes"}

func reloadable(key string) bool {
	return slices.ContainsFunc(Reloadable, func(r string) bool { return key == r || strings.HasPrefix(key, r+".") })
}

// ReloadResult is what a reload changed.
type ReloadResult struct {
	Applied       []string // changed keys now in effect
	RestartNeeded []string // changed keys that wait for a restart
	Probes        taskset.Changes
}

// ErrReload wraps every reason a reload was refused; the running configuration is then
// unchanged.
var ErrReload = errors.New("configuration not reloaded")

// reloads keeps the history of reloads for `ph-agent status` and the metrics.
type reloads struct {
	apply sync.Mutex // one reload at a time

	mu            sync.Mutex
	applied       uint64
	failed        uint64
	last          time.Time
	lastErr       string
	restartNeeded []string
	path          string
}

func (r *reloads) status() *admin.ConfigStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.applied == 0 && r.failed == 0 {
		return nil
	}
	return &admin.ConfigStatus{Path: r.path, Reloads: r.applied, Failed: r.failed, LastReloadAt: r.last,
		LastError: r.lastErr, RestartNeeded: slices.Clone(r.restartNeeded)}
}

func (r *reloads) counts() (applied, failed uint64, restartNeeded int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied, r.failed, len(r.restartNeeded)
}

// ReloadFrom loads the configuration file at path (as `ph-agent run` and `config check`
// do) and applies it (Reload). A file that does not load changes nothing; either way the
// outcome is logged and shown by `ph-agent status`. The agent's SIGHUP handler calls it.
func (d *Daemon) ReloadFrom(ctx context.Context, path string) {
	cfg, err := config.Load(path)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrReload, err)
		d.reloads.mu.Lock()
		d.reloads.failed++
		d.reloads.last, d.reloads.lastErr, d.reloads.path = time.Now().UTC(), err.Error(), path
		d.reloads.mu.Unlock()
		d.log.Error("configuration reload refused; the running configuration is unchanged", "err", err)
		return
	}
	for _, w := range cfg.Warnings() {
		d.log.Warn("risky setting allowed by the configuration: " + w)
	}
	// Reload logs what it did, or why it did nothing.
	if _, err := d.Reload(ctx, cfg); err != nil {
		return
	}
}

// Reload applies cur, a loaded (valid) configuration, to the running agent, without
// stopping the broker, the uplink or any probe whose settings are unchanged, so that no
// reading is dropped and no MQTT session ends: the Reloadable keys take effect — new
// thresholds judge the next reading (an alert whose limit is gone is resolved), new hooks
// run for the next transition, probes added start, probes removed stop (their alerts
// resolved) and changed ones restart. Every other change is logged as waiting for a
// restart and listed in `ph-agent status`; the running agent keeps its old value.
//
// Nothing is applied when anything cannot be: the configuration in effect with the new
// reloadable keys must pass validation (probes beyond an old sensors.max, say), and every
// new probe must build. The error then matches ErrReload and says why.
func (d *Daemon) Reload(ctx context.Context, cur *config.Config) (ReloadResult, error) {
	d.reloads.apply.Lock()
	defer d.reloads.apply.Unlock()
	res, err := d.reload(ctx, cur)
	d.reloads.mu.Lock()
	d.reloads.last, d.reloads.path = time.Now().UTC(), cur.Path
	if err != nil {
		d.reloads.failed++
		d.reloads.lastErr = err.Error()
	} else {
		d.reloads.applied++
		d.reloads.lastErr = ""
		d.reloads.restartNeeded = res.RestartNeeded
	}
	d.reloads.mu.Unlock()
	if err != nil {
		d.log.Error("configuration reload refused; the running configuration is unchanged", "err", err)
		return res, err
	}
	d.log.Info("configuration reloaded", "applied", res.Applied, "probes_added", res.Probes.Added,
		"probes_removed", res.Probes.Removed, "probes_restarted", res.Probes.Restarted)
	if len(res.RestartNeeded) > 0 {
		d.log.Warn("configuration changed where a reload cannot apply it: restart the agent for these keys",
			"keys", res.RestartNeeded)
	}
	return res, nil
}

func (d *Daemon) reload(ctx context.Context, cur *config.Config) (ReloadResult, error) {
	var res ReloadResult
	old := d.conf()
	changed, err := config.Changed(old, cur)
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrReload, err)
	}
	res.Applied = slices.DeleteFunc(changed, func(k string) bool { return !reloadable(k) })
	// Against the configuration the agent started with: a key an earlier reload could
	// not apply stays listed until it is changed back or the agent restarts.
	pending, err := config.Changed(d.started, cur)
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrReload, err)
	}
	res.RestartNeeded = slices.DeleteFunc(pending, reloadable)
	// The configuration in effect: the one running, with cur's reloadable keys.
	eff := *old
	eff.Station.Class, eff.Alerts, eff.Probes = cur.Station.Class, cur.Alerts, cur.Probes
	if err := eff.Validate(); err != nil {
		return res, fmt.Errorf("%w: with the settings that need a restart unchanged, the new ones do not fit: %w", ErrReload, err)
	}
	class, err := criteria.ParseClass(eff.Station.Class)
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrReload, err)
	}
	list, err := d.buildProbes(&eff, d.probes.all(), d.log)
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrReload, err)
	}
	if err := d.alerts.Reconfigure(ctx, alertOptions(&eff, class)); err != nil {
		return res, fmt.Errorf("%w: alerts: %w", ErrReload, err)
	}
	// From here on nothing fails.
	d.hooks.Set(hooksOf(&eff))
	d.calibrations.SetDue(eff.Alerts.CalibrationDue.Std())
	d.state.SetOfflineFactor(eff.Alerts.OfflineFactor)
	res.Probes = d.setProbes(ctx, list)
	d.cfg.Store(&eff)
	return res, nil
}

// alertOptions are the thresholds of cfg for alerting.New and Reconfigure.
func alertOptions(cfg *config.Config, class criteria.Class) alerting.Options {
	return alerting.Options{
		Class: class, RuleSets: cfg.Alerts.RuleSets,
		Deadband: cfg.Alerts.Deadband, ClearCount: cfg.Alerts.ClearCount,
		BadCount: cfg.Alerts.BadCount, OfflineFactor: cfg.Alerts.OfflineFactor,
	}
}

// hooksOf are the alert hooks of cfg.
func hooksOf(cfg *config.Config) []alerting.Hook {
	var hooks []alerting.Hook
	for _, h := range cfg.Alerts.Hooks {
		var on []alerting.Transition
		for _, t := range h.On {
			on = append(on, alerting.Transition(t))
		}
		hooks = append(hooks, alerting.Hook{Command: h.Command, On: on, Timeout: h.Timeout.Std()})
	}
	return hooks
}

package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/agent/internal/calibration"
	"github.com/purehealth/purehealth/agent/internal/coapprobe"
	"github.com/purehealth/purehealth/agent/internal/config"
	"github.com/purehealth/purehealth/agent/internal/httpprobe"
	"github.com/purehealth/purehealth/agent/internal/probestatus"
	"github.com/purehealth/purehealth/agent/internal/serialprobe"
	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/agent/internal/taskset"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// probe is what the daemon needs of a configured probe, whatever its kind. Exchanges and
// statuses differ per kind; the admin API passes them through as JSON.
type probe struct {
	name, kind string
	param      telemetry.Param
	interval   time.Duration
	cfg        config.Probe // what it was built from: a changed one is rebuilt
	run        func(ctx context.Context) error
	test       func(ctx context.Context) (any, error)
	calibrate  func(ctx context.Context, point string, value float64) (any, error) // nil: not calibratable
	status     func() any
	counts     func() probestatus.Counts
}

// probes keeps the configured probes: their drivers, in configuration order, and the
// set that runs them. A reload replaces them (applyProbes).
type probes struct {
	set  taskset.Set
	mu   sync.Mutex
	list []probe
}

// all returns the probes in configuration order.
func (ps *probes) all() []probe {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.list
}

// buildProbes makes the drivers of cfg's probes, reusing those of keep whose
// configuration is unchanged (their counts carry on). It starts nothing.
func (d *Daemon) buildProbes(cfg *config.Config, keep []probe, log *slog.Logger) ([]probe, error) {
	var out []probe
	for _, pc := range cfg.Probes {
		if i := slices.IndexFunc(keep, func(p probe) bool { return p.cfg == pc }); i >= 0 {
			out = append(out, keep[i])
			continue
		}
		p, err := d.buildProbe(cfg, pc, log)
		if err != nil {
			return nil, fmt.Errorf("probe %s: %w", pc.Name, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// buildProbe makes the driver of one configured probe.
func (d *Daemon) buildProbe(cfg *config.Config, pc config.Probe, log *slog.Logger) (probe, error) {
	param, err := telemetry.ParseParam(pc.Param)
	if err != nil {
		return probe{}, err
	}
	plog := log.With("component", "probe") // the drivers add the probe's name
	p := probe{name: pc.Name, kind: pc.Kind, param: param, interval: pc.Interval.Std(), cfg: pc}
	switch pc.Kind {
	case "serial":
		sp, err := serialprobe.New(serialprobe.Config{
			Station: cfg.Station.ID, Name: pc.Name, Param: param, Device: pc.Device,
			Baud: pc.Baud, Interval: pc.Interval.Std(), Timeout: pc.Timeout.Std(),
		}, d.pipeline, d.state, d.state, plog)
		if err != nil {
			return probe{}, err
		}
		p.run = sp.Run
		p.test = func(ctx context.Context) (any, error) { return sp.Test(ctx) }
		p.calibrate = func(ctx context.Context, point string, v float64) (any, error) {
			return sp.Calibrate(ctx, point, v)
		}
		p.status = func() any { return sp.Status() }
		p.counts = func() probestatus.Counts { return sp.Status().Counts }
	case "coap":
		cp, err := coapprobe.New(coapprobe.Config{
			Station: cfg.Station.ID, Name: pc.Name, Param: param, URL: pc.URL,
			Interval: pc.Interval.Std(), Timeout: pc.Timeout.Std(), Observe: pc.Observe, Location: cfg.Location(),
		}, d.pipeline, d.state, plog)
		if err != nil {
			return probe{}, err
		}
		p.run = cp.Run
		p.test = func(ctx context.Context) (any, error) { return cp.Test(ctx) }
		p.status = func() any { return cp.Status() }
		p.counts = func() probestatus.Counts { return cp.Status().Counts }
	case "http":
		hp, err := httpprobe.New(httpprobe.Config{
			Station: cfg.Station.ID, Name: pc.Name, Param: param, URL: pc.URL,
			Interval: pc.Interval.Std(), Timeout: pc.Timeout.Std(), Location: cfg.Location(),
		}, d.pipeline, d.state, plog)
		if err != nil {
			return probe{}, err
		}
		p.run = hp.Run
		p.test = func(ctx context.Context) (any, error) { return hp.Test(ctx) }
		p.status = func() any { return hp.Status() }
		p.counts = func() probestatus.Counts { return hp.Status().Counts }
	default:
		return probe{}, fmt.Errorf("unknown kind %q", pc.Kind)
	}
	return p, nil
}

// setProbes makes list the running probes: the set starts and stops what changed, and
// the station's inventory follows (state.Expect). A probe no longer configured has its
// alerts resolved (offline, faults, calibration due). It returns what changed.
func (d *Daemon) setProbes(ctx context.Context, list []probe) taskset.Changes {
	tasks := make([]taskset.Task, 0, len(list))
	specs := make([]state.SensorSpec, 0, len(list))
	for _, p := range list {
		tasks = append(tasks, taskset.Task{Name: p.name, Spec: p.cfg, Run: p.run})
		specs = append(specs, state.SensorSpec{Name: p.name, Kind: p.kind, Param: p.param, Interval: p.interval})
	}
	d.probes.mu.Lock()
	d.probes.list = list
	d.probes.mu.Unlock()
	ch := d.probes.set.Replace(tasks)
	for _, name := range d.state.Expect(specs) {
		d.alerts.ForgetSensor(ctx, name)
		d.calibrations.Forget(ctx, name, d.alerts)
	}
	return ch
}

// calibratable lists the probes the calibration check watches.
func (d *Daemon) calibratable() []calibration.Probe {
	var out []calibration.Probe
	for _, p := range d.probes.all() {
		if p.calibrate != nil {
			out = append(out, calibration.Probe{Name: p.name, Param: p.param})
		}
	}
	return out
}

func (d *Daemon) probeNamed(name string) (probe, error) {
	list := d.probes.all()
	i := slices.IndexFunc(list, func(p probe) bool { return p.name == name })
	if i < 0 {
		return probe{}, fmt.Errorf("%w: no probe named %q in the configuration", admin.ErrNotFound, name)
	}
	return list[i], nil
}

// calibrate sends a calibration point to a probe through its running loop and records
// it when the circuit accepted it.
func (d *Daemon) calibrate(ctx context.Context, name, point string, value float64) (any, error) {
	p, err := d.probeNamed(name)
	if err != nil {
		return nil, err
	}
	if p.calibrate == nil {
		return nil, fmt.Errorf("%w: probe %s (%s) cannot be calibrated from the agent", admin.ErrBadRequest, name, p.kind)
	}
	ex, err := p.calibrate(ctx, point, value)
	if err != nil {
		if errors.Is(err, serialprobe.ErrBadPoint) || errors.Is(err, serialprobe.ErrWrongCircuit) {
			return ex, fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
		}
		return ex, err
	}
	reply := ""
	if e, ok := ex.(serialprobe.Exchange); ok {
		reply = strings.Join(e.Received, " ")
	}
	rec := calibration.Record{Probe: name, Point: point, Value: value, At: time.Now().UTC(), Reply: reply}
	if err := d.calibrations.Record(ctx, rec); err != nil {
		return ex, fmt.Errorf("calibration accepted by the probe but not recorded: %w", err)
	}
	d.log.Info("probe calibrated", "probe", name, "point", point, "value", value, "reply", reply)
	return ex, nil
}

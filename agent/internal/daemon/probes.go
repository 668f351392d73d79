package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/agent/internal/calibration"
	"github.com/purehealth/purehealth/agent/internal/coapprobe"
	"github.com/purehealth/purehealth/agent/internal/config"
	"github.com/purehealth/purehealth/agent/internal/httpprobe"
	"github.com/purehealth/purehealth/agent/internal/serialprobe"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// probe is what the daemon needs of a configured probe, whatever its kind. Exchanges and
// statuses differ per kind; the admin API passes them through as JSON.
type probe struct {
	name, kind string
	param      telemetry.Param
	run        func(ctx context.Context) error
	test       func(ctx context.Context) (any, error)
	calibrate  func(ctx context.Context, point string, value float64) (any, error) // nil: not calibratable
	status     func() any
}

// buildProbes creates a probe for every configured one. It starts nothing.
func (d *Daemon) buildProbes(cfg *config.Config, log *slog.Logger) error {
	for _, pc := range cfg.Probes {
		param, err := telemetry.ParseParam(pc.Param)
		if err != nil {
			return fmt.Errorf("probe %s: %w", pc.Name, err)
		}
		plog := log.With("component", "probe") // the drivers add the probe's name
		p := probe{name: pc.Name, kind: pc.Kind, param: param}
		switch pc.Kind {
		case "serial":
			sp, err := serialprobe.New(serialprobe.Config{
				Station: cfg.Station.ID, Name: pc.Name, Param: param, Device: pc.Device,
				Baud: pc.Baud, Interval: pc.Interval.Std(), Timeout: pc.Timeout.Std(),
			}, d.pipeline, d.state, d.state, plog)
			if err != nil {
				return fmt.Errorf("probe %s: %w", pc.Name, err)
			}
			p.run = sp.Run
			p.test = func(ctx context.Context) (any, error) { return sp.Test(ctx) }
			p.calibrate = func(ctx context.Context, point string, v float64) (any, error) {
				return sp.Calibrate(ctx, point, v)
			}
			p.status = func() any { return sp.Status() }
		case "coap":
			cp, err := coapprobe.New(coapprobe.Config{
				Station: cfg.Station.ID, Name: pc.Name, Param: param, URL: pc.URL,
				Interval: pc.Interval.Std(), Timeout: pc.Timeout.Std(), Observe: pc.Observe, Location: cfg.Location(),
			}, d.pipeline, d.state, plog)
			if err != nil {
				return fmt.Errorf("probe %s: %w", pc.Name, err)
			}
			p.run = cp.Run
			p.test = func(ctx context.Context) (any, error) { return cp.Test(ctx) }
			p.status = func() any { return cp.Status() }
		case "http":
			hp, err := httpprobe.New(httpprobe.Config{
				Station: cfg.Station.ID, Name: pc.Name, Param: param, URL: pc.URL,
				Interval: pc.Interval.Std(), Timeout: pc.Timeout.Std(), Location: cfg.Location(),
			}, d.pipeline, d.state, plog)
			if err != nil {
				return fmt.Errorf("probe %s: %w", pc.Name, err)
			}
			p.run = hp.Run
			p.test = func(ctx context.Context) (any, error) { return hp.Test(ctx) }
			p.status = func() any { return hp.Status() }
		default:
			return fmt.Errorf("probe %s: unknown kind %q", pc.Name, pc.Kind)
		}
		d.probes = append(d.probes, p)
	}
	return nil
}

func (d *Daemon) probeNamed(name string) (probe, error) {
	i := slices.IndexFunc(d.probes, func(p probe) bool { return p.name == name })
	if i < 0 {
		return probe{}, fmt.Errorf("%w: no probe named %q in the configuration", admin.ErrNotFound, name)
	}
	return d.probes[i], nil
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

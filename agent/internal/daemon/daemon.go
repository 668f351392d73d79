// Package daemon is the station agent's composition root: it opens the buffer, builds the
// pipeline, alerting, broker, uplink and admin API from the configuration, runs them under
// one errgroup, and shuts them down in order (inputs first, then the uplink's batch in
// flight, the store last).
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/broker"
	"github.com/purehealth/purehealth/agent/internal/calibration"
	"github.com/purehealth/purehealth/agent/internal/clock"
	"github.com/purehealth/purehealth/agent/internal/config"
	"github.com/purehealth/purehealth/agent/internal/metrics"
	"github.com/purehealth/purehealth/agent/internal/payload"
	"github.com/purehealth/purehealth/agent/internal/pipeline"
	"github.com/purehealth/purehealth/agent/internal/sdnotify"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/agent/internal/uplink"
	"github.com/purehealth/purehealth/internal/jobs"
	"github.com/purehealth/purehealth/shared/criteria"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/validate"
	"github.com/purehealth/purehealth/shared/version"
	"github.com/purehealth/purehealth/shared/wire"
	"github.com/purehealth/purehealth/shared/wqi"
)

// Daemon is one running station agent.
type Daemon struct {
	cfg     atomic.Pointer[config.Config] // the configuration in effect; Reload replaces it
	started *config.Config                // the configuration the agent started with
	log     *slog.Logger
	start   time.Time

	spool        *spool.Spool
	clock        *clock.Sync
	state        *state.Station
	alerts       *alerting.Manager
	hooks        *alerting.Hooks
	overflow     *alerting.Overflow
	calibrations *calibration.Book
	pipeline     *pipeline.Pipeline
	broker       *broker.Broker
	uplink       *uplink.Uplink // nil without uplink.url
	admin        *admin.Server
	metrics      *metrics.Server // nil without metrics.listen
	probes       probes
	outputs      *outputs
	reloads      reloads
}

// Option adjusts a Daemon for tests.
type Option func(*spool.Options)

// WithSpoolFaults lets a test make the buffer's commits fail.
func WithSpoolFaults(f *spool.Faults) Option { return func(o *spool.Options) { o.Faults = f } }

// New opens the buffer and builds every component; it starts no goroutine but the
// buffer's writer, and binds nothing (see Listen). A failure here is a start-up failure.
func New(cfg *config.Config, log *slog.Logger, opts ...Option) (*Daemon, error) {
	d := &Daemon{log: log, start: time.Now(), outputs: &outputs{},
		overflow: &alerting.Overflow{Log: log.With("component", "buffer")}}
	d.cfg.Store(cfg)
	d.started = cfg
	class, err := criteria.ParseClass(cfg.Station.Class)
	if err != nil {
		return nil, err
	}
	method, err := wqi.ParseDOMethod(cfg.Station.DOMethod)
	if err != nil {
		return nil, err
	}

	sopts := spool.Options{
		Path:      filepath.Join(cfg.DataDir, "agent.db"),
		MaxBytes:  int64(cfg.Buffer.MaxBytes),
		Retention: cfg.Buffer.Retention.Std(),
		NoSync:    cfg.Buffer.UnsafeNoFsync,
		Logger:    log.With("component", "spool"),
		OnEvict:   d.overflow.OnEvict,
	}
	if cfg.Metrics.Listen != "" {
		d.metrics = metrics.New(cfg.Metrics.Listen, d.metricsSnapshot, log.With("component", "metrics"))
		sopts.OnCommit = d.metrics.ObserveCommit
	}
	for _, o := range opts {
		o(&sopts)
	}
	if sopts.NoSync {
		log.Warn("buffer.unsafe_no_fsync is set: a power cut can lose acknowledged readings; for benchmarks only")
	}
	d.spool, err = spool.Open(sopts)
	if err != nil {
		return nil, fmt.Errorf("open buffer: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			d.spool.Close()
		}
	}()

	d.clock, err = clock.New(clock.Mode(cfg.Clock.SyncCheck), cfg.Clock.SyncFile, cfg.MinTime(), nil)
	if err != nil {
		return nil, err
	}
	d.state = state.New(state.Options{
		Station: cfg.Station.ID, Method: method,
		PressureAtm: wqi.PressureAtElevation(cfg.Station.ElevationM),
		Freshness:   cfg.Freshness,
		// A lab's BOD and FC describe the river for weeks, a probe's value for hours.
		SourceFreshness: cfg.SourceFreshness(),
		OfflineFactor:   cfg.Alerts.OfflineFactor,
		MaxSensors:      cfg.Sensors.Max,
		ForgetAfter:     cfg.Sensors.ForgetAfter.Std(),
	})
	err = d.state.RestoreLatest(time.Now(), func(p telemetry.Param, src telemetry.Source, since time.Time) ([]telemetry.Reading, error) {
		return d.spool.Readings(spool.Query{Param: p, Source: src, Limit: 1, Since: since})
	})
	if err != nil {
		return nil, err
	}

	d.hooks = alerting.NewHooks(hooksOf(cfg), log.With("component", "hooks"))
	aopts := alertOptions(cfg, class)
	aopts.Station, aopts.Logger = cfg.Station.ID, log.With("component", "alerts")
	d.alerts, err = alerting.New(aopts, storeAdapter{s: d.spool, stored: d.nudgeUplink}, d.outputs, d.hooks)
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	d.overflow.Alerts, d.overflow.Stats = d.alerts, d.spool.Stats
	d.calibrations = calibration.New(d.spool, cfg.Alerts.CalibrationDue.Std(), log.With("component", "calibration"))

	d.pipeline = pipeline.New(pipeline.Options{
		Station: cfg.Station.ID, HistoryInterval: cfg.WQI.HistoryInterval.Std(),
		Logger: log.With("component", "pipeline"),
	}, pipeline.Deps{
		Store: storeAdapter{s: d.spool, stored: d.nudgeUplink},
		Checker: validate.New(validate.Config{
			SpikeSigma: cfg.Validation.SpikeSigma, FlatlineCount: cfg.Validation.FlatlineCount,
			MaxFuture: cfg.Validation.MaxFuture.Std(), MaxPast: cfg.Validation.MaxPast.Std(),
		}),
		State: d.state, Alerts: d.alerts, Clock: d.clock, Outputs: d.outputs,
	})

	users := make([]broker.User, 0, len(cfg.MQTT.Users))
	for _, u := range cfg.MQTT.Users {
		users = append(users, broker.User{Name: u.Name, PasswordHash: u.PasswordHash, Role: u.Role,
			Publish: u.Publish, Subscribe: u.Subscribe})
	}
	bopts := broker.Options{
		Station: cfg.Station.ID, Listen: cfg.MQTT.Listen, AllowAnonymous: cfg.MQTT.AllowAnonymous,
		Users: users, Location: cfg.Location(), MaxPacketSize: uint32(cfg.MQTT.MaxPacketBytes),
		MaxClients: cfg.MQTT.MaxClients, Logger: log.With("component", "broker"),
	}
	if t := cfg.MQTT.TLS; t != nil {
		tlsCfg, err := serverTLS(t)
		if err != nil {
			return nil, err
		}
		bopts.TLSListen, bopts.TLS = t.Listen, tlsCfg
	}
	list, err := d.buildProbes(cfg, nil, log)
	if err != nil {
		return nil, err
	}
	d.setProbes(context.Background(), list)
	d.broker, err = broker.New(bopts, d.pipeline)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	d.outputs.set(d.broker)
	if u := cfg.Uplink; u.URL != "" {
		d.uplink, err = uplink.New(uplink.Options{
			URL: u.URL, Station: cfg.Station.ID, Token: cfg.UplinkToken,
			CAFile: u.CAFile, CertFile: u.CertFile, KeyFile: u.KeyFile,
			Interval: u.Interval.Std(), BatchMax: u.BatchMax, LiveReadings: u.LiveReadings,
			BackoffMax: u.BackoffMax.Std(), DailyBytes: int64(u.DailyBytes),
			ConnectTimeout: u.ConnectTimeout.Std(), RequestTimeout: u.RequestTimeout.Std(),
			Acks:   d.cloudAcks,
			Health: d.health, HealthInterval: u.HealthInterval.Std(),
			Logger: log.With("component", "uplink"),
		}, d.spool, d.alerts)
		if err != nil {
			return nil, err
		}
	}
	d.admin = admin.NewServer(cfg.AdminSocket, backend{d}, log.With("component", "admin"))
	ok = true
	return d, nil
}

// Listen binds the MQTT listeners and the admin socket, so that a port in use or a second
// agent on the same socket is a start-up failure. After a failed Listen call Close; after
// a successful one, Run. Run calls Listen itself when it was not called.
func (d *Daemon) Listen() error {
	if err := d.admin.Listen(); err != nil {
		return err
	}
	if d.metrics != nil {
		if err := d.metrics.Listen(); err != nil {
			return errors.Join(err, d.admin.Close())
		}
	}
	if err := d.broker.Listen(); err != nil {
		err = errors.Join(err, d.admin.Close())
		if d.metrics != nil {
			err = errors.Join(err, d.metrics.Close())
		}
		return err
	}
	return nil
}

// Close releases the buffer, the admin socket and the metrics listener of a Daemon that
// will not Run.
func (d *Daemon) Close() error {
	err := errors.Join(d.admin.Close(), d.spool.Close())
	if d.metrics != nil {
		err = errors.Join(err, d.metrics.Close())
	}
	return err
}

// conf is the configuration in effect.
func (d *Daemon) conf() *config.Config { return d.cfg.Load() }

// Run serves until ctx ends, then shuts down in this order: the broker and the admin API
// stop taking input and the periodic work stops; the uplink starts no new batch and gives
// the one in flight a short grace (uplink.DefaultGrace) to be answered and its
// acknowledgement recorded; the buffer is closed last, once every component has returned.
// An uplink that finds the buffer damaged ends the daemon with an error, so that it is
// restarted and the file quarantined.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.spool.Close()
	if err := d.Listen(); err != nil {
		return err
	}
	if q := d.spool.Quarantined(); q != "" {
		d.alerts.Set(ctx, alerting.Condition{Key: "store:quarantined", Rule: alerting.RuleStoreFailure,
			Severity: alerting.Critical,
			Message:  "The buffer database was corrupt and was moved to " + q + "; a fresh one was started"}, true)
	}
	cfg := d.conf()
	d.log.Info("ph-agent starting", "station", cfg.Station.ID, "version", version.Version,
		"mqtt", cfg.MQTT.Listen, "admin_socket", cfg.AdminSocket, "buffer", d.spool.Path(),
		"metrics", cfg.Metrics.Listen)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.broker.Run(gctx) })
	g.Go(func() error { return d.admin.Run(gctx) })
	g.Go(func() error { return d.hooks.Run(gctx) })
	g.Go(func() error { return d.overflow.Run(gctx) })
	g.Go(func() error {
		jobs.Run(gctx, d.log.With("component", "jobs"), d.jobs()...)
		return nil
	})
	// systemd (Type=notify): ready once the broker listens, watchdog pings, stopping.
	g.Go(func() error { return sdnotify.Run(gctx, d.broker.Ready(), d.log.With("component", "sdnotify")) })
	g.Go(func() error {
		if err := d.probes.set.Run(gctx); err != nil {
			return fmt.Errorf("probe %w", err)
		}
		return nil
	})
	if d.metrics != nil {
		g.Go(func() error { return d.metrics.Run(gctx) })
	}
	if d.uplink != nil {
		g.Go(func() error { return d.uplink.Run(gctx) })
	}
	err := g.Wait() // every component has returned: only now may the buffer close
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	d.log.Info("ph-agent stopped")
	return nil
}

// Periods of the agent's background work.
const (
	tickEvery        = 5 * time.Second // WQI freshness, alert rules on time, the ingest rate
	statusEvery      = 30 * time.Second
	calibrationEvery = time.Minute
	retentionEvery   = time.Hour
)

// jobs is the agent's periodic work.
func (d *Daemon) jobs() []jobs.Job {
	return []jobs.Job{{
		Name: "wqi", Interval: tickEvery,
		Run: func(ctx context.Context) error { d.pipeline.Tick(ctx); return nil },
	}, {
		Name: "alert rules", Interval: tickEvery,
		Run: func(ctx context.Context) error { d.alerts.Tick(ctx, d.state.Sensors()); return nil },
	}, {
		Name: "ingest rate", Interval: tickEvery,
		Run: func(context.Context) error { d.pipeline.SampleRate(time.Now()); return nil },
	}, {
		Name: "status", Interval: statusEvery, Run: d.publishStatus,
	}, {
		Name: "calibration", Interval: calibrationEvery,
		Run: func(ctx context.Context) error {
			d.calibrations.Check(ctx, time.Now(), d.calibratable(), d.alerts)
			return nil
		},
	}, {
		Name: "buffer retention", Interval: retentionEvery, Run: d.spool.Expire,
	}}
}

// publishStatus publishes the retained summary on purehealth/<station>/status.
func (d *Daemon) publishStatus(ctx context.Context) error {
	st, err := backend{d}.Status(ctx)
	if err != nil {
		return err
	}
	msg, err := json.Marshal(st.Summary())
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	if err := d.outputs.Publish(payload.Topic(d.conf().Station.ID, broker.LeafStatus), msg, true, 1); err != nil && ctx.Err() == nil {
		d.log.Debug("publish status", "err", err)
	}
	return nil
}

func (d *Daemon) wqiJSON() json.RawMessage {
	cur := d.pipeline.CurrentWQI()
	if cur == nil {
		return json.RawMessage("null")
	}
	b, err := json.Marshal(pipeline.WQIMessage{Station: d.conf().Station.ID, Time: cur.Computed.UTC(),
		Inputs: cur.Inputs, Result: &cur.Result})
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

// outputs lets the pipeline and alerting publish through the broker, which is built after
// them (the broker needs the pipeline as its sink).
type outputs struct {
	b atomic.Pointer[broker.Broker]
}

func (o *outputs) set(b *broker.Broker) { o.b.Store(b) }

// Publish sends on the local broker, if it is up.
func (o *outputs) Publish(topic string, payload []byte, retain bool, qos byte) error {
	b := o.b.Load()
	if b == nil {
		return errors.New("broker not started")
	}
	return b.Publish(topic, payload, retain, qos)
}

// nudgeUplink tells the uplink, if there is one, that new records are stored.
func (d *Daemon) nudgeUplink() {
	if d.uplink != nil {
		d.uplink.Nudge()
	}
}

// storeAdapter presents the spool as the small stores the pipeline and alerting need, and
// reports each durable append so forwarding need not wait for its next interval.
type storeAdapter struct {
	s      *spool.Spool
	stored func()
}

func (a storeAdapter) AppendReadings(ctx context.Context, rs []telemetry.Reading) ([]telemetry.Reading, error) {
	out, err := a.s.AppendReadings(ctx, rs)
	if err == nil {
		a.stored()
	}
	return out, err
}

func (a storeAdapter) AppendWQI(ctx context.Context, data ...[]byte) error {
	_, err := a.s.AppendRecords(ctx, spool.WQI, data)
	return err
}

func (a storeAdapter) AppendEvent(ctx context.Context, data []byte, puts map[string][]byte) error {
	err := a.s.AppendEvent(ctx, data, puts)
	if err == nil {
		a.stored()
	}
	return err
}

func (a storeAdapter) RecentEvents(limit int) ([][]byte, error) { return a.s.RecentEvents(limit) }

func (a storeAdapter) Put(ctx context.Context, key string, value []byte) error {
	return a.s.Put(ctx, key, value)
}

func (a storeAdapter) Get(key string) ([]byte, error) { return a.s.Get(key) }

func (a storeAdapter) Scan(prefix string, fn func(key string, value []byte) error) error {
	return a.s.Scan(prefix, fn)
}

// cloudAcks acknowledges at the station the alerts an operator acknowledged in the
// cloud. An alert resolved meanwhile stays resolved: the cloud learns it from the
// station's resolved transition.
func (d *Daemon) cloudAcks(ctx context.Context, acks []wire.AlertAck) {
	for _, a := range acks {
		alert, err := d.alerts.AckFrom(ctx, a.ID, a.By, a.At)
		switch {
		case errors.Is(err, alerting.ErrResolved), errors.Is(err, alerting.ErrNotFound):
			d.log.Info("acknowledged in the cloud, no longer active here", "alert", a.ID, "by", a.By)
		case err != nil:
			d.log.Warn("acknowledge from the cloud", "alert", a.ID, "err", err)
		default:
			d.log.Info("alert acknowledged in the cloud", "alert", alert.ID, "by", a.By, "rule", alert.Rule)
		}
	}
}

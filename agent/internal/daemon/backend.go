package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/config"
	"github.com/purehealth/purehealth/agent/internal/pipeline"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/agent/internal/uplink"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/version"
)

// backend answers the admin API from the running daemon.
type backend struct{ d *Daemon }

var _ admin.Backend = backend{}

func (b backend) Status(ctx context.Context) (admin.Status, error) {
	d := b.d
	cfg := d.conf()
	now := time.Now()
	synced, reason := d.clock.State()
	bs := d.broker.Stats()
	ps := d.pipeline.Stats()
	q, err := b.Queue(ctx)
	if err != nil {
		return admin.Status{}, err
	}
	return admin.Status{
		Station: cfg.Station.ID, Name: cfg.Station.Name, Class: cfg.Station.Class,
		Version: version.Version, StartedAt: d.start.UTC(), UptimeS: now.Sub(d.start).Seconds(),
		Now: now.UTC(),
		Broker: admin.BrokerStatus{Listen: cfg.MQTT.Listen, Clients: bs.ClientsConnected,
			Received: bs.MessagesReceived, Rejects: bs.Rejects},
		Uplink: q,
		Buffer: b.buffer(),
		Ingest: admin.IngestStatus{Accepted: ps.Accepted, Rejected: ps.Rejected, Bad: ps.Bad,
			Suspect: ps.Suspect, StoreFailures: ps.StoreFailures, StoreFailing: ps.StoreFailing,
			RatePerS: d.pipeline.Rate()},
		Clock:        admin.ClockStatus{Synced: synced, Reason: reason},
		WQI:          d.wqiJSON(),
		ActiveAlerts: d.alerts.Active(),
		Config:       d.reloads.status(),
	}, nil
}

// buffer summarizes the spool, with the hours of autonomy: how long the free room below
// the eviction watermark absorbs the current ingest rate.
func (b backend) buffer() admin.BufferStatus {
	st := b.d.spool.Stats()
	out := admin.BufferStatus{
		Path: st.Path, UsedBytes: st.UsedBytes, FileBytes: st.FileBytes, MaxBytes: st.MaxBytes,
		Readings: st.Records[spool.Readings], Unforwarded: st.Unforwarded[spool.Readings],
		OldestUnsent: st.OldestUnforwarded, Quarantined: b.d.spool.Quarantined(),
		Evicted: map[string]int64{
			"expired_forwarded":   int64(st.Evicted.ExpiredForwarded),
			"forwarded":           int64(st.Evicted.Forwarded),
			"downsampled":         int64(st.Evicted.Downsampled),
			"dropped_unforwarded": int64(st.Evicted.DroppedUnforwarded),
		},
	}
	if h, ok := st.AutonomyHours(b.d.pipeline.Rate()); ok {
		out.AutonomyHours = &h
	}
	return out
}

func (b backend) Sensors(context.Context) (admin.Sensors, error) {
	now := time.Now()
	factor := b.d.state.OfflineFactor()
	var out admin.Sensors
	out.Sensors = []admin.Sensor{}
	for _, s := range b.d.state.Sensors() {
		row := admin.Sensor{
			Name: s.Name, Kind: s.Kind, Param: string(s.Param), Online: s.Online(now, factor),
			Expected: s.Expected, IntervalS: s.Interval.Seconds(), RatePerMin: s.RatePerMin,
			Readings: s.Readings, Errors: s.Errors, ErrorsByKind: s.ErrorsByKind, Reconnects: s.Reconnects,
		}
		if !s.LastReadingAt.IsZero() {
			t, v := s.LastReadingAt.UTC(), s.LastValue
			row.LastReadingAt, row.LastValue = &t, &v
		}
		if c, err := b.d.calibrations.Of(s.Name); err == nil && c != nil {
			at := c.At
			row.CalibratedAt = &at
		}
		if s.Readings > 0 {
			n := float64(s.Readings)
			row.Quality = admin.QualityShare{Good: float64(s.Good) / n, Suspect: float64(s.Suspect) / n, Bad: float64(s.Bad) / n}
		}
		out.Sensors = append(out.Sensors, row)
	}
	return out, nil
}

func (b backend) Readings(_ context.Context, q admin.ReadingsQuery) (admin.Readings, error) {
	sq := spool.Query{Limit: q.Limit}
	if q.Param != "" {
		p, err := telemetry.ParseParam(q.Param)
		if err != nil {
			return admin.Readings{}, fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
		}
		sq.Param = p
	}
	if q.Since > 0 {
		sq.Since = time.Now().Add(-q.Since)
	}
	rs, err := b.d.spool.Readings(sq)
	if err != nil {
		return admin.Readings{}, fmt.Errorf("read readings: %w", err)
	}
	out := admin.Readings{Readings: make([]admin.Reading, 0, len(rs))}
	for _, r := range rs {
		out.Readings = append(out.Readings, adminReading(r))
	}
	return out, nil
}

func adminReading(r telemetry.Reading) admin.Reading {
	a := admin.Reading{
		Seq: r.Seq, Time: r.Time.UTC(), Param: string(r.Param), Value: r.Value, Unit: r.Unit,
		Quality: string(r.Quality), Source: string(r.Source), Sensor: r.Sensor, Flags: r.Flags.Names(),
	}
	if r.Sample != nil {
		a.SampleID, a.Lab, a.Method = r.Sample.ID, r.Sample.Lab, r.Sample.Method
	}
	return a
}

func (b backend) AddSample(ctx context.Context, req admin.SampleRequest) (admin.Reading, error) {
	r, err := b.d.pipeline.AddSample(ctx, telemetry.Observation{
		Param: req.Param, Value: req.Value, Unit: req.Unit, Time: req.Time,
		Sample: &telemetry.Sample{ID: req.SampleID, Lab: req.Lab, Method: req.Method},
	})
	if errors.Is(err, pipeline.ErrSample) {
		return admin.Reading{}, fmt.Errorf("%w: %w", admin.ErrBadRequest, err)
	}
	if err != nil {
		return admin.Reading{}, err
	}
	return adminReading(r), nil
}

func (b backend) WQI(context.Context) (json.RawMessage, error) {
	raw := b.d.wqiJSON()
	if string(raw) == "null" {
		return json.RawMessage(`{"wqi":null,"reason":"no fresh values of do, fc, ph or bod"}`), nil
	}
	return raw, nil
}

func (b backend) Alerts(_ context.Context, all bool, limit int) (admin.Alerts, error) {
	if !all {
		as := b.d.alerts.Active()
		if len(as) > limit {
			as = as[:limit]
		}
		return admin.Alerts{Alerts: as}, nil
	}
	as, err := b.d.alerts.Recent(limit)
	if err != nil {
		return admin.Alerts{}, err
	}
	if as == nil {
		as = []alerting.Alert{}
	}
	return admin.Alerts{Alerts: as}, nil
}

func (b backend) Ack(ctx context.Context, id uint64) (alerting.Alert, error) {
	return b.d.alerts.Ack(ctx, id)
}

func (b backend) Queue(context.Context) (admin.Queue, error) {
	st := b.d.spool.Stats()
	q := admin.Queue{
		Configured: b.d.uplink != nil, URL: b.d.conf().Uplink.URL, State: "not configured",
		OldestUnsentAt: st.OldestUnforwarded, LastAckedSeq: st.Cursor[spool.Readings],
	}
	var us uplink.Status // zero without an uplink: nothing live, nothing acked ahead
	if b.d.uplink != nil {
		us = b.d.uplink.Status()
		q.State = string(us.State)
		q.LastSuccessAt, q.LastError, q.LastErrorAt = us.LastSuccessAt, us.LastError, us.LastErrorAt
		q.ConsecutiveFailures, q.NextRetryAt = us.ConsecutiveFailures, us.NextRetryAt
		q.BytesToday, q.DailyBytes, q.Rejected = us.BytesToday, us.DailyBytes, us.Rejected
		q.BatchLimit, q.BatchMax = us.BatchLimit, us.BatchMax
	}
	for _, s := range []spool.Stream{spool.Alerts, spool.WQI, spool.Readings} {
		ahead := us.AckedAhead[s]
		// Acked-ahead ranges may span seqs evicted before they were sent: clamp.
		backlog := max(st.Unforwarded[s]-int(min(ahead, uint64(st.Unforwarded[s]))), 0)
		q.Lanes = append(q.Lanes, admin.Lane{Stream: s.String(), Backlog: backlog, Live: us.Live[s],
			AckedAhead: ahead, Cursor: st.Cursor[s], LastSeq: st.LastSeq[s]})
		if s == spool.Readings {
			q.Backlog = backlog
		}
	}
	return q, nil
}

// flushWait bounds how long `ph-agent flush` waits for the pass it started (the admin
// client gives up after 30 s). A pass still draining a large backlog then is not a
// failure: the queue printed afterwards shows it sending.
const flushWait = 20 * time.Second

func (b backend) Flush(ctx context.Context) error {
	if b.d.uplink == nil {
		return fmt.Errorf("%w: no uplink configured (uplink.url); readings are kept locally", admin.ErrUnavailable)
	}
	fctx, cancel := context.WithTimeout(ctx, flushWait)
	defer cancel()
	switch err := b.d.uplink.Flush(fctx); {
	case err == nil, errors.Is(err, uplink.ErrBudgetExhausted):
		return nil // the queue shows the budget's state
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return nil // still sending
	case errors.Is(err, uplink.ErrNotRunning):
		return fmt.Errorf("%w: the uplink is not running (the agent is stopping)", admin.ErrUnavailable)
	default:
		return fmt.Errorf("%w: forwarding failed: %w", admin.ErrUnavailable, err)
	}
}

// serverTLS builds the broker's TLS settings, requiring client certificates when a client
// CA is configured.
func serverTLS(t *config.TLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("mqtt.tls: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCA != "" {
		pem, err := os.ReadFile(t.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt.tls.client_ca: no certificates in %s", t.ClientCA)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

func (b backend) Probes(context.Context) (admin.Probes, error) {
	list := b.d.probes.all()
	out := admin.Probes{Probes: make([]admin.Probe, 0, len(list))}
	for _, p := range list {
		st, err := json.Marshal(p.status())
		if err != nil {
			return admin.Probes{}, fmt.Errorf("encode status of %s: %w", p.name, err)
		}
		row := admin.Probe{Name: p.name, Kind: p.kind, Param: string(p.param), Status: st}
		if c, err := b.d.calibrations.Of(p.name); err != nil {
			return admin.Probes{}, err
		} else if c != nil {
			if row.Calibration, err = json.Marshal(c); err != nil {
				return admin.Probes{}, err
			}
		}
		out.Probes = append(out.Probes, row)
	}
	return out, nil
}

func (b backend) ProbeTest(ctx context.Context, name string) (json.RawMessage, error) {
	p, err := b.d.probeNamed(name)
	if err != nil {
		return nil, err
	}
	ex, err := p.test(ctx)
	return exchangeReply(name, ex, err)
}

func (b backend) ProbeCalibrate(ctx context.Context, name, point string, value float64) (json.RawMessage, error) {
	ex, err := b.d.calibrate(ctx, name, point, value)
	return exchangeReply(name, ex, err)
}

// exchangeReply returns the raw exchange with a probe; when the exchange failed, the error
// carries the exchange too, because what the probe said is what a technician needs.
func exchangeReply(name string, ex any, err error) (json.RawMessage, error) {
	raw, mErr := json.Marshal(ex)
	if mErr != nil {
		return nil, fmt.Errorf("encode exchange with %s: %w", name, mErr)
	}
	if err != nil {
		if errors.Is(err, admin.ErrNotFound) || errors.Is(err, admin.ErrBadRequest) {
			return nil, err
		}
		if ex == nil {
			return nil, fmt.Errorf("probe %s: %w", name, err)
		}
		return nil, fmt.Errorf("probe %s: %w; exchange: %s", name, err, raw)
	}
	return raw, nil
}

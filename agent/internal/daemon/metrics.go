package daemon

import (
	"context"
	"time"

	"github.com/purehealth/purehealth/agent/internal/metrics"
	"github.com/purehealth/purehealth/shared/version"
)

// metricsSnapshot takes the components' figures for a scrape of /metrics.
func (d *Daemon) metricsSnapshot() metrics.Snapshot {
	now := time.Now()
	cfg := d.conf()
	synced, _ := d.clock.State()
	b := backend{d}
	buf := b.buffer()
	bs := d.broker.Stats()
	ps := d.pipeline.Stats()
	hs := d.hooks.Stats()
	s := metrics.Snapshot{
		Station: cfg.Station.ID, Version: version.Version, UptimeS: now.Sub(d.start).Seconds(),
		ClockSynced: synced, Backlog: map[string]int{},
		BufferUsedBytes: buf.UsedBytes, BufferMaxBytes: buf.MaxBytes, AutonomyHours: buf.AutonomyHours,
		Evicted: buf.Evicted, StoreCommits: d.spool.Stats().Commits, StoreFailures: ps.StoreFailures,
		ReadingsStored:  ps.Accepted,
		ReadingsFlagged: map[string]uint64{"bad": ps.Bad, "suspect": ps.Suspect},
		Rejects:         bs.Rejects,
		Dropped: map[string]uint64{
			"mqtt_client_queue_full": uint64(bs.MessagesDropped),
			"hook_queue_full":        hs.Dropped,
		},
		BrokerClients: bs.ClientsConnected, BrokerReceived: bs.MessagesReceived,
		HooksRun: hs.Ran, HooksFailed: hs.Failed, ActiveAlerts: len(d.alerts.Active()),
	}
	s.ReloadsApplied, s.ReloadsFailed, s.RestartNeeded = d.reloads.counts()
	if q, err := b.Queue(context.Background()); err == nil {
		for _, l := range q.Lanes {
			s.Backlog[l.Stream] = l.Backlog
		}
		s.OldestUnsent = q.OldestUnsentAt
	}
	if d.uplink != nil {
		us := d.uplink.Status()
		s.Dropped["uplink_set_aside"] = us.Rejected
		s.Dropped["health_record_refused"] = us.HealthRefused
		s.Uplink = &metrics.Uplink{
			State: string(us.State), LastSuccess: us.LastSuccessAt, Since: d.start,
			Failing: us.ConsecutiveFailures > 0, Failures: us.Failures, ConsecutiveFailures: us.ConsecutiveFailures,
			Acked: us.Acked, BytesToday: us.BytesToday,
		}
	}
	factor := d.state.OfflineFactor()
	sensors := map[string]bool{}
	for _, sen := range d.state.Sensors() {
		sensors[sen.Name] = sen.Online(now, factor)
	}
	for _, p := range d.probes.all() {
		c := p.counts()
		s.Probes = append(s.Probes, metrics.Probe{Name: p.name, Kind: p.kind, Param: string(p.param),
			Up: sensors[p.name], Readings: c.Readings, Errors: c.ErrorsByKind, Reconnects: c.Reconnects})
	}
	return s
}

package metrics

import (
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("ph_agent_"+name, help, labels, nil)
}

// The metrics read from a Snapshot. Names end in _total for counters, in their unit
// otherwise (Prometheus' naming conventions).
var (
	infoDesc          = desc("info", "The agent's station and version; always 1.", "station", "version")
	uptimeDesc        = desc("uptime_seconds", "Seconds since the agent started.")
	clockDesc         = desc("clock_synced", "1 when the wall clock is trusted (NTP synchronized), else 0.")
	queueDesc         = desc("queue_length", "Records waiting to be forwarded to the cloud, by stream.", "stream")
	queueAgeDesc      = desc("queue_oldest_age_seconds", "Age of the oldest reading waiting to be forwarded; 0 when none waits.")
	bufUsedDesc       = desc("buffer_used_bytes", "Bytes of the buffer file in use.")
	bufMaxDesc        = desc("buffer_max_bytes", "The buffer's bound (buffer.max_bytes).")
	autonomyDesc      = desc("buffer_autonomy_hours", "Hours the buffer absorbs the current ingest rate with the uplink down; absent when nothing arrives.")
	evictedDesc       = desc("buffer_evicted_total", "Records evicted from the full buffer, by eviction step.", "reason")
	commitsDesc       = desc("store_commits_total", "Write transactions the buffer committed.")
	storeFailDesc     = desc("store_failures_total", "Writes the buffer failed (their readings were not acknowledged).")
	storedDesc        = desc("readings_stored_total", "Readings made durable.")
	flaggedDesc       = desc("readings_flagged_total", "Stored readings graded below good, by quality.", "quality")
	rejectsDesc       = desc("rejects_total", "Inputs refused before they became readings, by reason.", "reason")
	droppedDesc       = desc("dropped_total", "Messages and records given up on after they were taken in, by reason.", "reason")
	clientsDesc       = desc("broker_clients", "MQTT clients connected to the station's broker.")
	receivedDesc      = desc("broker_messages_received_total", "Publishes received on the station's reading topics.")
	upStateDesc       = desc("uplink_state", "1 for the uplink's current state.", "state")
	upFailuresDesc    = desc("uplink_failures_total", "Forwarding passes that failed.")
	upConsecDesc      = desc("uplink_consecutive_failures", "Failed passes since the last success.")
	upOfflineDesc     = desc("uplink_offline_seconds", "Seconds since the cloud last acknowledged a batch (since the uplink started, if never) while forwarding fails; 0 while it works.")
	upLastDesc        = desc("uplink_last_success_timestamp_seconds", "When the cloud last acknowledged a batch (Unix time); absent if never since start.")
	upAckedDesc       = desc("uplink_acked_records_total", "Records the cloud acknowledged.")
	upBytesDesc       = desc("uplink_bytes_today", "Bytes the uplink put on the wire this UTC day.")
	probeUpDesc       = desc("probe_up", "1 when a configured probe reported within its expected interval.", "probe", "kind", "param")
	probeReadingsDesc = desc("probe_readings_total", "Readings a configured probe brought in.", "probe")
	probeErrorsDesc   = desc("probe_errors_total", "Faults of a configured probe, by kind of fault.", "probe", "error")
	probeReconnDesc   = desc("probe_reconnects_total", "Reconnections of a configured probe.", "probe")
	hooksRunDesc      = desc("hooks_run_total", "Alert hook commands run.")
	hooksFailedDesc   = desc("hooks_failed_total", "Alert hook commands that failed or timed out.")
	alertsDesc        = desc("alerts_active", "Alerts open at the station.")
	reloadsDesc       = desc("config_reloads_total", "Configuration reloads (SIGHUP), by result.", "result")
	restartDesc       = desc("config_restart_needed", "Configuration keys changed by a reload that take effect only after a restart.")
)

// collector turns a Snapshot into metrics at each scrape.
type collector struct {
	snapshot func() Snapshot
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{infoDesc, uptimeDesc, clockDesc, queueDesc, queueAgeDesc,
		bufUsedDesc, bufMaxDesc, autonomyDesc, evictedDesc, commitsDesc, storeFailDesc, storedDesc,
		flaggedDesc, rejectsDesc, droppedDesc, clientsDesc, receivedDesc, upStateDesc, upFailuresDesc,
		upConsecDesc, upOfflineDesc, upLastDesc, upAckedDesc, upBytesDesc, probeUpDesc, probeReadingsDesc,
		probeErrorsDesc, probeReconnDesc, hooksRunDesc, hooksFailedDesc, alertsDesc, reloadsDesc, restartDesc} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	now := time.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(infoDesc, 1, s.Station, s.Version)
	gauge(uptimeDesc, s.UptimeS)
	gauge(clockDesc, boolf(s.ClockSynced))
	for _, st := range slices.Sorted(maps.Keys(s.Backlog)) {
		gauge(queueDesc, float64(s.Backlog[st]), st)
	}
	age := 0.0
	if !s.OldestUnsent.IsZero() {
		age = max(now.Sub(s.OldestUnsent).Seconds(), 0)
	}
	gauge(queueAgeDesc, age)
	gauge(bufUsedDesc, float64(s.BufferUsedBytes))
	gauge(bufMaxDesc, float64(s.BufferMaxBytes))
	if s.AutonomyHours != nil {
		gauge(autonomyDesc, *s.AutonomyHours)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Evicted)) {
		counter(evictedDesc, float64(s.Evicted[k]), k)
	}
	counter(commitsDesc, float64(s.StoreCommits))
	counter(storeFailDesc, float64(s.StoreFailures))
	counter(storedDesc, float64(s.ReadingsStored))
	for _, k := range slices.Sorted(maps.Keys(s.ReadingsFlagged)) {
		counter(flaggedDesc, float64(s.ReadingsFlagged[k]), k)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Rejects)) {
		counter(rejectsDesc, float64(s.Rejects[k]), k)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Dropped)) {
		counter(droppedDesc, float64(s.Dropped[k]), k)
	}
	gauge(clientsDesc, float64(s.BrokerClients))
	counter(receivedDesc, float64(s.BrokerReceived))
	if u := s.Uplink; u != nil {
		for _, st := range uplinkStates {
			gauge(upStateDesc, boolf(u.State == st), st)
		}
		counter(upFailuresDesc, float64(u.Failures))
		gauge(upConsecDesc, float64(u.ConsecutiveFailures))
		gauge(upOfflineDesc, offlineSeconds(u, now))
		if !u.LastSuccess.IsZero() {
			gauge(upLastDesc, float64(u.LastSuccess.UnixMilli())/1000)
		}
		counter(upAckedDesc, float64(u.Acked))
		gauge(upBytesDesc, float64(u.BytesToday))
	}
	for _, p := range s.Probes {
		gauge(probeUpDesc, boolf(p.Up), p.Name, p.Kind, p.Param)
		counter(probeReadingsDesc, float64(p.Readings), p.Name)
		for _, k := range slices.Sorted(maps.Keys(p.Errors)) {
			counter(probeErrorsDesc, float64(p.Errors[k]), p.Name, k)
		}
		counter(probeReconnDesc, float64(p.Reconnects), p.Name)
	}
	counter(hooksRunDesc, float64(s.HooksRun))
	counter(hooksFailedDesc, float64(s.HooksFailed))
	gauge(alertsDesc, float64(s.ActiveAlerts))
	counter(reloadsDesc, float64(s.ReloadsApplied), "applied")
	counter(reloadsDesc, float64(s.ReloadsFailed), "failed")
	gauge(restartDesc, float64(s.RestartNeeded))
}

// offlineSeconds is how long the station has been cut off from the cloud: since the last
// acknowledged batch (or, with none, since forwarding began) while the last attempt
// failed; 0 while forwarding works.
func offlineSeconds(u *Uplink, now time.Time) float64 {
	if !u.Failing {
		return 0
	}
	from := u.LastSuccess
	if from.IsZero() {
		from = u.Since
	}
	return max(now.Sub(from).Seconds(), 0)
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

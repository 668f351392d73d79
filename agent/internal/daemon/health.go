package daemon

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/purehealth/purehealth/agent/internal/probestatus"
	"github.com/purehealth/purehealth/agent/internal/state"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/version"
	"github.com/purehealth/purehealth/shared/wire"
)

// health takes the station's health record for the cloud (uplink.Options.Health): the
// same figures `ph-agent status` shows.
func (d *Daemon) health() *wire.Health {
	ctx := context.Background()
	now := time.Now()
	synced, _ := d.clock.State()
	buf := backend{d}.buffer()
	h := &wire.Health{
		Time: now.UTC(), Version: fitText(version.Version, 64), UptimeS: now.Sub(d.start).Seconds(),
		ClockSynced: synced,
		Buffer:      wire.HealthBuffer{UsedBytes: buf.UsedBytes, MaxBytes: buf.MaxBytes, AutonomyH: buf.AutonomyHours},
		Broker:      wire.HealthBroker{Clients: d.broker.Stats().ClientsConnected},
	}
	for _, n := range d.broker.Stats().Rejects {
		h.Broker.Rejects += n
	}
	if q, err := (backend{d}).Queue(ctx); err == nil {
		h.Backlog = int64(q.Backlog)
		if !q.OldestUnsentAt.IsZero() {
			t := q.OldestUnsentAt.UTC()
			h.OldestUnsentAt = &t
		}
	}
	counts := map[string]probestatus.Counts{}
	for _, p := range d.probes.all() {
		counts[p.name] = p.counts()
	}
	h.Probes = probeHealth(now, d.start, d.state.OfflineFactor(), d.state.Sensors(), counts)
	for _, p := range d.calibratable() {
		at, err := d.calibrations.DueAt(ctx, p.Name, now)
		if err != nil {
			d.log.Debug("calibration due date", "probe", p.Name, "err", err)
			continue
		}
		if fitsName(p.Name) {
			h.CalibrationDue = append(h.CalibrationDue, wire.CalibrationDue{Probe: p.Name, Param: string(p.Param), DueAt: at.UTC()})
		}
	}
	slices.SortFunc(h.CalibrationDue, func(a, b wire.CalibrationDue) int {
		return cmp.Or(a.DueAt.Compare(b.DueAt), cmp.Compare(a.Probe, b.Probe))
	})
	h.CalibrationDue = h.CalibrationDue[:min(len(h.CalibrationDue), wire.MaxHealthList)]
	return h
}

// probeHealth counts the station's sensors and names the failing ones: a sensor that is
// expected to report (a configured probe, or a device whose interval was learned) and has
// not within its offline factor (counted from the agent's start for one that never
// reported, as the offline alert counts it), and a configured probe whose last attempt
// failed after its last reading. The list keeps the first wire.MaxHealthList by name;
// the counts cover all.
func probeHealth(now, started time.Time, factor float64, sensors []state.Sensor, counts map[string]probestatus.Counts) wire.HealthProbes {
	out := wire.HealthProbes{Total: len(sensors), Failing: []wire.FailingProbe{}}
	for _, s := range sensors {
		online := s.Online(now, factor)
		if online {
			out.Online++
		}
		overdue := now.Sub(started) > time.Duration(factor*float64(s.Interval))
		var reason string
		switch c, configured := counts[s.Name]; {
		case !online && s.LastReadingAt.IsZero() && (s.Expected || s.Interval > 0) && overdue:
			reason = "no reading since the agent started"
			if configured && c.LastError != "" {
				reason += "; last error: " + c.LastError
			}
		case !online && !s.LastReadingAt.IsZero() && (s.Expected || s.Interval > 0):
			reason = fmt.Sprintf("offline: no reading for %s (expected every %s)",
				now.Sub(s.LastReadingAt).Round(time.Second), s.Interval)
		case configured && c.LastError != "" && c.LastErrorAt.After(c.LastReadingAt):
			reason = "failing: " + c.LastError
		default:
			continue
		}
		if fitsName(s.Name) {
			out.Failing = append(out.Failing, wire.FailingProbe{Name: s.Name, Reason: fitText(reason, wire.MaxReasonLen)})
		}
	}
	slices.SortFunc(out.Failing, func(a, b wire.FailingProbe) int { return cmp.Compare(a.Name, b.Name) })
	out.Failing = out.Failing[:min(len(out.Failing), wire.MaxHealthList)]
	return out
}

// fitsName reports whether a probe's name passes the cloud's rule; the agent admits no
// other from devices, but a configured name is not held to it.
func fitsName(name string) bool { return telemetry.CheckName(name, telemetry.MaxSensorLen) == nil }

// fitText makes s a valid name of at most max bytes: control characters become spaces,
// and it is cut at a character boundary with an ellipsis.
func fitText(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if s = strings.TrimSpace(s); s == "" {
		return "?"
	}
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

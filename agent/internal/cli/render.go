package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/agent/internal/alerting"
)

// Human output: aligned tables and relative times, for a technician at a terminal. Every
// renderer takes now, so golden tests are exact.

// age says how long ago t was: "just now", "12s ago", "2m ago", "3h ago", "4d ago".
func age(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < -5*time.Second:
		return "in " + short(-d)
	case d < 5*time.Second:
		return "just now"
	}
	return short(d) + " ago"
}

// short renders a duration in its largest whole unit.
func short(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

func uptime(d time.Duration) string {
	d = d.Round(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h, m := d/time.Hour, (d%time.Hour)/time.Minute
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%dh%dm", days, h, m)
	case h > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	}
	return fmt.Sprintf("%dm%ds", m, (d%time.Minute)/time.Second)
}

func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// wqiView is the part of the WQI message the CLI shows.
type wqiView struct {
	WQI             *float64           `json:"wqi"`
	Class           string             `json:"class"`
	Category        string             `json:"category"`
	SubIndices      map[string]float64 `json:"sub_indices"`
	DOSaturationPct *float64           `json:"do_saturation_pct"`
	Partial         bool               `json:"partial"`
	Missing         []string           `json:"missing"`
	DOMethod        string             `json:"do_method"`
	TempC           float64            `json:"temp_c"`
	TempAssumed     bool               `json:"temp_assumed"`
	PressureAtm     float64            `json:"pressure_atm"`
	Time            time.Time          `json:"time"`
	Reason          string             `json:"reason"`
	Inputs          []struct {
		Param  string    `json:"param"`
		Value  float64   `json:"value"`
		Time   time.Time `json:"time"`
		Sensor string    `json:"sensor"`
		Stale  bool      `json:"stale"`
	} `json:"inputs"`
}

func wqiLine(raw json.RawMessage) string {
	var v wqiView
	if len(raw) == 0 || string(raw) == "null" || json.Unmarshal(raw, &v) != nil || v.WQI == nil {
		if v.Reason != "" {
			return "none (" + v.Reason + ")"
		}
		return "none yet (no fresh do, fc, ph or bod)"
	}
	s := fmt.Sprintf("%.2f  class %s  %s", *v.WQI, v.Class, v.Category)
	if v.Partial {
		s += fmt.Sprintf("  (partial: %s missing)", strings.Join(v.Missing, ", "))
	}
	return s
}

func renderStatus(w io.Writer, s admin.Status, now time.Time) error {
	t := table(w)
	name := s.Station
	if s.Name != "" {
		name += "  " + s.Name
	}
	fmt.Fprintf(t, "Station\t%s (class %s)\n", name, s.Class)
	fmt.Fprintf(t, "Version\t%s, up %s\n", s.Version, uptime(time.Duration(s.UptimeS*float64(time.Second))))
	if s.Clock.Synced {
		fmt.Fprintf(t, "Clock\tsynchronized\n")
	} else {
		fmt.Fprintf(t, "Clock\tNOT SYNCHRONIZED: %s (readings are flagged time_unsynced)\n", s.Clock.Reason)
	}
	fmt.Fprintf(t, "WQI\t%s\n", wqiLine(s.WQI))
	fmt.Fprintf(t, "Broker\t%s, %d clients, %d messages received\n", s.Broker.Listen, s.Broker.Clients, s.Broker.Received)
	in := s.Ingest
	fmt.Fprintf(t, "Ingest\t%d accepted (%d bad, %d suspect), %d rejected, %.1f readings/s\n",
		in.Accepted, in.Bad, in.Suspect, in.Rejected, in.RatePerS)
	if in.StoreFailing {
		fmt.Fprintf(t, "\tSTORE FAILING: %d writes failed; devices are not acknowledged\n", in.StoreFailures)
	}
	b := s.Buffer
	fmt.Fprintf(t, "Buffer\t%s of %s used, %d readings, %d unsent", bytesIEC(b.UsedBytes), bytesIEC(b.MaxBytes), b.Readings, b.Unforwarded)
	if !b.OldestUnsent.IsZero() {
		fmt.Fprintf(t, " (oldest %s)", age(b.OldestUnsent, now))
	}
	fmt.Fprintln(t)
	if b.AutonomyHours != nil {
		fmt.Fprintf(t, "Autonomy\t%s left at the current rate with the uplink down\n", hours(*b.AutonomyHours))
	} else {
		fmt.Fprintf(t, "Autonomy\tunlimited for now (nothing arriving)\n")
	}
	var evicted []string
	for _, k := range []string{"expired_forwarded", "forwarded", "downsampled", "dropped_unforwarded"} {
		if n := b.Evicted[k]; n > 0 {
			evicted = append(evicted, fmt.Sprintf("%d %s", n, strings.ReplaceAll(k, "_", " ")))
		}
	}
	if len(evicted) > 0 {
		fmt.Fprintf(t, "\tevicted: %s\n", strings.Join(evicted, ", "))
	}
	if b.Quarantined != "" {
		fmt.Fprintf(t, "\tcorrupt database quarantined at %s\n", b.Quarantined)
	}
	fmt.Fprintf(t, "Uplink\t%s\n", uplinkLine(s.Uplink, now))
	if c := s.Config; c != nil {
		renderConfig(t, c, now)
	}
	fmt.Fprintf(t, "Alerts\t%d active\n", len(s.ActiveAlerts))
	if err := t.Flush(); err != nil {
		return err
	}
	if len(s.ActiveAlerts) > 0 {
		fmt.Fprintln(w)
		return renderAlerts(w, s.ActiveAlerts, now, false)
	}
	return nil
}

// renderConfig says what the configuration reloads did.
func renderConfig(t io.Writer, c *admin.ConfigStatus, now time.Time) {
	line := fmt.Sprintf("reloaded %d times", c.Reloads)
	if c.Failed > 0 {
		line += fmt.Sprintf(" (%d refused)", c.Failed)
	}
	if !c.LastReloadAt.IsZero() {
		line += ", last " + age(c.LastReloadAt, now)
	}
	fmt.Fprintf(t, "Config\t%s\n", line)
	if c.LastError != "" {
		fmt.Fprintf(t, "\tLAST RELOAD REFUSED: %s (the running configuration is unchanged)\n", c.LastError)
	}
	if len(c.RestartNeeded) > 0 {
		fmt.Fprintf(t, "\tRESTART NEEDED for: %s\n", strings.Join(c.RestartNeeded, ", "))
	}
}

func hours(h float64) string {
	switch {
	case h < 1:
		return fmt.Sprintf("%.0f minutes", h*60)
	case h < 48:
		return fmt.Sprintf("%.1f hours", h)
	}
	return fmt.Sprintf("%.0f hours (%.0f days)", h, h/24)
}

func uplinkLine(q admin.Queue, now time.Time) string {
	if !q.Configured {
		return fmt.Sprintf("not configured; %d readings kept locally", q.Backlog)
	}
	s := stateText(q, now)
	s += fmt.Sprintf(", backlog %d", q.Backlog)
	if !q.OldestUnsentAt.IsZero() {
		s += fmt.Sprintf(" (oldest %s)", age(q.OldestUnsentAt, now))
	}
	s += ", last success " + age(q.LastSuccessAt, now)
	if q.LastError != "" && q.State != "idle" { // an old error once everything went is history
		s += ", last error: " + q.LastError
	}
	return s
}

// stateText is the uplink's state with what the technician needs to know about it: how
// long it has been failing and when it tries again.
func stateText(q admin.Queue, now time.Time) string {
	s := q.State
	var more []string
	if q.ConsecutiveFailures > 0 {
		more = append(more, fmt.Sprintf("%d failures", q.ConsecutiveFailures))
	}
	if !q.NextRetryAt.IsZero() {
		if q.State == "budget exhausted" {
			more = append(more, "backlog resumes "+age(q.NextRetryAt, now))
		} else {
			more = append(more, "next try "+age(q.NextRetryAt, now))
		}
	}
	if len(more) > 0 {
		s += " (" + strings.Join(more, ", ") + ")"
	}
	return s
}

func renderSensors(w io.Writer, ss []admin.Sensor, now time.Time) error {
	if len(ss) == 0 {
		_, err := fmt.Fprintln(w, "No sensors configured or heard from yet.")
		return err
	}
	t := table(w)
	fmt.Fprintln(t, "NAME\tKIND\tPARAM\tSTATUS\tLAST READING\tVALUE\tRATE/MIN\tREADINGS\tERRORS\tRECONNECTS\tGOOD%")
	for _, s := range ss {
		status := "online"
		if !s.Online {
			status = "OFFLINE"
		}
		last, value := "never", "-"
		if s.LastReadingAt != nil {
			last = age(*s.LastReadingAt, now)
		}
		if s.LastValue != nil {
			value = fmt.Sprintf("%g", *s.LastValue)
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%d\t%d\t%d\t%s\n", s.Name, s.Kind, s.Param,
			status, last, value, s.RatePerMin, s.Readings, s.Errors, s.Reconnects, pct(s.Quality.Good, s.Readings))
	}
	return t.Flush()
}

func pct(share float64, n uint64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", share*100)
}

func renderReadings(w io.Writer, rs []admin.Reading, now time.Time) error {
	if len(rs) == 0 {
		_, err := fmt.Fprintln(w, "No readings match.")
		return err
	}
	t := table(w)
	fmt.Fprintln(t, "SEQ\tTIME (UTC)\tAGE\tPARAM\tVALUE\tUNIT\tQUALITY\tSOURCE\tSENSOR\tFLAGS")
	for _, r := range rs {
		flags := strings.Join(r.Flags, ",")
		if flags == "" {
			flags = "-"
		}
		sensor := r.Sensor
		if r.SampleID != "" {
			sensor += " #" + r.SampleID
		}
		fmt.Fprintf(t, "%d\t%s\t%s\t%s\t%g\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.Time.UTC().Format("2006-01-02 15:04:05"),
			age(r.Time, now), r.Param, r.Value, r.Unit, r.Quality, r.Source, sensor, flags)
	}
	return t.Flush()
}

func renderWQI(w io.Writer, raw json.RawMessage, now time.Time) error {
	var v wqiView
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("decode WQI: %w", err)
	}
	fmt.Fprintf(w, "WQI  %s\n", wqiLine(raw))
	if v.WQI == nil {
		return nil
	}
	if !v.Time.IsZero() {
		fmt.Fprintf(w, "computed %s\n", age(v.Time, now))
	}
	fmt.Fprintln(w)
	t := table(w)
	fmt.Fprintln(t, "PARAM\tVALUE\tSUB-INDEX\tWEIGHT\tFROM\tAGE")
	weights := map[string]string{"do": "0.31", "fc": "0.28", "ph": "0.22", "bod": "0.19"}
	inputs := map[string]int{}
	for i, in := range v.Inputs {
		inputs[in.Param] = i
	}
	for _, p := range []string{"do", "fc", "ph", "bod"} {
		sub, ok := v.SubIndices[p]
		value, from, ago := "-", "-", "-"
		if i, has := inputs[p]; has {
			in := v.Inputs[i]
			value, from, ago = fmt.Sprintf("%g", in.Value), in.Sensor, age(in.Time, now)
			if in.Stale {
				ago += " (stale, not used)"
			}
		}
		if p == "do" && v.DOSaturationPct != nil {
			value += fmt.Sprintf(" mg/L = %.1f %% sat", *v.DOSaturationPct)
		}
		subS := "missing"
		if ok {
			subS = fmt.Sprintf("%.2f", sub)
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\n", p, value, subS, weights[p], from, ago)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if v.DOSaturationPct != nil {
		temp := fmt.Sprintf("%.1f °C", v.TempC)
		if v.TempAssumed {
			temp += " (assumed: no fresh temperature)"
		}
		fmt.Fprintf(w, "\nDO saturation by %s at %s, %.3f atm\n", v.DOMethod, temp, v.PressureAtm)
	}
	if v.Partial {
		fmt.Fprintf(w, "Partial index: weights renormalized over the %d parameters present.\n", 4-len(v.Missing))
	}
	return nil
}

func renderAlerts(w io.Writer, as []alerting.Alert, now time.Time, withResolved bool) error {
	if len(as) == 0 {
		_, err := fmt.Fprintln(w, "No active alerts.")
		return err
	}
	t := table(w)
	if withResolved {
		fmt.Fprintln(t, "ID\tSEVERITY\tSTATE\tRULE\tPARAM\tOPENED\tRESOLVED\tMESSAGE")
	} else {
		fmt.Fprintln(t, "ID\tSEVERITY\tSTATE\tRULE\tPARAM\tOPENED\tMESSAGE")
	}
	for _, a := range as {
		param := a.Param
		if param == "" {
			param = "-"
		}
		state := string(a.State)
		if a.AcknowledgedBy != "" && a.State != alerting.Resolved {
			state += " (" + a.AcknowledgedBy + ")"
		}
		if withResolved {
			resolved := "-"
			if a.ResolvedAt != nil {
				resolved = age(*a.ResolvedAt, now)
			}
			fmt.Fprintf(t, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Severity, state, a.Rule, param,
				age(a.OpenedAt, now), resolved, a.Message)
		} else {
			fmt.Fprintf(t, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Severity, state, a.Rule, param,
				age(a.OpenedAt, now), a.Message)
		}
	}
	return t.Flush()
}

func renderQueue(w io.Writer, q admin.Queue, now time.Time) error {
	t := table(w)
	if !q.Configured {
		fmt.Fprintf(t, "Uplink\t%s\n", uplinkLine(q, now))
	} else {
		fmt.Fprintf(t, "Uplink\t%s\n", stateText(q, now))
		fmt.Fprintf(t, "URL\t%s\n", q.URL)
		backlog := fmt.Sprintf("%d readings", q.Backlog)
		if !q.OldestUnsentAt.IsZero() {
			backlog += fmt.Sprintf(" (oldest %s)", age(q.OldestUnsentAt, now))
		}
		fmt.Fprintf(t, "Backlog\t%s\n", backlog)
		fmt.Fprintf(t, "Last success\t%s\n", age(q.LastSuccessAt, now))
		if q.LastError != "" {
			fmt.Fprintf(t, "Last error\t%s: %s\n", age(q.LastErrorAt, now), q.LastError)
		}
		if q.DailyBytes > 0 {
			fmt.Fprintf(t, "Sent today\t%s of the %s daily budget (UTC)\n", bytesIEC(q.BytesToday), bytesIEC(q.DailyBytes))
		} else {
			fmt.Fprintf(t, "Sent today\t%s (UTC day, no budget)\n", bytesIEC(q.BytesToday))
		}
		if q.BatchLimit > 0 && q.BatchLimit < q.BatchMax {
			fmt.Fprintf(t, "Batch size\t%d records, down from %d: the cloud found larger batches too large\n",
				q.BatchLimit, q.BatchMax)
		}
		if q.Rejected > 0 {
			fmt.Fprintf(t, "Set aside\t%d records refused by the cloud; they will not reach it (see the log)\n", q.Rejected)
		}
	}
	fmt.Fprintf(t, "Last acked seq\t%d\n", q.LastAckedSeq)
	if err := t.Flush(); err != nil {
		return err
	}
	if len(q.Lanes) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t = table(w)
	fmt.Fprintln(t, "STREAM\tUNSENT\tLIVE LANE\tBACKLOG LANE\tACKED AHEAD\tCURSOR\tLAST SEQ")
	for _, l := range q.Lanes {
		fmt.Fprintf(t, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", l.Stream, l.Backlog, l.Live, max(l.Backlog-l.Live, 0),
			l.AckedAhead, l.Cursor, l.LastSeq)
	}
	return t.Flush()
}

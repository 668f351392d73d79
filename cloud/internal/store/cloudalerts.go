package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/purehealth/purehealth/shared/alert"
)

// The cloud's own rules that reconcile their alerts with SyncCloudAlerts: the early
// warnings of the forecast job and the findings of the anomaly detection (design §5a).
const (
	RuleForecastBreach = "forecast_breach"
	RulePollutionEvent = "pollution_event"
	RuleSuspectSensor  = "suspect_sensor"
	// RuleLocalEvent: several independent measurements changed together at one station and
	// nowhere else (yet): a change of the water there, not a sensor.
	RuleLocalEvent = "local_event"
)

// TransitionUpdated is the transition of a cloud alert whose message or evidence changed
// without its severity rising (that is "escalated"): a forecast that moved, an event that
// reached one more station. Notification channels get it only when their `on` lists it.
const TransitionUpdated = "updated"

// MaxEvidence bounds the evidence of one cloud alert.
const MaxEvidence = 64 << 10

// maxCloudMessage bounds a cloud alert's message.
const maxCloudMessage = 2000

// CloudAlert is what one of the cloud's rules wants of one condition at one station.
type CloudAlert struct {
	Station string
	Rule    string
	// Key names the condition: at most one alert of a station and key is open.
	Key      string
	Param    string
	Severity alert.Severity
	Message  string
	Value    *float64
	Limit    *float64
	// Evidence is JSON: what the rule saw (at most MaxEvidence bytes; nil for none).
	Evidence json.RawMessage
	// Over says the condition was seen but has ended: an open alert of the key resolves
	// (with this message and evidence); with none open and none ever raised for the key,
	// one is opened and resolved at once, so that what happened while nobody could see
	// it (a backlog that arrived late) is on record.
	Over bool
}

// CloudAlertScope is what one SyncCloudAlerts call owns: the open cloud alerts of these
// rules at these stations.
type CloudAlertScope struct {
	Rules    []string
	Stations []string
}

func (sc CloudAlertScope) has(a CloudAlert) bool {
	return slices.Contains(sc.Rules, a.Rule) && slices.Contains(sc.Stations, a.Station)
}

// CloudAlertChange is one transition a sync made.
type CloudAlertChange struct {
	Transition string // opened, escalated, updated, resolved
	Alert      Alert  // after the transition
}

// cloudAlertLockKey serializes the reconciliations of cloud alerts across replicas, so
// that two of them never open the same condition twice.
const cloudAlertLockKey = 0x70682d63616c72 // "ph-calr"

func (a CloudAlert) validate() error {
	var errs []error
	if a.Station == "" || a.Rule == "" || a.Key == "" {
		errs = append(errs, errors.New("station, rule and key are required"))
	}
	if !a.Severity.Valid() {
		errs = append(errs, fmt.Errorf("severity %q", a.Severity))
	}
	if len(a.Evidence) > MaxEvidence {
		errs = append(errs, fmt.Errorf("evidence of %d bytes is over %d", len(a.Evidence), MaxEvidence))
	}
	if len(a.Evidence) > 0 && !json.Valid(a.Evidence) {
		errs = append(errs, errors.New("evidence is not JSON"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: cloud alert %s/%s: %w", ErrInvalid, a.Station, a.Key, err)
	}
	return nil
}

// SyncCloudAlerts makes the open cloud alerts of scope those that want describes, in one
// transaction, and returns the transitions it made:
//
//   - a key of want with no open alert opens one (Over: see CloudAlert.Over);
//   - a key with an open alert keeps it: a higher severity escalates it, any other change
//     of severity, message, parameter, value, limit or evidence updates it (state and
//     acknowledgement stay), no change changes nothing;
//   - an open alert of scope whose key want does not name resolves, as it stands.
//
// Every transition is written as an alert event (the live stream) and queued for
// notification, in the same transaction, as every cloud alert is. Every entry of want
// must be in scope and name its key once. Hysteresis is the caller's: a condition that
// is to stay open must be in want.
func (s *Store) SyncCloudAlerts(ctx context.Context, scope CloudAlertScope, want []CloudAlert, at time.Time) ([]CloudAlertChange, error) {
	seen := map[[2]string]bool{}
	for i := range want {
		a := &want[i]
		if err := a.validate(); err != nil {
			return nil, err
		}
		if !scope.has(*a) {
			return nil, fmt.Errorf("%w: cloud alert %s/%s (rule %s) is outside the scope of the sync", ErrInvalid, a.Station, a.Key, a.Rule)
		}
		k := [2]string{a.Station, a.Key}
		if seen[k] {
			return nil, fmt.Errorf("%w: cloud alert %s/%s given twice", ErrInvalid, a.Station, a.Key)
		}
		seen[k] = true
		a.Message = cleanText(a.Message, maxCloudMessage)
	}
	at = dbTime(at)
	var changes []CloudAlertChange
	err := s.query(ctx, "sync cloud alerts", func(ctx context.Context) error {
		changes = nil
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(cloudAlertLockKey)); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT `+alertColumns+` FROM alerts
				WHERE origin = '`+OriginCloud+`' AND state <> 'resolved' AND rule = ANY($1) AND station_id = ANY($2)
				ORDER BY station_id, alert_id FOR UPDATE`, scope.Rules, scope.Stations)
			if err != nil {
				return err
			}
			open, err := pgx.CollectRows(rows, scanAlert)
			if err != nil {
				return err
			}
			byKey := make(map[[2]string]Alert, len(open))
			for _, a := range open {
				byKey[[2]string{a.Station, a.Key}] = a
			}
			for _, w := range want {
				cur, ok := byKey[[2]string{w.Station, w.Key}]
				delete(byKey, [2]string{w.Station, w.Key})
				var cs []CloudAlertChange
				switch {
				case ok && w.Over:
					cs, err = updateCloudAlert(ctx, tx, cur, w, at, true)
				case ok:
					cs, err = updateCloudAlert(ctx, tx, cur, w, at, false)
				default:
					cs, err = openCloudAlert(ctx, tx, w, at)
				}
				if err != nil {
					return fmt.Errorf("%s/%s: %w", w.Station, w.Key, err)
				}
				changes = append(changes, cs...)
			}
			for _, a := range open {
				if _, left := byKey[[2]string{a.Station, a.Key}]; !left {
					continue
				}
				cs, err := resolveCloudAlert(ctx, tx, a, at)
				if err != nil {
					return fmt.Errorf("%s/%s: %w", a.Station, a.Key, err)
				}
				changes = append(changes, cs...)
			}
			evs := make([]newEvent, 0, len(changes))
			for _, c := range changes {
				ev, err := makeEvent(c.Alert.Station, EventAlert, at, AlertChange{Alert: c.Alert, Transition: c.Transition})
				if err != nil {
					return err
				}
				evs = append(evs, ev)
			}
			return writeEvents(ctx, tx, evs)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("sync cloud alerts: %w", err)
	}
	return changes, nil
}

// evidenceArg is the evidence as a query argument: NULL for none.
func evidenceArg(e json.RawMessage) any {
	if len(e) == 0 {
		return nil
	}
	return string(e)
}

// openCloudAlert opens an alert of w, and resolves it at once when w is over and no alert
// was ever raised for its key (when one was, the condition is on record: nothing).
func openCloudAlert(ctx context.Context, tx pgx.Tx, w CloudAlert, at time.Time) ([]CloudAlertChange, error) {
	if w.Over {
		var known bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM alerts WHERE station_id = $1 AND origin = '`+OriginCloud+`'
			AND key = $2)`, w.Station, w.Key).Scan(&known)
		if err != nil || known {
			return nil, err
		}
	}
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO alerts (station_id, origin, alert_id, rule, key, param, sensor, severity,
			state, opened_at, message, value, "limit", updated_at, event_seq, evidence)
		SELECT $1, '`+OriginCloud+`', nextval('cloud_alert_ids'), $2, $3, $4, '', $5, 'active', $6, $7, $8, $9, $6, 1, $10::json
		WHERE EXISTS (SELECT 1 FROM stations WHERE id = $1)
		RETURNING alert_id`, w.Station, w.Rule, w.Key, w.Param, string(w.Severity), at, w.Message, w.Value, w.Limit,
		evidenceArg(w.Evidence)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil // the station is gone
	}
	if err != nil {
		return nil, err
	}
	var a Alert
	a.ID, a.Origin, a.Station, a.Rule, a.Key, a.Param = uint64(id), OriginCloud, w.Station, w.Rule, w.Key, w.Param
	a.Severity, a.State, a.OpenedAt, a.Message, a.UpdatedAt = w.Severity, alert.Active, at, w.Message, at
	a.Value, a.Limit, a.Evidence = w.Value, w.Limit, w.Evidence
	out := []CloudAlertChange{{Transition: "opened", Alert: a}}
	if w.Over {
		resolved, err := resolveCloudAlert(ctx, tx, a, at)
		if err != nil {
			return nil, err
		}
		out = append(out, resolved...)
	}
	return out, nil
}

// updateCloudAlert brings the open alert cur to w: escalated when the severity rises,
// updated on any other change; with resolve, resolved after that (one transition).
func updateCloudAlert(ctx context.Context, tx pgx.Tx, cur Alert, w CloudAlert, at time.Time, resolve bool) ([]CloudAlertChange, error) {
	transition := ""
	switch {
	case w.Severity.Rank() > cur.Severity.Rank():
		transition = "escalated"
	case w.Severity != cur.Severity || w.Message != cur.Message || w.Param != cur.Param ||
		!sameFloat(w.Value, cur.Value) || !sameFloat(w.Limit, cur.Limit) || !bytes.Equal(compactJSON(w.Evidence), compactJSON(cur.Evidence)):
		transition = TransitionUpdated
	}
	if resolve {
		transition = "resolved"
	}
	if transition == "" {
		return nil, nil
	}
	a := cur
	a.Severity, a.Message, a.Param, a.Value, a.Limit, a.Evidence, a.UpdatedAt = w.Severity, w.Message, w.Param, w.Value, w.Limit, w.Evidence, at
	if resolve {
		a.State, a.ResolvedAt = alert.Resolved, &at
	}
	_, err := tx.Exec(ctx, `UPDATE alerts SET severity = $3, message = $4, param = $5, value = $6, "limit" = $7,
			evidence = $8::json, state = $9, resolved_at = $10, updated_at = $11, event_seq = event_seq + 1
		WHERE station_id = $1 AND origin = '`+OriginCloud+`' AND alert_id = $2`,
		a.Station, int64(a.ID), string(a.Severity), a.Message, a.Param, a.Value, a.Limit, evidenceArg(a.Evidence),
		string(a.State), a.ResolvedAt, at)
	if err != nil {
		return nil, err
	}
	return []CloudAlertChange{{Transition: transition, Alert: a}}, nil
}

// resolveCloudAlert resolves the open alert a as it stands.
func resolveCloudAlert(ctx context.Context, tx pgx.Tx, a Alert, at time.Time) ([]CloudAlertChange, error) {
	_, err := tx.Exec(ctx, `UPDATE alerts SET state = 'resolved', resolved_at = $3, updated_at = $3,
			event_seq = event_seq + 1
		WHERE station_id = $1 AND origin = '`+OriginCloud+`' AND alert_id = $2`, a.Station, int64(a.ID), at)
	if err != nil {
		return nil, err
	}
	a.State, a.ResolvedAt, a.UpdatedAt = alert.Resolved, &at, at
	return []CloudAlertChange{{Transition: "resolved", Alert: a}}, nil
}

func sameFloat(a, b *float64) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// compactJSON is j without insignificant space, for comparing evidence as written with
// evidence as stored.
func compactJSON(j json.RawMessage) []byte {
	if len(j) == 0 {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, j); err != nil {
		return j
	}
	return b.Bytes()
}

// CloudAlerts lists the cloud alerts of scope that are open or were resolved at or after
// resolvedSince, oldest first: what a rule looks at to recognise a condition it has
// raised before.
func (s *Store) CloudAlerts(ctx context.Context, scope CloudAlertScope, resolvedSince time.Time) ([]Alert, error) {
	var out []Alert
	err := s.query(ctx, "cloud alerts", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT `+alertColumns+` FROM alerts
			WHERE origin = '`+OriginCloud+`' AND rule = ANY($1) AND station_id = ANY($2)
				AND (state <> 'resolved' OR resolved_at >= $3)
			ORDER BY opened_at, station_id, alert_id`, scope.Rules, scope.Stations, resolvedSince)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanAlert)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cloud alerts: %w", err)
	}
	return out, nil
}

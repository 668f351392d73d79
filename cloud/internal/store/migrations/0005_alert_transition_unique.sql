-- An alert transition is stored once, whatever seq the station gave it: a station that
-- retried a write it could not confirm may have appended the same transition twice. Its
-- identity is the alert, the transition and the time the station recorded for it.
DELETE FROM alert_events a USING alert_events b
WHERE a.station_id = b.station_id AND a.alert_id = b.alert_id
  AND a.transition = b.transition AND a.time = b.time AND a.seq > b.seq;
CREATE UNIQUE INDEX IF NOT EXISTS alert_events_transition ON alert_events (station_id, alert_id, transition, time);

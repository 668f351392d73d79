-- Acknowledgements: who acknowledged an alert, and whether an acknowledgement made in the
-- cloud still has to reach the station (it travels in the reply to the station's next
-- batch until the station's own acknowledged or resolved transition confirms it).
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS acknowledged_by text NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS ack_pending boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS alerts_ack_pending ON alerts (station_id) WHERE ack_pending;
ALTER TABLE alert_events ADD COLUMN IF NOT EXISTS acknowledged_by text NOT NULL DEFAULT '';

-- A station's own alerts have origin 'station', the name the API and the live events use.
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_origin_check;
UPDATE alerts SET origin = 'station' WHERE origin = 'agent';
ALTER TABLE alerts ALTER COLUMN origin SET DEFAULT 'station';
ALTER TABLE alerts ADD CONSTRAINT alerts_origin_check CHECK (origin IN ('station', 'cloud'));
UPDATE notify_outbox SET origin = 'station' WHERE origin = 'agent';

-- A removed station: its token no longer works and it leaves the listings and the health
-- check; its data stays unless it was purged (RemoveStation).
ALTER TABLE stations ADD COLUMN IF NOT EXISTS removed_at timestamptz;

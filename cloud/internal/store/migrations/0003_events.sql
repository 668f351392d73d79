-- Live events for the WebSocket fan-out, cloud-side alerts and station health. Same in both
-- modes.

-- Every reading, WQI result, alert transition, prediction and station status change, in
-- the order the transactions that wrote them committed. The ingest transaction writes its
-- events last; the triggers below make id order equal commit order and tell every
-- ph-cloud replica (LISTEN ph_events) the highest new id. Kept for a few days: long enough
-- for a WebSocket client to resume after a disconnect.
CREATE TABLE events (
    id         bigserial PRIMARY KEY,
    station_id text NOT NULL,
    type       text NOT NULL CHECK (type IN ('reading', 'wqi', 'alert', 'prediction', 'status')),
    time       timestamptz NOT NULL,   -- when it happened (a reading's time)
    data       json NOT NULL,          -- the message's data, as sent (json keeps the bytes)
    -- When it was stored. clock_timestamp() runs under the events lock, so created_at
    -- follows id order (as far as the server's clock does).
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Resumes read one station's events from an id on. created_at grows with id, so a BRIN
-- index finds a time's events at almost no cost to the inserts.
CREATE INDEX events_station ON events (station_id, id);
CREATE INDEX events_created ON events USING brin (created_at);

-- Writers of events take this transaction-level lock before the first id is drawn and
-- hold it until they commit, so a transaction that draws ids later also commits later:
-- a reader that has seen id N has seen every committed id below N, and "id > last seen"
-- misses nothing. Only the tail of a transaction (its events) runs under the lock.
CREATE FUNCTION events_serialize() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(123592740533876); -- 0x70682d657674, "ph-evt"
    RETURN NULL;
END
$$;
CREATE TRIGGER events_serialize BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_serialize();

-- NOTIFY carries the highest new id only (never rows): listeners fetch what they have not
-- seen. Notifications are delivered at commit, in commit order.
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last bigint;
BEGIN
    SELECT max(id) INTO last FROM new_events;
    IF last IS NOT NULL THEN
        PERFORM pg_notify('ph_events', last::text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_notify AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- Alerts raised by the cloud itself (station_offline) live beside the agents' alerts in
-- their own id space: origin 'cloud' with ids from cloud_alert_ids.
ALTER TABLE alerts ADD COLUMN origin text NOT NULL DEFAULT 'agent' CHECK (origin IN ('agent', 'cloud'));
ALTER TABLE alerts DROP CONSTRAINT alerts_pkey;
ALTER TABLE alerts ADD PRIMARY KEY (station_id, origin, alert_id);
CREATE SEQUENCE cloud_alert_ids;

-- Stations the health check found silent, with the cloud alert it opened. The next batch
-- of the station deletes the row (back online) and resolves the alert.
CREATE TABLE station_offline (
    station_id text PRIMARY KEY REFERENCES stations (id) ON DELETE CASCADE,
    since      timestamptz NOT NULL, -- when the check found it silent
    last_seen  timestamptz NOT NULL, -- its last batch before that
    alert_id   bigint NOT NULL
);

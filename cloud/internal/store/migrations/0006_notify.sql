-- Notifications of alert transitions (webhooks, e-mail). Same in both modes.
--
-- The transaction that stores an alert transition, a station's (ingest) or the cloud's own
-- (station health and other cloud rules), also queues it in notify_outbox. The notification
-- dispatcher (cloud/internal/notify) routes each queued transition to the channels whose
-- filters it passes (notify_deliveries) and sends them, one message per channel and
-- station at a time, grouping what waits (notify_streams). Replicas share the work through
-- row locks taken with SKIP LOCKED: a routed transition, a stream being sent.
--
-- Written to run again over itself (IF NOT EXISTS, OR REPLACE), as 0005 does: the
-- upgrade tests replay migrations on a database that has them.

-- Every alert transition stored, as its live event shows it.
CREATE TABLE IF NOT EXISTS notify_outbox (
    id         bigserial PRIMARY KEY,
    station_id text NOT NULL,
    origin     text NOT NULL,
    alert_id   bigint NOT NULL,
    transition text NOT NULL,
    rule       text NOT NULL,
    key        text NOT NULL,
    severity   text NOT NULL,
    time       timestamptz NOT NULL,             -- when the transition happened
    data       json NOT NULL,                    -- the alert after it (the alert event's data)
    created_at timestamptz NOT NULL DEFAULT now(),
    routed_at  timestamptz                       -- when its channels were chosen; NULL: not yet
);
CREATE INDEX IF NOT EXISTS notify_outbox_unrouted ON notify_outbox (id) WHERE routed_at IS NULL;
CREATE INDEX IF NOT EXISTS notify_outbox_created ON notify_outbox (created_at);

-- One row per transition and channel it is for.
CREATE TABLE IF NOT EXISTS notify_deliveries (
    channel    text NOT NULL,
    outbox_id  bigint NOT NULL REFERENCES notify_outbox (id) ON DELETE CASCADE,
    station_id text NOT NULL,
    state      text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'expired')),
    -- The stream's message that carries it, fixed at the message's first attempt so that a
    -- retry sends the very same message.
    message    bigint,
    done_at    timestamptz,                      -- when it was delivered or given up
    PRIMARY KEY (channel, outbox_id)
);
CREATE INDEX IF NOT EXISTS notify_deliveries_pending ON notify_deliveries (channel, station_id, outbox_id)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS notify_deliveries_outbox ON notify_deliveries (outbox_id);

-- The messages of one channel about one station: when the next may go (the end of the
-- grouping window after a message, or of the wait after a failed attempt) and how sending
-- has gone. A dispatcher locks the row while it sends.
CREATE TABLE IF NOT EXISTS notify_streams (
    channel       text NOT NULL,
    station_id    text NOT NULL,
    next_at       timestamptz NOT NULL,
    messages      bigint NOT NULL DEFAULT 0,     -- messages begun: the number of the newest
    sent_at       timestamptz,                   -- when the last message was delivered
    failures      integer NOT NULL DEFAULT 0,    -- consecutive failed attempts
    failing_since timestamptz,                   -- the first of them
    last_error    text NOT NULL DEFAULT '',
    last_error_at timestamptz,
    alert_id      bigint,                        -- its open notify_failing cloud alert
    PRIMARY KEY (channel, station_id)
);
CREATE INDEX IF NOT EXISTS notify_streams_due ON notify_streams (next_at);

-- Wakes the dispatchers (LISTEN ph_notify) when the transaction that queued transitions
-- commits, so that the first transition of a quiet station goes out at once.
CREATE OR REPLACE FUNCTION notify_outbox_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows) THEN
        PERFORM pg_notify('ph_notify', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER notify_outbox_wake AFTER INSERT ON notify_outbox
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox_wake();

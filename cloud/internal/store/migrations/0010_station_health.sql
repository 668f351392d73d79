-- The health records of the station agents (wire.Health): each agent sends one about
-- every minute, with its version, uptime, clock, buffer use and hours of autonomy,
-- backlog, probes, calibration due dates and broker. Same in both modes.
--
-- station_health keeps the newest record of each station, whole, for the fleet page
-- (GET /v1/fleet); station_health_history keeps every record's figures, flat, for
-- trends, and is expired by retention.health (Store.Maintain), counted from arrival
-- since a station's clock may be off.
CREATE TABLE IF NOT EXISTS station_health (
    station_id  text PRIMARY KEY REFERENCES stations (id) ON DELETE CASCADE,
    time        timestamptz NOT NULL,  -- when the agent took it
    received_at timestamptz NOT NULL,
    version     text NOT NULL,
    data        jsonb NOT NULL         -- the record as sent
);

CREATE TABLE IF NOT EXISTS station_health_history (
    station_id     text NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    time           timestamptz NOT NULL,
    received_at    timestamptz NOT NULL,
    version        text NOT NULL,
    uptime_s       double precision NOT NULL,
    clock_synced   boolean NOT NULL,
    used_bytes     bigint NOT NULL,
    max_bytes      bigint NOT NULL,
    autonomy_h     double precision,   -- NULL: nothing arriving, no estimate
    backlog        bigint NOT NULL,
    probes_total   integer NOT NULL,
    probes_online  integer NOT NULL,
    failing        text[] NOT NULL,    -- names of the failing probes
    broker_clients bigint NOT NULL,
    broker_rejects bigint NOT NULL,
    PRIMARY KEY (station_id, time)
);
CREATE INDEX IF NOT EXISTS station_health_history_received ON station_health_history (received_at);

-- Stations, their credentials, ingest bookkeeping and current alerts. Same in both modes.

-- A station and the hash of its token. The token itself is never stored: it is 32 random
-- bytes, so a plain SHA-256 is enough (no dictionary to guess from).
CREATE TABLE stations (
    id           text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    class        text NOT NULL DEFAULT 'B' CHECK (class IN ('A', 'B', 'C', 'D', 'E')),
    lat          double precision CHECK (lat BETWEEN -90 AND 90),
    lon          double precision CHECK (lon BETWEEN -180 AND 180),
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    token_set_at timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- What each station has delivered. Every batch transaction updates this row first, which
-- serializes one station's batches: rollups, latest values and current alerts are
-- recomputed from what is committed, so two concurrent batches must not interleave.
CREATE TABLE station_ingest (
    station_id    text PRIMARY KEY REFERENCES stations (id) ON DELETE CASCADE,
    readings_seq  bigint NOT NULL DEFAULT 0, -- highest seq received per stream
    alerts_seq    bigint NOT NULL DEFAULT 0,
    wqi_seq       bigint NOT NULL DEFAULT 0,
    batches       bigint NOT NULL DEFAULT 0,
    last_batch_at timestamptz,
    agent         text NOT NULL DEFAULT ''   -- agent version of the last batch
);

-- The latest usable (not bad) value of each parameter from each source: the inputs of a
-- station's fused state.
CREATE TABLE station_latest (
    station_id text NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    param      text NOT NULL,
    source     text NOT NULL,
    time       timestamptz NOT NULL,
    value      double precision NOT NULL,
    unit       text NOT NULL,
    quality    text NOT NULL,
    sensor     text NOT NULL,
    seq        bigint NOT NULL,
    PRIMARY KEY (station_id, param, source)
);

-- One row per alert of a station, holding its state after the newest transition received.
CREATE TABLE alerts (
    station_id      text NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    alert_id        bigint NOT NULL,
    rule            text NOT NULL,
    key             text NOT NULL,
    param           text NOT NULL,
    sensor          text NOT NULL,
    severity        text NOT NULL,
    state           text NOT NULL,
    opened_at       timestamptz NOT NULL,
    acknowledged_at timestamptz,
    resolved_at     timestamptz,
    message         text NOT NULL,
    value           double precision,
    "limit"         double precision,
    updated_at      timestamptz NOT NULL, -- station time of that transition
    event_seq       bigint NOT NULL,      -- its seq in the station's alerts stream
    PRIMARY KEY (station_id, alert_id)
);
CREATE INDEX alerts_opened ON alerts (opened_at DESC, station_id DESC, alert_id DESC);
CREATE INDEX alerts_unresolved ON alerts (station_id) WHERE state <> 'resolved';

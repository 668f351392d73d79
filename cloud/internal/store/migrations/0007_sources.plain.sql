-- Readings from outside the station agents, API tokens with roles, and the state of
-- upstream collection. Plain PostgreSQL layout; 0006_sources.timescaledb.sql makes the
-- same tables with external_readings and fused_wqi as hypertables.
--
-- Why a table of its own: government programmes publish monthly and yearly values, often
-- years after the sampling date, and lab results come weeks late. In measurements such a
-- row would be dropped by the raw-readings retention meant for probe data (TimescaleDB
-- drops whole chunks by their time range; the plain layout keeps out-of-window rows in
-- the DEFAULT partition only for the retention counted from arrival). external_readings
-- has its own retention per source (Store.Maintain).
--
-- A reading here is one revision of an observation. The observation's key is (origin,
-- station_id, param, ident, time) where ident is a lab's sample id ('' for everything
-- keyed by time alone); with a sample id, time is not part of the key. At most one
-- revision per key is current; a republished value with another number adds a revision
-- and makes it current, and an unchanged one adds nothing.
CREATE TABLE external_readings (
    id            bigserial NOT NULL,
    time          timestamptz NOT NULL,
    station_id    text NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    param         text NOT NULL,
    value         double precision NOT NULL,
    unit          text NOT NULL,
    quality       text NOT NULL,
    flags         text[] NOT NULL DEFAULT '{}',
    source        text NOT NULL CHECK (source IN ('api', 'satellite', 'manual', 'model')),
    origin        text NOT NULL,            -- configured source name (cpcb-nwmp), 'manual' for samples
    sensor        text NOT NULL,
    ident         text NOT NULL DEFAULT '', -- sample id, or '' when time identifies the observation
    revision      integer NOT NULL,         -- 1, 2, ... per key
    current       boolean NOT NULL,
    superseded_at timestamptz,
    received_at   timestamptz NOT NULL DEFAULT now(),
    -- Provenance: what the publisher or the lab said about the value.
    record_id     text,
    station_code  text,
    collection    text,
    scene_date    timestamptz,
    scenes        integer,
    pixels        integer,
    sample_id     text,
    lab           text,
    method        text,
    submitted_by  text,                     -- the token that posted a sample
    UNIQUE (origin, station_id, param, ident, revision, time),
    UNIQUE (id, time)
);
CREATE INDEX external_readings_station_time ON external_readings (station_id, time DESC, id DESC);
CREATE INDEX external_readings_current ON external_readings (station_id, param, source, time DESC)
    WHERE current;
CREATE INDEX external_readings_key ON external_readings (station_id, param, origin, ident) WHERE current;
CREATE INDEX external_readings_origin_time ON external_readings (origin, time);

-- Where each upstream source's next round starts.
CREATE TABLE upstream_cursors (
    source     text PRIMARY KEY,
    cursor     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Statistical API responses of settled weeks, so that a restart asks for nothing again.
CREATE TABLE satellite_cache (
    station_id text NOT NULL,
    collection text NOT NULL,
    week_from  timestamptz NOT NULL,
    week_to    timestamptz NOT NULL,
    digest     text NOT NULL,
    body       bytea NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (station_id, collection, week_from, week_to, digest)
);

-- Tokens of people and tools (stations keep theirs in stations.token_sha256). Only the
-- SHA-256 of a token is stored: it is 32 random bytes, so no dictionary helps a guess.
CREATE TABLE api_tokens (
    name         text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role         text NOT NULL CHECK (role IN ('lab', 'viewer', 'operator')),
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- The WQI the cloud computes from the freshest acceptable value of each parameter,
-- whatever its source; inputs says which value (source, time, age) fed each parameter,
-- data is the whole result as the API and the live event show it.
CREATE TABLE fused_wqi (
    time              timestamptz NOT NULL,
    station_id        text NOT NULL,
    wqi               double precision NOT NULL,
    class             text NOT NULL,
    category          text NOT NULL,
    partial           boolean NOT NULL,
    missing           text[] NOT NULL DEFAULT '{}',
    sub_indices       jsonb NOT NULL DEFAULT '{}',
    do_saturation_pct double precision,
    inputs            jsonb NOT NULL,
    data              json NOT NULL,
    UNIQUE (station_id, time)
);
CREATE INDEX fused_wqi_time ON fused_wqi (time);

-- Lab provenance of samples a station forwards (source manual).
ALTER TABLE measurements ADD COLUMN sample_id text, ADD COLUMN lab text, ADD COLUMN method text;


-- Time series on TimescaleDB 2.x: hypertables with 1-day chunks, continuous aggregates for
-- the rollups, compression of raw readings. The policies (compression after 7 days,
-- retention, aggregate refresh) depend on the configuration: `ph-cloud migrate` applies
-- them after the migrations, and again on every run.
--
-- Same tables, columns and query results as the plain PostgreSQL layout (0002_series.plain.sql).
-- Unique keys include the time column, as hypertables require.

CREATE TABLE measurements (
    time        timestamptz NOT NULL,
    station_id  text NOT NULL,
    param       text NOT NULL,
    value       double precision NOT NULL,
    unit        text NOT NULL,
    quality     text NOT NULL,
    source      text NOT NULL,
    seq         bigint NOT NULL,
    sensor      text NOT NULL,
    flags       text[] NOT NULL DEFAULT '{}',
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (station_id, seq, time)
);
SELECT create_hypertable('measurements', 'time', chunk_time_interval => INTERVAL '1 day');
CREATE INDEX measurements_station_time ON measurements (station_id, time DESC, seq DESC);
CREATE INDEX measurements_station_param_time ON measurements (station_id, param, time DESC, seq DESC);
ALTER TABLE measurements SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'station_id, param',
    timescaledb.compress_orderby = 'time DESC, seq DESC'
);

CREATE TABLE wqi_readings (
    time              timestamptz NOT NULL,
    station_id        text NOT NULL,
    seq               bigint NOT NULL,
    wqi               double precision NOT NULL,
    class             text NOT NULL,
    category          text NOT NULL,
    partial           boolean NOT NULL,
    missing           text[] NOT NULL DEFAULT '{}',
    sub_indices       jsonb NOT NULL DEFAULT '{}',
    do_saturation_pct double precision,
    received_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (station_id, seq, time)
);
SELECT create_hypertable('wqi_readings', 'time', chunk_time_interval => INTERVAL '1 day');
CREATE INDEX wqi_readings_station_time ON wqi_readings (station_id, time DESC, seq DESC);

CREATE TABLE alert_events (
    time            timestamptz NOT NULL,
    station_id      text NOT NULL,
    seq             bigint NOT NULL,
    alert_id        bigint NOT NULL,
    transition      text NOT NULL,
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
    UNIQUE (station_id, seq, time)
);
SELECT create_hypertable('alert_events', 'time', chunk_time_interval => INTERVAL '7 days');
CREATE INDEX alert_events_alert ON alert_events (station_id, alert_id, time);

-- Real-time aggregates (materialized_only = false), so that a bucket includes rows not yet
-- materialized, as the plain layout's rollups do.
CREATE MATERIALIZED VIEW measurements_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, station_id, param,
       avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS count
FROM measurements
WHERE quality <> 'bad'
GROUP BY bucket, station_id, param
WITH NO DATA;

CREATE MATERIALIZED VIEW measurements_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', time) AS bucket, station_id, param,
       avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS count
FROM measurements
WHERE quality <> 'bad'
GROUP BY bucket, station_id, param
WITH NO DATA;

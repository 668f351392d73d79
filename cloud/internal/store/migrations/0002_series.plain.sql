-- Time series on plain PostgreSQL: measurements and wqi_readings partitioned by day (UTC).
-- ph-cloud creates the daily partitions ahead and on demand, and drops them past
-- retention. Rows whose day has no partition (a station clock years off) land in the
-- DEFAULT partition, where they are kept for the retention period counted from their
-- arrival (received_at); a partition created later takes its rows over.
--
-- Unique keys include the time column, as TimescaleDB requires on hypertables; an agent
-- never changes the time of a seq, so (station_id, seq, time) identifies a record.

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
) PARTITION BY RANGE (time);
CREATE INDEX measurements_station_time ON measurements (station_id, time DESC, seq DESC);
CREATE INDEX measurements_station_param_time ON measurements (station_id, param, time DESC, seq DESC);
CREATE TABLE measurements_default PARTITION OF measurements DEFAULT;

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
) PARTITION BY RANGE (time);
CREATE INDEX wqi_readings_station_time ON wqi_readings (station_id, time DESC, seq DESC);
CREATE TABLE wqi_readings_default PARTITION OF wqi_readings DEFAULT;

-- Every alert transition as the station recorded it.
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
CREATE INDEX alert_events_alert ON alert_events (station_id, alert_id, time);
CREATE INDEX alert_events_time ON alert_events (time);

-- Rollups of usable (not bad) readings, kept by the ingest transaction: it recomputes
-- exactly the buckets its new rows fall in. Buckets are UTC hours and days.
CREATE TABLE measurements_hourly (
    bucket     timestamptz NOT NULL,
    station_id text NOT NULL,
    param      text NOT NULL,
    avg        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    count      bigint NOT NULL,
    PRIMARY KEY (station_id, param, bucket)
);
CREATE INDEX measurements_hourly_bucket ON measurements_hourly (bucket);

CREATE TABLE measurements_daily (
    bucket     timestamptz NOT NULL,
    station_id text NOT NULL,
    param      text NOT NULL,
    avg        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    count      bigint NOT NULL,
    PRIMARY KEY (station_id, param, bucket)
);
CREATE INDEX measurements_daily_bucket ON measurements_daily (bucket);

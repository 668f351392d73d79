-- Rivers, the evidence of cloud alerts, and forecasts. Plain PostgreSQL layout;
-- 0011_analytics.timescaledb.sql makes the same forecasts table a hypertable.

-- Where a station is on its river: the anomaly detection compares the stations of one
-- river in the order of river_km (the distance along it, growing downstream). Both or
-- neither.
ALTER TABLE stations
    ADD COLUMN river text CHECK (river IS NULL OR length(river) BETWEEN 1 AND 100),
    ADD COLUMN river_km double precision CHECK (river_km IS NULL OR river_km BETWEEN -100000 AND 100000),
    ADD CONSTRAINT stations_river_and_km CHECK ((river IS NULL) = (river_km IS NULL));
CREATE INDEX stations_river ON stations (river) WHERE river IS NOT NULL;

-- What a cloud rule saw when it raised or last changed an alert (the values, baselines and
-- scores of an anomaly, the forecast behind an early warning), as the API shows it: json,
-- not jsonb, so that the bytes stay those of the live event.
ALTER TABLE alerts ADD COLUMN evidence json;
-- A cloud rule recognises a condition it raised before by its key.
CREATE INDEX alerts_cloud_key ON alerts (station_id, key) WHERE origin = 'cloud';

-- Forecasts of each station's parameters and WQI, one row per forecast issued (or per
-- reason there was none), partitioned by the day of issue like measurements and dropped
-- past retention.forecasts. A round that computes the very same forecast as the newest
-- row (digest) adds nothing: within an hour the series a forecast starts from does not
-- change unless a late batch arrives.
CREATE TABLE forecasts (
    issued_at  timestamptz NOT NULL,
    station_id text NOT NULL,
    param      text NOT NULL,           -- a parameter or 'wqi'
    model      text NOT NULL,           -- '' when there is no forecast
    reason     text NOT NULL DEFAULT '', -- why there is none
    digest     text NOT NULL,           -- of model, reason, skill and points
    data       json,                    -- the forecast object of the API, NULL without one
    UNIQUE (station_id, param, issued_at)
) PARTITION BY RANGE (issued_at);
CREATE TABLE forecasts_default PARTITION OF forecasts DEFAULT;

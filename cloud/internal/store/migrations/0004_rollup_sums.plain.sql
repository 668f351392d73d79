-- Incremental rollups on plain PostgreSQL. A bucket keeps the sum of its usable readings
-- beside their count, minimum and maximum, all four of which add up: each batch adds the
-- aggregates of the rows it actually inserted (duplicates insert nothing), so a bucket is
-- never recomputed from raw rows. avg stays a column, always sum / count, so that queries
-- read the same columns as on TimescaleDB's continuous aggregates.
ALTER TABLE measurements_hourly ADD COLUMN sum double precision;
UPDATE measurements_hourly SET sum = avg * count;
ALTER TABLE measurements_hourly ALTER COLUMN sum SET NOT NULL;

ALTER TABLE measurements_daily ADD COLUMN sum double precision;
UPDATE measurements_daily SET sum = avg * count;
ALTER TABLE measurements_daily ALTER COLUMN sum SET NOT NULL;

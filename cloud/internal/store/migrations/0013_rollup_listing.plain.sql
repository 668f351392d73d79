-- Listings of buckets (a station's, newest first, then by parameter: the readings API with
-- bucket=1h or 1d) read an index in their own order and stop at their limit, instead of
-- sorting every bucket of the range first: a year of one station's hourly buckets is 70 000
-- rows. The primary key (station_id, param, bucket) serves the ingest's upserts, not this.
CREATE INDEX IF NOT EXISTS measurements_hourly_listing ON measurements_hourly (station_id, bucket DESC, param DESC);
CREATE INDEX IF NOT EXISTS measurements_daily_listing ON measurements_daily (station_id, bucket DESC, param DESC);

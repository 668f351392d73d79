-- A readings event holds a whole batch's readings (0012_ingest_ranges.sql): up to a few
-- hundred kB of JSON, which PostgreSQL's default compression (pglz) took a few ms per
-- batch to squeeze, on the ingest's path. lz4 does it several times faster, for a little
-- less compression. Rows already stored keep theirs. A server built without lz4 keeps
-- pglz: the ingest is slower there, not wrong. Same in both modes.
DO $$
BEGIN
    ALTER TABLE events ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'events.data keeps the default compression: %', SQLERRM;
END
$$;

-- Ingest at COPY speed. Same in both modes. Written to run again over itself, as 0005 does.

-- The readings seqs of a station that measurements may hold, as a few ranges (the ingest
-- keeps at most 32, closing the lowest holes). A batch's readings whose seqs lie outside
-- are new for certain and are copied straight into measurements; only those inside take
-- INSERT ... ON CONFLICT DO NOTHING (a replay, an overlap, or an agent that lost its
-- buffer and counts from 1 again: its readings differ in time and are stored). The set
-- may say more than was stored, never less. Databases from before start with every seq up
-- to the highest received.
ALTER TABLE station_ingest ADD COLUMN IF NOT EXISTS readings_committed int8multirange NOT NULL DEFAULT '{}';
UPDATE station_ingest SET readings_committed = int8multirange(int8range(0, readings_seq, '[]'))
WHERE readings_seq > 0 AND isempty(readings_committed);

-- One events row may stand for several events in a row: a batch's live readings are one
-- row of type 'readings' whose data is the array of their messages' data, in seq order.
-- Its span ids are id - span + 1 .. id, each reading keeping an id of its own for the
-- clients, so the ingest writes one row per batch instead of one per reading.
ALTER TABLE events ADD COLUMN IF NOT EXISTS span integer NOT NULL DEFAULT 1;
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_span_check;
ALTER TABLE events ADD CONSTRAINT events_span_check CHECK (span BETWEEN 1 AND 10000);
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_type_check;
ALTER TABLE events ADD CONSTRAINT events_type_check
    CHECK (type IN ('reading', 'readings', 'wqi', 'alert', 'prediction', 'status'));

-- A row of span n draws n ids: the one its default drew and the n - 1 after it. It runs
-- under the events lock (events_serialize, a statement trigger, fires first), so no one
-- else draws ids in between.
CREATE OR REPLACE FUNCTION events_span() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.id := NEW.id + NEW.span - 1;
    PERFORM setval('events_id_seq', NEW.id);
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS events_span ON events;
CREATE TRIGGER events_span BEFORE INSERT ON events
    FOR EACH ROW WHEN (NEW.span > 1) EXECUTE FUNCTION events_span();

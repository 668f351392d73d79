-- How a station proves who it is at ingest: its bearer token (the default), a client
-- certificate naming it (CN or DNS SAN) issued by the CA the cloud trusts, or both.
ALTER TABLE stations ADD COLUMN IF NOT EXISTS auth text NOT NULL DEFAULT 'token'
    CHECK (auth IN ('token', 'cert', 'both'));

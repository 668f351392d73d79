#!/bin/sh
# Prepares the database on its first start. The postgres image runs the executable files
# of /docker-entrypoint-initdb.d once, when the data volume is empty, as the superuser
# (POSTGRES_USER) on POSTGRES_DB, before the server takes connections from outside.
#
# It creates the deployment's two roles, with passwords read from the compose secrets
# (never on a command line):
#   purehealth      owns the database: `ph-cloud migrate` creates the schema with it and
#                   ph-cloud writes with it (PH_DB_PASSWORD_FILE);
#   grafana_reader  Grafana's: SELECT on every table and view purehealth creates, sessions
#                   read-only, statements cut at 30 s (PH_GRAFANA_DB_PASSWORD_FILE);
# and enables TimescaleDB, which takes a superuser, so that ph-cloud's role need not be one.
set -eu

for f in "${PH_DB_PASSWORD_FILE:?is not set}" "${PH_GRAFANA_DB_PASSWORD_FILE:?is not set}"; do
	if [ ! -s "$f" ]; then
		echo "$0: the secret $f is missing or empty" >&2
		exit 1
	fi
done

# psql reads the passwords itself (backquotes run `cat`, the trailing newline dropped).
psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 \
	--username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" <<'SQL'
\set owner_password `cat "$PH_DB_PASSWORD_FILE"`
\set reader_password `cat "$PH_GRAFANA_DB_PASSWORD_FILE"`

CREATE ROLE purehealth LOGIN PASSWORD :'owner_password';
SELECT format('ALTER DATABASE %I OWNER TO purehealth', current_database()) \gexec
-- Only where it is preloaded: enabling it otherwise ends the session, and this script.
SELECT 'CREATE EXTENSION IF NOT EXISTS timescaledb'
WHERE EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
  AND 'timescaledb' = ANY (string_to_array(translate(current_setting('shared_preload_libraries'), ' "', ''), ',')) \gexec

CREATE ROLE grafana_reader LOGIN PASSWORD :'reader_password';
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
ALTER ROLE grafana_reader SET statement_timeout = '30s';
GRANT USAGE ON SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE purehealth IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
SQL

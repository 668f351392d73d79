#!/bin/sh
# ph-cloud-entrypoint [serve | ph-cloud arguments...]
#
# The image's entrypoint. The database password comes from a file, a compose or
# Kubernetes secret named by PH_DB_PASSWORD_FILE, and is handed to ph-cloud in PGPASSWORD,
# which the PostgreSQL driver uses when database_url carries none (so the configuration
# holds no secret). Then:
#   serve (the default): apply the schema migrations, then run the service in this
#     process's place, so that it gets the container's signals;
#   anything else: ph-cloud with those arguments, such as
#     `docker compose run --rm -T ph-cloud station add MH-PUNE-001 --name Pune`.
set -eu

if [ -n "${PH_DB_PASSWORD_FILE:-}" ]; then
	if [ ! -r "$PH_DB_PASSWORD_FILE" ]; then
		echo "ph-cloud-entrypoint: cannot read the database password file $PH_DB_PASSWORD_FILE (PH_DB_PASSWORD_FILE)" >&2
		exit 1
	fi
	PGPASSWORD=$(cat "$PH_DB_PASSWORD_FILE")
	if [ -z "$PGPASSWORD" ]; then
		echo "ph-cloud-entrypoint: the database password file $PH_DB_PASSWORD_FILE is empty" >&2
		exit 1
	fi
	export PGPASSWORD
fi

if [ "$#" -eq 0 ] || [ "$1" = serve ]; then
	[ "$#" -eq 0 ] || shift
	# Idempotent, and serialised across replicas by an advisory lock.
	ph-cloud migrate
	exec ph-cloud serve "$@"
fi
exec ph-cloud "$@"

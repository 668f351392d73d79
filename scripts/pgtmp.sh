#!/usr/bin/env bash
# A throwaway PostgreSQL from the system's binaries, for the demo.
#   scripts/pgtmp.sh start DIR PORT   initdb DIR if needed, start the server, print its URL
#   scripts/pgtmp.sh stop DIR         stop it
# When run as root, the server runs as the "postgres" user (PostgreSQL refuses root).
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?data directory}
bindir=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bindir=$d; done
[ -n "$bindir" ] || bindir=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
[ -x "$bindir/initdb" ] || { echo "pgtmp: no PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
  port=${3:?port}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_pg "$bindir/initdb" -D "$dir" -U purehealth --auth=trust -E UTF8 >"$dir.initdb.log" 2>&1 \
      || { cat "$dir.initdb.log" >&2; exit 1; }
  fi
  # TimescaleDB, when installed, must be preloaded for the cloud to enable it.
  preload=""
  if ls "$bindir"/../lib/timescaledb*.so >/dev/null 2>&1; then
    preload="-c shared_preload_libraries=timescaledb"
    echo "pgtmp: TimescaleDB is installed: preloading it" >&2
  fi
  as_pg "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 30 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off $preload" start >/dev/null
  as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U purehealth purehealth 2>/dev/null || true
  echo "postgres://purehealth@127.0.0.1:$port/purehealth?sslmode=disable"
  ;;
stop)
  [ -f "$dir/postmaster.pid" ] && as_pg "$bindir/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
  ;;
*) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac

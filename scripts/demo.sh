#!/usr/bin/env bash
# The whole system on one machine: a throwaway PostgreSQL, ph-cloud with its dashboard, and
# four station agents fed by simulated probes, forwarding to the cloud. Prints the dashboard
# URL and what to look at, and keeps running until Ctrl-C (or for DEMO_SECONDS, for CI).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=bin
DEMO=tmp/demo
PGDIR=/tmp/purehealth-demo-pg
PGPORT=55432
CLOUD_CFG=configs/demo-cloud.yaml
# dir:station:mqtt-port; the first four are fed over MQTT, Kolhapur by its own probes.
STATIONS=(pune:MH-PUNE-001:18831 mundhwa:MH-PUNE-002:18835 nashik:MH-NASHIK-001:18832 sangli:MH-SANGLI-001:18833)
PROBED=kolhapur:MH-KOLHAPUR-001:18834

# ---- Lab, government and satellite data -------------------------------------------------
# No station has a BOD or fecal-coliform probe (a 5-day lab test and a lab culture): the
# stations' own indexes are partial. The cloud reads government records from `ph-sim ogd`
# (data.gov.in's shape) and satellite statistics from `ph-sim stats` (the Copernicus
# Statistical API's), as configs/demo-cloud.yaml says, labs send their sheets, and each
# station's fused WQI (every source, most trusted fresh value per parameter) is complete.
SOURCE_PORTS=(18091 18092)
CLOUD=http://127.0.0.1:18080
ALL_STATIONS=(MH-PUNE-001 MH-NASHIK-001 MH-SANGLI-001 MH-KOLHAPUR-001)

# sources_start runs the upstream simulators, before the cloud as real services would be.
sources_start() {
  echo "== Government open data and satellite statistics (ph-sim ogd, ph-sim stats)"
  # The resource is republished with a corrected value after a minute (a revision).
  "$BIN/ph-sim" ogd --listen 127.0.0.1:18091 --api-key demo-key --revise-after 60s >"$DEMO/ogd.log" 2>&1 &
  pids+=($!)
  "$BIN/ph-sim" stats --listen 127.0.0.1:18092 --client-id demo --client-secret demo-secret >"$DEMO/stats.log" 2>&1 &
  pids+=($!)
  wait_for "ph-sim ogd" curl -fsS "http://127.0.0.1:18091/resource/9b1a5f04-6c7e-4d1f-a2b3-5e8c0d7f4a21?api-key=demo-key&limit=1" \
    || { cat "$DEMO/ogd.log"; exit 1; }
  wait_for "ph-sim stats" curl -fsS -d grant_type=client_credentials -d client_id=demo -d client_secret=demo-secret \
    http://127.0.0.1:18092/oauth/token || { cat "$DEMO/stats.log"; exit 1; }
}

# fused_complete ID: the station's fused WQI exists and is not partial.
fused_complete() {
  local status fused
  status=$(curl -fsS "$CLOUD/v1/stations/$1/status") || return 1
  fused=${status#*\"fused_wqi\":}
  [[ $fused == "{"* && ${fused%%\"inputs\"*} == *'"partial":false'* ]]
}

# sources_watch notes, in the background, how long after ph-cloud started every station's
# fused WQI was complete.
sources_watch() {
  local start=$1
  (
    while :; do
      done_all=1
      for id in "${ALL_STATIONS[@]}"; do fused_complete "$id" || { done_all=0; break; }; done
      if [ "$done_all" = 1 ]; then
        echo "$(( ($(date +%s%N) - start) / 1000000 ))" >"$DEMO/fused-complete-ms"
        exit 0
      fi
      sleep 0.2
    done
  ) &
  watch_pid=$!
}

# sources_samples brings the labs' results: a sheet imported with the CLI, one posted to
# POST /v1/samples with a lab token, and one entered at the Pune station itself.
sources_samples() {
  echo
  echo "== Lab samples (BOD and fecal coliform: lab tests, not probes)"
  local day
  day=$(date -u -d '2 days ago' +%Y-%m-%d)
  cat >"$DEMO/lab-sheet.csv" <<CSV
station_id,param,value,unit,sampled_at,sample_id,lab,method
MH-NASHIK-001,bod,4.2,mg/L,${day}T04:00:00Z,NSK-${day}-1,MPCB Nashik,APHA 5210 B
MH-NASHIK-001,fc,3300,MPN/100mL,${day}T04:00:00Z,NSK-${day}-2,MPCB Nashik,APHA 9221 E
MH-SANGLI-001,bod,3.1,mg/L,${day}T04:30:00Z,SNG-${day}-1,MPCB Sangli,APHA 5210 B
MH-SANGLI-001,fc,1700,MPN/100mL,${day}T04:30:00Z,SNG-${day}-2,MPCB Sangli,APHA 9221 E
CSV
  echo "\$ ph-cloud samples import $DEMO/lab-sheet.csv"
  "$BIN/ph-cloud" samples import "$DEMO/lab-sheet.csv" --by "MPCB lab sheet" --config "$CLOUD_CFG"
  "$BIN/ph-cloud" token add lab-kolhapur --role lab --config "$CLOUD_CFG" >"$DEMO/token-lab" 2>/dev/null
  echo "\$ curl -X POST $CLOUD/v1/samples (a lab token, JSON)"
  curl -fsS -X POST "$CLOUD/v1/samples" -H "Authorization: Bearer $(cat "$DEMO/token-lab")" \
    -H 'Content-Type: application/json' --data-binary @- <<JSON
{"samples": [
  {"station_id": "MH-KOLHAPUR-001", "param": "bod", "value": 5.6, "unit": "mg/L", "sampled_at": "${day}T05:00:00Z", "sample_id": "KOP-${day}-1", "lab": "MPCB Kolhapur"},
  {"station_id": "MH-KOLHAPUR-001", "param": "fc", "value": 5400, "unit": "MPN/100mL", "sampled_at": "${day}T05:00:00Z", "sample_id": "KOP-${day}-2", "lab": "MPCB Kolhapur"}
]}
JSON
  echo "\$ ph-agent sample add bod 8.5 ... (at the Pune station)"
  "$BIN/ph-agent" sample add bod 8.5 --unit mg/L --at "${day}T09:30+05:30" --id "PUN-${day}-1" --lab "MPCB Pune" \
    --method "APHA 5210 B" --config configs/demo-agent-pune.yaml
  "$BIN/ph-agent" sample add fc 24000 --unit MPN/100mL --at "${day}T09:30+05:30" --id "PUN-${day}-2" --lab "MPCB Pune" \
    --method "APHA 9221 E" --config configs/demo-agent-pune.yaml
}

# sources_report shows each station's own index and its fused one with the source of
# every input, and how long the fused indexes took to be complete.
sources_report() { # sources_report WHAT
  echo
  echo "== In the cloud, from $1: each station's own WQI and the fused one"
  local id status own fused inputs
  for id in "${ALL_STATIONS[@]}"; do
    status=$(curl -fsS "$CLOUD/v1/stations/$id/status")
    own=${status#*\"wqi\":}
    own=${own%%\"fused_wqi\"*}
    fused=${status#*\"fused_wqi\":}
    inputs=$(grep -o '"[a-z]*":{"value":[^,]*,"unit":"[^"]*","source":"[a-z]*"' <<<"${fused#*\"inputs\":}" |
      sed 's/"\([a-z]*\)":{"value":\([^,]*\),"unit":"[^"]*","source":"\([a-z]*\)"/\1=\2 (\3)/' | tr '\n' ' ')
    printf '%-16s own: %-8s fused: %s %s  %s\n' "$id" \
      "$(case $own in null*) echo none ;; *'"partial":true'*) echo partial ;; *) echo complete ;; esac)" \
      "$(sed -n 's/^{"time":"[^"]*","source":"fused","wqi":\([0-9.]*\),"class":"\([^"]*\)".*/\2 \1/p' <<<"$fused")" \
      "$(fused_complete "$id" && echo complete || echo partial)" "$inputs"
  done
  if [ -s "$DEMO/fused-complete-ms" ] && [ -z "${timing_shown:-}" ]; then
    echo "Every station's fused WQI was complete $(cat "$DEMO/fused-complete-ms") ms after ph-cloud started;"
    echo "the upstream sources are in $CLOUD/stats (\"upstream\") and $CLOUD/metrics (ph_upstream_*)."
    timing_shown=1
  fi
}

# sources_check fails unless every station has a complete fused WQI and both upstream
# sources have succeeded.
sources_check() {
  local id stats head
  for id in "${ALL_STATIONS[@]}"; do
    fused_complete "$id" || { echo "demo: no complete fused WQI at $id" >&2; exit 1; }
  done
  stats=$(curl -fsS "$CLOUD/stats")
  for src in cpcb-nwmp copernicus; do
    head=${stats#*\"source\": \"$src\",}
    [[ $head != "$stats" && ${head%%\"rounds\"*} == *'"last_success"'* ]] ||
      { echo "demo: upstream $src never succeeded (see $CLOUD/stats)" >&2; exit 1; }
  done
}
# ------------------------------------------------------------------------------------------

pids=()
watch_pid=
cleanup() {
  [ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/pgtmp.sh stop "$PGDIR" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/pgtmp.sh stop "$PGDIR" 2>/dev/null || true
rm -rf "$DEMO" "$PGDIR" && mkdir -p "$DEMO"

# Every TCP port the demo listens on must be free: a port answered by something else
# would make the demo talk to it instead of its own process.
for port in "$PGPORT" 18080 18831 18832 18833 18834 18835 18090 19464 "${SOURCE_PORTS[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port on 127.0.0.1 is in use by another program; stop it, or change the port in configs/demo-*.yaml and scripts/demo.sh" >&2
    exit 1
  fi
done

# ours NAME PID LOG: fail, showing the log, unless the demo's own process PID still runs.
ours() {
  if ! kill -0 "$2" 2>/dev/null; then
    echo "demo: $1 exited; its log ($3):" >&2
    tail -n 20 "$3" >&2
    exit 1
  fi
}

# --- Analytics: two weeks of history, rivers, forecasts, anomalies -------------------------
# Each MQTT-fed station's simulated sonde first publishes the last DEMO_BACKFILL (two weeks)
# of what it would have measured to its agent's broker, with the past timestamps (ph-sim
# station --backfill): the agent validates and buffers it, its uplink sends the backlog and
# the cloud announces it with backfill notices, as after a real outage. Then it reports
# live. The scenarios' two discharges on the Mula-Mutha (configs/demo-pune.scenario.yaml)
# are timed for a two-week history. The cloud forecasts and looks for anomalies every 30 s
# (configs/demo-cloud.yaml).
DEMO_BACKFILL=${DEMO_BACKFILL:-336h}
RIVERS=(MH-PUNE-001:Mula-Mutha:0.5 MH-PUNE-002:Mula-Mutha:9.5) # station:river:km (downstream)

river_args() { # ID: the --river/--river-km flags of a station on a river, one per line
  local r rid river km
  for r in "${RIVERS[@]}"; do
    IFS=: read -r rid river km <<<"$r"
    if [ "$rid" = "$1" ]; then printf '%s\n' --river "$river" --river-km "$km"; fi
  done
}

HISTORY_START=""
start_station_sim() { # DIR: the station's simulated sonde, its history first
  HISTORY_START=${HISTORY_START:-$SECONDS}
  "$BIN/ph-sim" station --scenario "configs/demo-$1.scenario.yaml" --backfill "$DEMO_BACKFILL" \
    --backfill-step 5m >"$DEMO/sim-$1.log" 2>&1 &
  pids+=($!)
}

# await_history waits until every sonde has delivered its history to its agent and every
# agent has forwarded its backlog to the cloud, then until the cloud has forecast it.
await_history() {
  local start=$HISTORY_START s dir id n backlog
  for s in "${STATIONS[@]}"; do
    IFS=: read -r dir id _ <<<"$s"
    for n in $(seq 600); do
      grep -q '^backfilled \|^ph-sim: ' "$DEMO/sim-$dir.log" && break
      sleep 0.2
    done
    grep '^backfilled ' "$DEMO/sim-$dir.log" >/dev/null || { echo "demo: no history for $id; its log:" >&2; tail -n 20 "$DEMO/sim-$dir.log" >&2; exit 1; }
  done
  local published=$((SECONDS - start))
  for s in "${STATIONS[@]}"; do
    IFS=: read -r dir id _ <<<"$s"
    for n in $(seq 900); do
      backlog=$("$BIN/ph-agent" queue --config "configs/demo-agent-$dir.yaml" --json | sed -n 's/.*"backlog": *\([0-9]*\).*/\1/p' | head -n 1)
      # Live readings keep coming: a backlog of a few seconds' worth is drained.
      [ -n "$backlog" ] && [ "$backlog" -lt 200 ] && break
      sleep 0.2
    done
  done
  echo "== two weeks of history: published to the agents in ${published}s, in the cloud after $((SECONDS - start))s"
  for s in "${STATIONS[@]}"; do
    IFS=: read -r dir _ _ <<<"$s"
    sed -n 's/^backfilled /  '"$dir"': backfilled /p' "$DEMO/sim-$dir.log"
  done
  local forecast=""
  for n in $(seq 300); do
    forecast=$(curl -fsS "http://127.0.0.1:18080/v1/stations/MH-PUNE-001/forecast?param=do")
    grep -q '"model":"none"' <<<"$forecast" || break
    sleep 0.5
  done
  if grep -q '"model":"none"' <<<"$forecast"; then
    echo "demo: no forecast after the history arrived: ${forecast:0:300}" >&2; exit 1
  fi
  echo "== forecasts ready $((SECONDS - start))s after the history started; DO at Sangam:"
  echo "  ${forecast:0:300}..."
}

# show_anomalies prints the cloud's own alerts: anomalies, then a few early warnings.
show_anomalies() {
  local alerts
  alerts=$(curl -fsS 'http://127.0.0.1:18080/v1/alerts?limit=500' | tr '{' '\n')
  sed -n 's/.*"station":"\([^"]*\)","rule":"\(pollution_event\|suspect_sensor\|local_event\)".*"state":"\([a-z]*\)".*"message":"\([^"]*\)".*"origin":"cloud".*/  \2 at \1 (\3): \4/p' <<<"$alerts"
  echo "  $(grep -c '"rule":"forecast_breach".*"state":"active"' <<<"$alerts") early warnings (forecast_breach) active, such as:"
  sed -n 's/.*"station":"\([^"]*\)","rule":"forecast_breach".*"state":"active".*"message":"\([^"]*\)".*/  forecast_breach at \1: \2/p' <<<"$alerts" | head -n 3
}
# -----------------------------------------------------------------------------------------

wait_for() { # wait_for DESCRIPTION COMMAND...
  local what=$1; shift
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "demo: $what did not come up" >&2; return 1
}

echo "== PostgreSQL (throwaway, $PGDIR)"
scripts/pgtmp.sh start "$PGDIR" "$PGPORT"
"$BIN/ph-cloud" migrate --config "$CLOUD_CFG"

for s in "${STATIONS[@]}" "$PROBED"; do
  IFS=: read -r dir id _ <<<"$s"
  name=$(sed -n 's/^  name: "\(.*\)"/\1/p' "configs/demo-agent-$dir.yaml")
  class=$(sed -n 's/^  class: \([A-E]\).*/\1/p' "configs/demo-agent-$dir.yaml")
  lat=$(sed -n 's/^  lat: //p' "configs/demo-agent-$dir.yaml")
  lon=$(sed -n 's/^  lon: //p' "configs/demo-agent-$dir.yaml")
  mapfile -t rargs < <(river_args "$id")
  "$BIN/ph-cloud" station add "$id" --name "$name" --class "$class" --lat "$lat" --lon "$lon" "${rargs[@]}" \
    --config "$CLOUD_CFG" >"$DEMO/token-$id"
done

sources_start
cloud_start=$(date +%s%N)
"$BIN/ph-cloud" serve --config "$CLOUD_CFG" >"$DEMO/cloud.log" 2>&1 &
cloud_pid=$!
pids+=($cloud_pid)

wait_for "ph-cloud" curl -fsS http://127.0.0.1:18080/health || { cat "$DEMO/cloud.log"; exit 1; }
ours ph-cloud "$cloud_pid" "$DEMO/cloud.log"
sources_watch "$cloud_start"

for s in "${STATIONS[@]}"; do
  IFS=: read -r dir id port <<<"$s"
  cfg="configs/demo-agent-$dir.yaml"
  "$BIN/ph-agent" run --config "$cfg" >"$DEMO/agent-$dir.log" 2>&1 &
  agent_pid=$!
  pids+=($agent_pid)
  wait_for "ph-agent $id" "$BIN/ph-agent" status --config "$cfg" || { cat "$DEMO/agent-$dir.log"; exit 1; }
  ours "ph-agent $id" "$agent_pid" "$DEMO/agent-$dir.log"
  # Six simulated probes per station, one reading every 2 s each, after their history: what
  # probes measure. BOD and fecal coliform are lab tests: they come as lab samples and
  # government records.
  start_station_sim "$dir"
done
# Kolhapur: serial (EZO on pseudo-terminals), CoAP and HTTP probes from one simulated station.
IFS=: read -r dir id _ <<<"$PROBED"
"$BIN/ph-sim" station --scenario configs/demo-station.scenario.yaml >"$DEMO/sim-$dir.log" 2>&1 &
pids+=($!)
wait_for "ph-sim station" test -e "$DEMO/tty-do" || { cat "$DEMO/sim-$dir.log"; exit 1; }
"$BIN/ph-agent" run --config "configs/demo-agent-$dir.yaml" >"$DEMO/agent-$dir.log" 2>&1 &
agent_pid=$!
pids+=($agent_pid)
wait_for "ph-agent $id" "$BIN/ph-agent" status --config "configs/demo-agent-$dir.yaml" || { cat "$DEMO/agent-$dir.log"; exit 1; }
ours "ph-agent $id" "$agent_pid" "$DEMO/agent-$dir.log"
sleep 8
await_history

echo
echo "== ph-agent sensors (Kolhapur: serial, CoAP and HTTP probes)"
"$BIN/ph-agent" sensors --config configs/demo-agent-kolhapur.yaml
echo
echo "== ph-agent status (Pune)"
"$BIN/ph-agent" status --config configs/demo-agent-pune.yaml
echo
echo "== ph-agent wqi (Pune)"
"$BIN/ph-agent" wqi --config configs/demo-agent-pune.yaml
sources_report "probes and government records"
sources_samples
echo
echo "== ph-agent wqi (Pune, with its lab sample)"
"$BIN/ph-agent" wqi --config configs/demo-agent-pune.yaml
sleep 3
sources_report "probes, government records and the labs' samples"
echo
echo "== in the cloud ($(curl -fsS http://127.0.0.1:18080/health | sed -n 's/.*"storage":"\([a-z]*\)".*/\1/p') storage)"
stations=$(curl -fsS http://127.0.0.1:18080/v1/stations)
echo "${stations:0:600}"

# --- The fleet: each agent's health record (sent at start, then every minute), the
# cloud's view of them, and the Pune agent's own Prometheus metrics.
echo
echo "== the cloud's early warnings and anomalies"
show_anomalies
echo
echo "== ph-cloud fleet"
"$BIN/ph-cloud" fleet --config "$CLOUD_CFG"
echo
echo "== the Pune agent's /metrics (a few of them)"
metrics=$(curl -fsS http://127.0.0.1:19464/metrics)
grep -E '^ph_agent_(queue_length|broker_clients|uplink_state\{state="idle"\}|store_commit_seconds_count)' <<<"$metrics" || true
# --- end of the fleet

echo
echo "Dashboard:  http://127.0.0.1:18080/   (live over WebSocket; the Fleet page: http://127.0.0.1:18080/#/fleet)"
echo "Cloud API:  http://127.0.0.1:18080/v1/stations"
echo "Logs:       $DEMO/"
echo "Try:        $BIN/ph-agent probe test ph-1 --config configs/demo-agent-kolhapur.yaml"
echo "            $BIN/ph-agent probe calibrate ph-1 mid 7.00 --config configs/demo-agent-kolhapur.yaml"
echo "            $BIN/ph-agent queue --config configs/demo-agent-nashik.yaml"
echo "            edit configs/demo-agent-pune.yaml (class, alerts, probes), then: kill -HUP <its pid>; $BIN/ph-agent status --config configs/demo-agent-pune.yaml"
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
  for s in "${STATIONS[@]}" "$PROBED"; do
    IFS=: read -r dir _ _ <<<"$s"
    "$BIN/ph-agent" status --config "configs/demo-agent-$dir.yaml" --json >/dev/null
  done
  curl -fsS http://127.0.0.1:18080/health >/dev/null
  sources_check
  fleet=$(curl -fsS http://127.0.0.1:18080/v1/fleet)
  grep -q '"version"' <<<"$fleet"
  curl -fsS http://127.0.0.1:19464/metrics >/dev/null
  # Read whole before matching: grep -q stops early, and curl would fail writing the rest.
  page=$(curl -fsS http://127.0.0.1:18080/)
  grep -q "Pure Health" <<<"$page"
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "demo: a process of the demo (pid $pid) exited; logs in $DEMO/" >&2; exit 1; }
  done
  echo "demo ran for ${DEMO_SECONDS}s more; all parts answered; stopping"
else
  echo "Press Ctrl-C to stop."
  wait "${pids[0]}"
fi

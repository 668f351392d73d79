#!/bin/sh
# Entrypoint of the ph-agent container on a balena device.
#
# 1. Writes the uplink token from PH_UPLINK_TOKEN to /data/uplink.token at every start, so a
#    token rotated in the dashboard takes effect when balena restarts the service.
# 2. On the first start (no config file yet) renders agent.yaml.template from the device
#    variables and installs it only if `ph-agent config check` accepts it; otherwise it
#    prints what is wrong and exits, and the next start tries again.
# 3. Replaces itself with `ph-agent run`, so the daemon receives SIGTERM directly and can
#    finish its in-flight work before balena stops the container.
set -eu

# The image's paths. PH_TEMPLATE, PH_TOKEN_FILE and PH_RETRY_DELAY exist for the test that
# runs this script outside the image; a device never sets them.
config="${PH_CONFIG:-/data/agent.yaml}"
template="${PH_TEMPLATE:-/usr/share/ph-agent/agent.yaml.template}"
token_file="${PH_TOKEN_FILE:-/data/uplink.token}"

fail() {
	echo "ph-agent entrypoint: $*" >&2
	# Balena restarts the service at once; wait so a missing variable does not spin.
	sleep "${PH_RETRY_DELAY:-30}"
	exit 1
}

if [ -n "${PH_UPLINK_TOKEN:-}" ]; then
	(umask 077 && printf '%s\n' "$PH_UPLINK_TOKEN" >"$token_file.tmp")
	mv "$token_file.tmp" "$token_file"
fi

# quote VALUE: VALUE as the inside of a single-quoted YAML scalar, escaped for sed's
# replacement text with | as the delimiter.
quote() {
	printf '%s' "$1" | tr -d '\n\r' | sed -e "s/'/''/g" -e 's/[\\&|]/\\&/g'
}

if [ ! -e "$config" ]; then
	missing=""
	for name in PH_STATION_ID PH_STATION_CLASS PH_MQTT_PASSWORD_HASH; do
		eval "value=\${$name:-}"
		[ -n "$value" ] || missing="$missing $name"
	done
	[ -z "$missing" ] || fail "set the device variables$missing (see deploy/balena/README.md)"
	if [ -n "${PH_UPLINK_URL:-}" ] && [ ! -s "$token_file" ]; then
		fail "PH_UPLINK_URL is set but PH_UPLINK_TOKEN is not"
	fi

	mkdir -p "$(dirname "$config")"
	rendered="$config.new"
	sed \
		-e "s|@PH_STATION_ID@|$(quote "$PH_STATION_ID")|g" \
		-e "s|@PH_STATION_NAME@|$(quote "${PH_STATION_NAME:-$PH_STATION_ID}")|g" \
		-e "s|@PH_TIMEZONE@|$(quote "${PH_TIMEZONE:-UTC}")|g" \
		-e "s|@PH_STATION_CLASS@|$(quote "$PH_STATION_CLASS")|g" \
		-e "s|@PH_ELEVATION_M@|$(quote "${PH_ELEVATION_M:-0}")|g" \
		-e "s|@PH_MQTT_USER@|$(quote "${PH_MQTT_USER:-probes}")|g" \
		-e "s|@PH_MQTT_PASSWORD_HASH@|$(quote "$PH_MQTT_PASSWORD_HASH")|g" \
		-e "s|@PH_UPLINK_URL@|$(quote "${PH_UPLINK_URL:-}")|g" \
		"$template" >"$rendered"
	if ! ph-agent config check "$rendered"; then
		rm -f "$rendered"
		fail "the configuration rendered from the device variables is invalid (above)"
	fi
	mv "$rendered" "$config"
	echo "ph-agent entrypoint: wrote $config from the device variables"
fi

exec ph-agent run --config "$config"

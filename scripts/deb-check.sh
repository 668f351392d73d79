#!/usr/bin/env bash
# deb-check.sh DIR VERSION — checks the ph-agent packages `make deb` wrote to DIR, then
# installs the amd64 one on this machine and uses it the way an operator does.
#
# 1. Every package: control fields, file list and modes, the conffile, the binary's
#    architecture, and the binary itself run (ARM ones under qemu-user-static).
# 2. dpkg -i: the ph-agent account (in dialout), the configuration's permissions, the
#    unit enabled; systemd-analyze verify on the installed unit (no warnings allowed).
# 3. The installed binary against the installed config (`config check`, as root and as the
#    service account); then the operator's edit (station id, MQTT password), a run as the
#    ph-agent user (systemd's own when it is running, else as the unit would: same user,
#    state directory, umask), QoS 1 publishes read back with `ph-agent readings`, SIGTERM.
# 4. An upgrade (the same agent repackaged as revision 2): the edited conffile stays, the
#    buffer and its readings stay.
# 5. dpkg --purge: files and permission overrides go, the buffer stays (by design).
#
# It installs software and creates a system account: run it on a throwaway machine (CI).
# It refuses to run where ph-agent is already installed, and undoes what it did on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -eq 2 ] || { echo "usage: $0 DIR VERSION" >&2; exit 2; }
dir=$1
version=$2
export PATH=/usr/local/go/bin:$HOME/go/bin:$PATH

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
started=$(date +%s)
step() { echo "== deb-check [$(($(date +%s) - started))s] $*"; }
fail() { echo "deb-check: FAIL: $*" >&2; exit 1; }

tmp=$(mktemp -d)
agent_pid=""
installed_by_us=no
created_user=no
cleanup() {
	status=$?
	if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
		$sudo kill -KILL "$agent_pid" || true
	fi
	if [ "$installed_by_us" = yes ] && dpkg-query -W ph-agent >/dev/null 2>&1; then
		$sudo dpkg --purge ph-agent >/dev/null || true
	fi
	if [ "$created_user" = yes ]; then
		$sudo deluser --quiet --system ph-agent >/dev/null 2>&1 || true
		$sudo delgroup --quiet --system ph-agent >/dev/null 2>&1 || true
		$sudo rm -rf /var/lib/ph-agent
	fi
	rm -rf "$tmp"
	exit $status
}
trap cleanup EXIT

if dpkg-query -W -f='${Status}' ph-agent 2>/dev/null | grep -q installed; then
	fail "ph-agent is installed on this machine; deb-check installs and purges it (run it on a throwaway machine)"
fi

# expect_eq WHAT GOT WANT
expect_eq() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; }

# ---------------------------------------------------------------------------------------
step "package contents and metadata"
declare -A machine=([amd64]="3e 00" [arm64]="b7 00" [armhf]="28 00")
declare -A runner=([amd64]="" [arm64]="qemu-aarch64-static" [armhf]="qemu-arm-static -cpu arm1176")
for arch in amd64 arm64 armhf; do
	debs=("$dir"/ph-agent_*_"$arch".deb)
	[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "want exactly one ph-agent_*_$arch.deb in $dir, found: ${debs[*]}"
	deb=${debs[0]}
	dpkg-deb -I "$deb" >/dev/null || fail "$deb is not a Debian package"
	expect_eq "$arch Package" "$(dpkg-deb -f "$deb" Package)" ph-agent
	expect_eq "$arch Architecture" "$(dpkg-deb -f "$deb" Architecture)" "$arch"
	expect_eq "$arch Depends" "$(dpkg-deb -f "$deb" Depends)" adduser
	debversion=$(dpkg-deb -f "$deb" Version)
	expect_eq "$arch file name" "$(basename "$deb")" "ph-agent_${debversion}_$arch.deb"

	dpkg-deb -c "$deb" >"$tmp/list"
	for want in "-rwxr-xr-x root/root ./usr/bin/ph-agent" \
		"-rw-r----- root/root ./etc/ph-agent/agent.yaml" \
		"-rw-r--r-- root/root ./usr/lib/systemd/system/ph-agent.service"; do
		read -r mode owner path <<<"$want"
		awk -v m="$mode" -v o="$owner" -v p="$path" '$1 == m && $2 == o && $6 == p { found = 1 } END { exit !found }' \
			"$tmp/list" || fail "$arch: no '$path' with mode $mode and owner $owner in: $(cat "$tmp/list")"
	done
	expect_eq "$arch conffiles" "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)" /etc/ph-agent/agent.yaml
	for script in postinst prerm postrm; do
		dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - "./$script" | sh -n || fail "$arch $script: syntax"
	done

	dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/bin/ph-agent >"$tmp/ph-agent-$arch"
	chmod +x "$tmp/ph-agent-$arch"
	expect_eq "$arch ELF machine" "$(od -An -tx1 -j18 -N2 "$tmp/ph-agent-$arch" | xargs)" "${machine[$arch]}"
	# shellcheck disable=SC2086 # runner is a command with its options
	got=$(${runner[$arch]} "$tmp/ph-agent-$arch" --version)
	expect_eq "$arch ph-agent --version" "$got" "ph-agent $version"
	echo "   $arch: $(basename "$deb"), $(du -k "$deb" | cut -f1) KiB, runs: $got"
done

# ---------------------------------------------------------------------------------------
step "dpkg -i (first installation)"
amd64=("$dir"/ph-agent_*_amd64.deb)
getent passwd ph-agent >/dev/null || created_user=yes
installed_by_us=yes
$sudo dpkg -i "${amd64[0]}"
getent passwd ph-agent >/dev/null || fail "no ph-agent account"
expect_eq "ph-agent's shell" "$(getent passwd ph-agent | cut -d: -f7)" /usr/sbin/nologin
id -nG ph-agent | tr ' ' '\n' | grep -qx dialout || fail "ph-agent is not in dialout: $(id -nG ph-agent)"
expect_eq "/etc/ph-agent" "$(stat -c '%U:%G %a' /etc/ph-agent)" "root:ph-agent 750"
expect_eq "/etc/ph-agent/agent.yaml" "$(stat -c '%U:%G %a' /etc/ph-agent/agent.yaml)" "root:ph-agent 640"
expect_eq "installed ph-agent --version" "$(/usr/bin/ph-agent --version)" "ph-agent $version"
if command -v systemctl >/dev/null; then
	expect_eq "unit enabled" "$(systemctl is-enabled ph-agent.service 2>&1 || true)" enabled
fi

step "systemd-analyze verify (installed unit)"
out=$(cd "$tmp" && systemd-analyze verify /usr/lib/systemd/system/ph-agent.service 2>&1) ||
	fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"

step "the installed binary against the installed config"
$sudo /usr/bin/ph-agent config check /etc/ph-agent/agent.yaml
$sudo runuser -u ph-agent -- /usr/bin/ph-agent config check /etc/ph-agent/agent.yaml ||
	fail "the service account cannot load its configuration"

# ---------------------------------------------------------------------------------------
# The operator's edit: who the station is, a password for the probes, a port. The
# loopback port keeps this machine's own services (a Mosquitto on 1883) out of the way.
port=${PH_DEB_MQTT_PORT:-18883}
station=CI-DEB-001
hash=$(printf '%s' ci-probe-secret | /usr/bin/ph-agent passwd)
# The cloud is away (a closed port): the station keeps everything and retries.
cloud="http://127.0.0.1:9"
$sudo sed -i \
	-e "s|^  id: CHANGE-ME |  id: $station |" \
	-e "s|listen: \"127.0.0.1:1883\"|listen: \"127.0.0.1:$port\"|" \
	-e "s|password_hash: \"[^\"]*\"|password_hash: \"$hash\"|" \
	-e "s|^  url: \"\" |  url: \"$cloud\" |" \
	/etc/ph-agent/agent.yaml
printf '%s\n' 'ci-station-token' | $sudo install -m 0640 -o root -g ph-agent /dev/stdin /etc/ph-agent/uplink.token
$sudo setpriv --reuid=ph-agent --regid=ph-agent --init-groups -- cat /etc/ph-agent/uplink.token >/dev/null ||
	fail "the service account cannot read the token file"
$sudo /usr/bin/ph-agent config check /etc/ph-agent/agent.yaml | grep -q "station $station" ||
	fail "the edited configuration does not name $station"
grep -q "url: \"$cloud\"" /etc/ph-agent/agent.yaml || fail "the uplink url was not set"

systemd_running=no
[ -d /run/systemd/system ] && systemd_running=yes

start_agent() {
	if [ "$systemd_running" = yes ]; then
		$sudo systemctl restart ph-agent.service # Type=notify: returns once READY=1 came
		expect_eq "unit state" "$(systemctl is-active ph-agent.service)" active
	else
		# What the unit does, without systemd: the state directory, the user and its
		# groups, no new privileges, the umask. setpriv execs, so the pid is the agent's.
		$sudo install -d -o ph-agent -g ph-agent -m 0750 /var/lib/ph-agent
		$sudo setpriv --reuid=ph-agent --regid=ph-agent --init-groups --no-new-privs -- \
			sh -c 'umask 0027; cd /var/lib/ph-agent && exec /usr/bin/ph-agent run --config /etc/ph-agent/agent.yaml' \
			>>"$tmp/agent.log" 2>&1 &
		agent_pid=$!
	fi
	for _ in $(seq 1 150); do
		if $sudo /usr/bin/ph-agent status --config /etc/ph-agent/agent.yaml >/dev/null 2>&1; then
			return 0
		fi
		if [ -n "$agent_pid" ] && ! kill -0 "$agent_pid" 2>/dev/null; then
			fail "the agent exited: $(tail -20 "$tmp/agent.log")"
		fi
		sleep 0.2
	done
	fail "the agent's admin socket did not answer within 30 s: $(tail -20 "$tmp/agent.log" 2>/dev/null)"
}

stop_agent() {
	if [ "$systemd_running" = yes ]; then
		$sudo systemctl stop ph-agent.service
		expect_eq "unit result" "$(systemctl show -p Result --value ph-agent.service)" success
	else
		$sudo kill -TERM "$agent_pid"
		rc=0
		wait "$agent_pid" || rc=$?
		agent_pid=""
		expect_eq "exit status on SIGTERM" "$rc" 0
	fi
}

count_readings() {
	$sudo /usr/bin/ph-agent readings --json --limit 1000 --config /etc/ph-agent/agent.yaml | grep -c '"seq"' || true
}

step "run as the ph-agent user, QoS 1 publishes, SIGTERM"
start_agent
for v in 7.11 7.12 7.13 7.14 7.15; do
	mosquitto_pub -h 127.0.0.1 -p "$port" -u probes -P ci-probe-secret -q 1 -i ci-deb-check \
		-t "purehealth/$station/ph" -m "$v" || fail "publish $v was not acknowledged"
done
expect_eq "readings after the publishes" "$(count_readings)" 5
$sudo /usr/bin/ph-agent status --config /etc/ph-agent/agent.yaml
$sudo /usr/bin/ph-agent queue --json --config /etc/ph-agent/agent.yaml | grep -q '"backlog": 5' ||
	fail "the five readings should wait for the cloud: $($sudo /usr/bin/ph-agent queue --json --config /etc/ph-agent/agent.yaml)"
stop_agent
expect_eq "buffer owner" "$($sudo stat -c '%U:%G %a' /var/lib/ph-agent/agent.db)" "ph-agent:ph-agent 600"

# ---------------------------------------------------------------------------------------
step "upgrade: the same agent repackaged as revision 2"
go run ./deploy/deb -version "$version" -revision 2 -arch amd64 -bin bin/cross -out "$tmp/rev2" >/dev/null
rev2=("$tmp"/rev2/ph-agent_*-2_amd64.deb)
[ "$systemd_running" = yes ] && $sudo systemctl start ph-agent.service
$sudo dpkg -i "${rev2[0]}"
expect_eq "installed version" "$(dpkg-query -W -f='${Version}' ph-agent)" "$(dpkg-deb -f "${rev2[0]}" Version)"
grep -q "id: $station " /etc/ph-agent/agent.yaml || fail "the upgrade replaced the edited configuration"
expect_eq "/etc/ph-agent/agent.yaml after the upgrade" "$(stat -c '%U:%G %a' /etc/ph-agent/agent.yaml)" "root:ph-agent 640"
if [ "$systemd_running" = yes ]; then
	expect_eq "unit state after the upgrade (try-restart)" "$(systemctl is-active ph-agent.service)" active
	$sudo systemctl stop ph-agent.service
fi
start_agent
expect_eq "readings after the upgrade" "$(count_readings)" 5
stop_agent

# ---------------------------------------------------------------------------------------
step "dpkg --purge"
$sudo dpkg --purge ph-agent
[ ! -e /usr/bin/ph-agent ] || fail "/usr/bin/ph-agent left behind"
[ ! -e /usr/lib/systemd/system/ph-agent.service ] || fail "the unit left behind"
[ ! -e /etc/ph-agent ] || fail "/etc/ph-agent left behind: $(ls -la /etc/ph-agent)"
if dpkg-statoverride --list /etc/ph-agent/agent.yaml >/dev/null; then fail "a permission override left behind"; fi
$sudo test -f /var/lib/ph-agent/agent.db || fail "purge removed the buffer (it keeps data the cloud may lack)"

step "ok"

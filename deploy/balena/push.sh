#!/bin/sh
# push.sh FLEET [balena push flags...]
#
# Builds and releases ph-agent to a balena fleet. `balena push` uploads one directory and
# wants docker-compose.yml at its top, with every build context inside it, while the agent's
# source lives at the repository root. So this stages the committed Go module (go.mod, go.sum,
# agent/, shared/) next to the files of this directory and pushes that. Uncommitted changes
# are not part of a release.
set -eu

[ $# -ge 1 ] || { echo "usage: $0 FLEET [balena push flags...]" >&2; exit 2; }
fleet=$1
shift

here=$(cd "$(dirname "$0")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel)
version=$(git -C "$root" describe --always)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT INT TERM

git -C "$root" archive --format=tar HEAD go.mod go.sum agent shared | tar -x -C "$stage"
cp "$here/balena.yml" "$here/docker-compose.yml" "$here/Dockerfile.template" \
	"$here/agent.yaml.template" "$here/entrypoint.sh" "$stage/"
sed -i.orig "s|VERSION: dev |VERSION: \"$version\" |" "$stage/docker-compose.yml"
rm -f "$stage/docker-compose.yml.orig"

echo "pushing ph-agent $version to $fleet"
balena push "$fleet" --source "$stage" "$@"

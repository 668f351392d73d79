#!/bin/sh
# push.sh FLEET [balena push flags...]
#
# Builds and releases ph-agent to a balena fleet: stage.sh assembles the committed source
# listed in context.list and this directory's files (uncommitted changes are not part of
# a release), and `balena push` uploads that to balena's builders.
set -eu

[ $# -ge 1 ] || { echo "usage: $0 FLEET [balena push flags...]" >&2; exit 2; }
fleet=$1
shift

here=$(cd "$(dirname "$0")" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT INT TERM

version=$("$here/stage.sh" "$stage")
echo "pushing ph-agent $version to $fleet"
balena push "$fleet" --source "$stage" "$@"

#!/bin/sh
# stage.sh [--worktree] DIR
#
# Assembles the directory `balena push` uploads: this directory's balena files at its top
# (balena wants docker-compose.yml there, with every build context inside it) and, under
# src/, the repository paths listed in context.list, taken from git by ../gitsource.sh: the
# last commit, or with --worktree the tracked files as they are now (for checks before
# committing). The VERSION build argument in docker-compose.yml is stamped with
# `git describe`.
#
# push.sh releases what this stages; `make balena-check` and the balena test build the
# agent from it the way the Dockerfile's build stage does.
set -eu

worktree=""
if [ "${1:-}" = "--worktree" ]; then
	worktree=--worktree
	shift
fi
[ $# -eq 1 ] || { echo "usage: $0 [--worktree] DIR" >&2; exit 2; }
dest=$1

here=$(cd "$(dirname "$0")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel)
if [ -n "$worktree" ]; then
	version=$(git -C "$root" describe --always --dirty)
else
	version=$(git -C "$root" describe --always)
fi

paths=$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$here/context.list")
# shellcheck disable=SC2086 # one path a word
"$here/../gitsource.sh" $worktree "$dest/src" $paths
for f in balena.yml docker-compose.yml Dockerfile.template agent.yaml.template entrypoint.sh; do
	cp "$here/$f" "$dest/$f"
done
sed "s|^\(      *VERSION:\) dev\( .*\)\{0,1\}$|\1 \"$version\"\2|" "$here/docker-compose.yml" >"$dest/docker-compose.yml"
grep -q "VERSION: \"$version\"" "$dest/docker-compose.yml" || {
	echo "$0: no 'VERSION: dev' build argument in docker-compose.yml to stamp" >&2
	exit 1
}
echo "$version"

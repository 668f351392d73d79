#!/bin/sh
# gitsource.sh [--worktree] DEST PATH...
#
# Writes the repository's PATHs under DEST as git has them: from the last commit, or with
# --worktree the tracked files as they are now, uncommitted changes included (for checks
# before committing). Untracked and ignored files never come along, so a build from DEST
# sees what a fresh clone has. The build contexts of the deployments come from here:
# balena/stage.sh (the agent's image) and the cloud image's test.
set -eu

tree=HEAD
if [ "${1:-}" = "--worktree" ]; then
	tree=worktree
	shift
fi
[ $# -ge 2 ] || { echo "usage: $0 [--worktree] DEST PATH..." >&2; exit 2; }
dest=$1
shift

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
if [ "$tree" = worktree ]; then
	# A commit object of the tracked files as they are, made without touching the index,
	# the work tree or the stash list; none when nothing differs from HEAD. It needs a
	# committer, which a CI checkout may not have configured.
	tree=$(GIT_COMMITTER_NAME="${GIT_COMMITTER_NAME:-gitsource.sh}" GIT_COMMITTER_EMAIL="${GIT_COMMITTER_EMAIL:-gitsource@localhost}" \
		GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-gitsource.sh}" GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-gitsource@localhost}" \
		git -C "$root" stash create)
	tree=${tree:-HEAD}
fi

mkdir -p "$dest"
# Through a file, not a pipe: a path git does not know must fail the staging.
archive=$(mktemp)
trap 'rm -f "$archive"' EXIT INT TERM
git -C "$root" archive --format=tar -o "$archive" "$tree" -- "$@"
tar -x -C "$dest" -f "$archive"

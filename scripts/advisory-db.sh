#!/usr/bin/env bash
# Puts the RustSec advisory database where cargo-deny looks for it, for
# machines that cannot reach its home on the network.
#
# Usage: scripts/advisory-db.sh SNAPSHOT_DIR
#
# SNAPSHOT_DIR is a plain copy of the database whose SNAPSHOT file names
# the commit and date it was taken at (the project leads keep one in
# ../shared/advisory-db). cargo-deny reads the database as a git
# repository and reports its age from the last commit, so the copy is
# committed with the snapshot's date: an old snapshot is reported as old.
# A database already there that is at least as new is left alone.
set -euo pipefail

snapshot=${1:?usage: scripts/advisory-db.sh SNAPSHOT_DIR}
if [ ! -f "$snapshot/SNAPSHOT" ] || [ ! -d "$snapshot/crates" ]; then
    echo "error: $snapshot is not an advisory database snapshot (no SNAPSHOT file or crates/)" >&2
    exit 1
fi
date=$(sed -n 's/^date //p' "$snapshot/SNAPSHOT")
commit=$(sed -n 's/^commit //p' "$snapshot/SNAPSHOT")
if [ -z "$date" ]; then
    echo "error: $snapshot/SNAPSHOT names no date" >&2
    exit 1
fi

# cargo-deny 0.20 keeps the default database (https://github.com/RustSec/advisory-db)
# in a directory named after a hash of that URL.
target="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/advisory-db-3157b0e258782691"

snapshot_epoch=$(date -d "$date" +%s)
if [ -d "$target/.git" ]; then
    have_epoch=$(git -C "$target" log -1 --format=%ct 2>/dev/null || echo 0)
    if [ "$have_epoch" -ge "$snapshot_epoch" ]; then
        echo "advisory database: keeping the copy in $target ($(git -C "$target" log -1 --format=%cI))"
        exit 0
    fi
fi

rm -rf "$target"
mkdir -p "$target"
# The snapshot is read-only; the copy must be writable for git.
cp -R "$snapshot/." "$target/"
chmod -R u+w "$target"
rm -f "$target/SNAPSHOT"
export GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date"
git -C "$target" init -q -b main
git -C "$target" add -A
git -C "$target" -c user.name="advisory snapshot" -c user.email="snapshot@localhost" \
    commit -q -m "RustSec advisory database at ${commit:-unknown commit}"
echo "advisory database: snapshot of $date (${commit:-unknown commit}) in $target"

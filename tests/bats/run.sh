#!/usr/bin/env bash
# Run the bats suite (Debian's bats package) against the real mcctl and a real mcd.
# MCCTL picks the CLI binary: dist/mcctl when `make dist` built it, else .venv/bin/mcctl.
# Fails when bats fails, and when no test ran at all.
set -uo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
# Debian's bats package (bats-core), not whatever `bats` happens to be first on PATH.
BATS="${BATS:-/usr/bin/bats}"
[ -x "$BATS" ] || { echo "run.sh: $BATS missing: apt-get install bats (make dev does)" >&2; exit 1; }
if [ -z "${MCCTL:-}" ]; then
    if [ -x dist/mcctl ]; then MCCTL="$repo/dist/mcctl"; else MCCTL="$repo/.venv/bin/mcctl"; fi
fi
export MCCTL
export MCD="${MCD:-$repo/.venv/bin/mcd}"
[ -x "$MCCTL" ] || { echo "run.sh: $MCCTL is not executable (make dev or make dist)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run.sh: bats tests need root (a real daemon runs containers)" >&2; exit 1; }
echo "bats: MCCTL=$MCCTL MCD=$MCD"
mkdir -p test-artifacts
out="test-artifacts/bats.tap"
"$BATS" --tap tests/bats/*.bats | tee "$out"
rc=${PIPESTATUS[0]}
ran=$(grep -cE '^(ok|not ok) ' "$out" || true)
if [ "$ran" = 0 ]; then echo "run.sh: no bats test ran: failing" >&2; exit 1; fi
exit "$rc"

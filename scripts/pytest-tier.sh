#!/usr/bin/env bash
# Run one pytest tier. pytest's exit code 5 ("no tests collected") is a failure here:
# a tier that ran nothing has proven nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
tier="$1"; shift
mkdir -p test-artifacts
.venv/bin/python -m pytest -q -p no:cacheprovider "$tier" "$@"
rc=$?
if [ "$rc" = 5 ]; then echo "pytest: no tests ran in $tier: failing" >&2; exit 1; fi
exit "$rc"

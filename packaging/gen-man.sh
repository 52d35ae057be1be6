#!/usr/bin/env bash
# make man: man/mcctl.1 and man/mcd.8 from the argparse parsers (argparse-manpage).
# The date comes from SOURCE_DATE_EPOCH (the Makefile exports the last commit's time);
# a page whose content did not change is left as it is.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
exec "${PY:-$repo/.venv/bin/python}" packaging/gen_docs.py man "$repo/man"

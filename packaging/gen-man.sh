#!/usr/bin/env bash
# make man: man/mcctl.1 and man/mcd.8 from the argparse parsers (argparse-manpage), and
# mcctl/argtable.py (the table mcctl.fastparse reads the common command lines with).
# The date comes from SOURCE_DATE_EPOCH (the Makefile exports the last commit's time);
# a page whose content did not change is left as it is.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
py="${PY:-$repo/.venv/bin/python}"
"$py" -m mcctl.fastparse > mcctl/argtable.py.tmp && mv mcctl/argtable.py.tmp mcctl/argtable.py
exec "$py" packaging/gen_docs.py man "$repo/man"
